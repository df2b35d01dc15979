"""What the default path loads: a tracked call in a fresh interpreter, then its modules.

Start-up time is measured in ``benchmarks/bench_tracking.py``; this checks the cause that
can regress silently: a module the default path does not use imported at module level.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap

#: not needed unless a live intensity provider, an OTLP exporter or a report is asked for
NOT_ON_THE_DEFAULT_PATH = (
    "urllib.request",
    "http.client",
    "otel_carbon.intensity.live",
    "otel_carbon.intensity.providers",
    "otel_carbon.intensity._http",
    "grpc",
    "opentelemetry.exporter.otlp.proto.grpc",
    "opentelemetry.exporter.otlp.proto.http",
    "otel_carbon.cli.report_data",
    "otel_carbon.cli.report_html",
    "asyncio",  # a synchronous program's: the task meter's hook waits for asyncio's import
    # the tracking API prices its runs without the SDK (unless the program set one up, or the
    # Resource could hold cloud.*: OTEL_RESOURCE_ATTRIBUTES, OTEL_EXPERIMENTAL_RESOURCE_DETECTORS)
    "opentelemetry.sdk",
    "opentelemetry.sdk.trace",
    "opentelemetry.sdk.resources",
)


def _modules_after(code: str, tmp_path) -> "set[str]":
    script = textwrap.dedent(
        """
        import json, sys
        {code}
        print(json.dumps(sorted(sys.modules)))
        """
    ).format(code=textwrap.indent(textwrap.dedent(code), "").strip())
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_") or k == "OTEL_CARBON_SPEEDUPS"}
    env.update(OTEL_CARBON_NVML="off", OTEL_CARBON_COUNTRY="FR")
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def test_a_tracked_call_loads_nothing_it_does_not_use(tmp_path):
    loaded = _modules_after(
        f"""
        from otel_carbon import track_emissions
        track_emissions(offline=True, country_iso_code="FRA", output_dir={str(tmp_path)!r})(lambda: None)()
        """,
        tmp_path,
    )
    assert "otel_carbon.exporters.emissions_csv" in loaded and "otel_carbon.sampler" in loaded  # it did run
    assert sorted(loaded.intersection(NOT_ON_THE_DEFAULT_PATH)) == []


def test_the_intensity_package_still_gives_every_name(tmp_path):
    loaded = _modules_after(
        """
        import types
        import otel_carbon.intensity as intensity
        assert "otel_carbon.intensity.live" not in sys.modules
        # submodules imported first (as the sampler does) must not shadow a name of the package
        import otel_carbon.intensity.bundled, otel_carbon.intensity.resolve, otel_carbon.intensity.source
        names = {name: getattr(intensity, name) for name in intensity.__all__}
        for name, value in names.items():
            assert not isinstance(value, types.ModuleType), name
        assert names["LiveIntensitySource"].__module__ == "otel_carbon.intensity.live"
        assert names["intensity_source"].__module__ == "otel_carbon.intensity.source"
        try:
            intensity.no_such_name
        except AttributeError as exc:
            assert "no_such_name" in str(exc)
        else:
            raise AssertionError("an unknown name must raise AttributeError")
        """,
        tmp_path,
    )
    assert "otel_carbon.intensity.live" in loaded  # loaded on first use, not before


def test_asyncio_imported_after_the_processor_gets_its_task_steps_timed(tmp_path):
    """The processor is made before the program imports asyncio (``opentelemetry-instrument``
    then ``uvicorn.run``): the Handle hook is installed the moment asyncio is imported, so two
    interleaved tasks' spans each get their own task's CPU time (``carbon.cpu.clock=task``),
    not the thread's over their windows."""
    code = """
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from otel_carbon import CarbonSpanProcessor
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(CarbonSpanProcessor())
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        assert "asyncio" not in sys.modules
        import asyncio, time

        def burn(seconds):
            end = time.thread_time() + seconds
            while time.thread_time() < end:
                pass

        async def request(name, seconds):
            with provider.get_tracer("t").start_as_current_span(name):
                for _ in range(10):
                    burn(seconds / 10)
                    await asyncio.sleep(0)

        async def main():
            await asyncio.gather(request("small", 0.02), request("big", 0.08))

        asyncio.run(main())
        spans = {s.name: dict(s.attributes) for s in exporter.get_finished_spans()}
        print(json.dumps(spans))
        """
    script = textwrap.dedent(
        """
        import json, sys
        {code}
        """
    ).format(code=textwrap.dedent(code).strip())
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_") or k == "OTEL_CARBON_SPEEDUPS"}
    env.update(OTEL_CARBON_NVML="off", OTEL_CARBON_COUNTRY="FR")
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    spans = json.loads(result.stdout.strip().splitlines()[-1])
    assert {s["carbon.cpu.clock"] for s in spans.values()} == {"task"}, spans
    # each its own work (the thread clock over the interleaved windows would give both ~0.1 s)
    assert 0.015 <= spans["small"]["carbon.cpu.time"] <= 0.04, spans
    assert 0.07 <= spans["big"]["carbon.cpu.time"] <= 0.12, spans


def test_a_patch_runs_now_or_right_after_the_import_and_never_breaks_it(tmp_path, monkeypatch, caplog):
    from otel_carbon._on_import import when_imported

    (tmp_path / "later_mod.py").write_text("VALUE = 1\n")
    (tmp_path / "broken_patch_mod.py").write_text("VALUE = 2\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    seen = []
    when_imported("json", lambda m: seen.append(m.__name__))  # already imported: now
    assert seen == ["json"]
    when_imported("later_mod", lambda m: seen.append((m.__name__, m.VALUE)))
    assert seen == ["json"]
    import later_mod  # noqa: F401

    assert seen == ["json", ("later_mod", 1)]

    def fails(module):
        raise RuntimeError("boom")

    when_imported("broken_patch_mod", fails)
    with caplog.at_level(logging.WARNING, logger="otel_carbon"):
        import broken_patch_mod

    assert broken_patch_mod.VALUE == 2 and "could not patch broken_patch_mod" in caplog.text
