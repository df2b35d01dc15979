"""CodeCarbon's three ways of tracking, with otel_carbon: object, decorator, context manager.

Run:  python examples/track_three_ways.py [OUTPUT_DIR]

Each tracked run is an OpenTelemetry span (it shows in your traces when a tracer provider is
set up; without one the figures are still computed) and appends one row to
``OUTPUT_DIR/emissions.csv`` (default: the current folder) in CodeCarbon's format.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys

from otel_carbon import EmissionsTracker, track_emissions


def hash_work(rounds: int) -> str:
    digest = b"otel-carbon"
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()


def show(label: str, result) -> None:  # type: ignore[no-untyped-def]
    parts = ", ".join(f"{k} {v:.3f} J" for k, v in result.energy_j.items())
    print(f"{label:<18} {result.duration_s:7.3f} s  CPU {result.cpu_time_s:6.3f} s  {result.energy_total_j:7.3f} J "
          f"({parts})  {result.emissions_g * 1000:8.4f} mg CO2e  {result.zone} {result.method}")


def main(output_dir: str = ".") -> None:
    # 1. The object: start() / stop() around a whole run (scope "process": every thread).
    tracker = EmissionsTracker("three-ways", output_dir=output_dir, country_iso_code="FRA")
    tracker.start()
    hash_work(200_000)
    show("object", tracker.stop())

    # 2. The decorator, on a sync and an async function (scope "span": only the call's own
    #    work, right when calls overlap, as in a web server).
    @track_emissions(project_name="three-ways", output_dir=output_dir, scope="span")
    def handler(rounds: int) -> str:
        return hash_work(rounds)

    @track_emissions(project_name="three-ways", output_dir=output_dir, scope="span")
    async def async_handler(rounds: int) -> str:
        await asyncio.sleep(0)
        return hash_work(rounds)

    handler(50_000)
    show("decorator", handler.last_result)

    async def serve() -> None:
        await asyncio.gather(async_handler(20_000), async_handler(80_000))

    asyncio.run(serve())
    show("async decorator", async_handler.last_result)

    # 3. The context manager.
    with EmissionsTracker("three-ways", output_dir=output_dir) as run:
        hash_work(100_000)
        partial = run.flush()  # figures so far; the run goes on
        hash_work(100_000)
    show("context (flush)", partial)
    show("context", run.result)
    print(f"rows appended to {output_dir.rstrip('/')}/emissions.csv")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
