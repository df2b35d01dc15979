"""What the default path loads: a tracked call in a fresh interpreter, then its modules.

Start-up time is measured in ``benchmarks/bench_tracking.py``; this checks the cause that
can regress silently: a module the default path does not use imported at module level.
"""

from __future__ import annotations

import json
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
    "otel_carbon.report_data",
    "otel_carbon.report_html",
)


def _modules_after(code: str, tmp_path) -> "set[str]":
    script = textwrap.dedent(
        """
        import json, sys
        {code}
        print(json.dumps(sorted(sys.modules)))
        """
    ).format(code=textwrap.indent(textwrap.dedent(code), "").strip())
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
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
