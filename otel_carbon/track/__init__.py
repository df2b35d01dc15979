"""CodeCarbon-style tracking: an object, a decorator and a context manager.

Every tracked run is a span (through the global tracer provider, or ``tracer_provider=``),
so the work shows in traces; its figures are returned as an :class:`EmissionsResult` and,
with ``save_to_file``, appended to ``emissions.csv`` in CodeCarbon's format.

What a run counts (``scope``):

* ``"process"`` (default): the process's CPU time while the run was open (every thread,
  native libraries included) x the price of a CPU-second, plus the process's GPU energy.
  This is what a whole-run tracker (a batch job, a training loop, a FaaS invocation) wants,
  and what CodeCarbon's process mode means. Runs that overlap in one process each count
  the whole process: for concurrent requests use ``"span"``.
* ``"span"``: only the work of the run's own span (its thread or asyncio task), exactly
  the span's ``carbon.energy.*``: right when many tracked calls overlap in one process.
* ``"machine"``: everything the host drew while the run was open, idle power included
  (CodeCarbon's default ``tracking_mode="machine"``), from the ledger window.

The span always carries its own share as ``carbon.energy.*`` (so sums over spans never
count twice) and, for the wider scopes, the run's figures as ``carbon.run.*``.

Costs: creating a tracker resolves nothing unless location arguments are given; a run
costs one span, a few clock reads and, with ``save_to_file``, one locked append (a
decorated function called more than ten times a second shares one append between its rows,
at most ``OTEL_CARBON_CSV_MAX_DELAY_S`` later: :mod:`otel_carbon.exporters.row_batches`). Nothing
here raises into the host application after construction: failures degrade to a result
with ``method="unavailable"`` and are logged once. Bad arguments raise ``ValueError``.

Modules: :mod:`.result` (the result object), :mod:`._config` (arguments, CodeCarbon's
included), :mod:`._runs` (one run: span, clocks, figures, CSV row), :mod:`.api` (the
tracker object and the decorator).
"""

from __future__ import annotations

from otel_carbon.exporters.row_batches import flush_rows
from otel_carbon.track.api import EmissionsTracker, track_emissions
from otel_carbon.track.result import EmissionsResult

__all__ = ["EmissionsResult", "EmissionsTracker", "flush_rows", "track_emissions"]
