"""``otel-carbon sensors``: what was detected, measured or estimated, and what could not be read."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any, Dict

from otel_carbon import config, cpu_clock, sensor_reading
from otel_carbon.cli._common import HelpFormatter, epilog
from otel_carbon.sensors.probe import probe_sensors
from otel_carbon.units_text import format_number, format_seconds


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = sub.add_parser(
        "sensors",
        help="show the energy sensors detected on this host",
        description="Show which energy sensors this host has: what is measured (RAPL, NVML), what is "
        "estimated from power models, and each file or library that could not be read, with the fix.",
        epilog=epilog("  0  the report was printed (also when nothing is measurable: figures are then estimated)\n"
                      "  2  bad usage",
                      "  otel-carbon sensors\n  otel-carbon sensors --json"),
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run)


def report() -> Dict[str, Any]:
    probe = probe_sensors()
    try:
        return {
            "sensors": [asdict(s.info()) for s in probe.sensors],
            "unreadable": [asdict(d) for d in probe.diagnostics],
            "notes": probe.notes,
            "sample_interval_s": config.sample_interval_s(sensor_reading.default_interval_s(probe)),
            "idle_policy": config.idle_policy(),
            "span_path": cpu_clock.span_path,
        }
    finally:
        probe.close()


def run(args: argparse.Namespace) -> int:
    data = report()
    if args.json:
        print(json.dumps(data, indent=2, default=str))
        return 0
    print("Sensors in use:")
    for s in data["sensors"]:
        print(f"  {s['component']:<7} {s['method']:<10} {s['name']} ({s['source']})")
        for key, value in s["details"].items():
            print(f"      {key}: {format_number(value) if isinstance(value, float) else value}")
    measured = any(s["method"] == "measured" for s in data["sensors"])
    if not measured:
        print("  No hardware energy counter is readable here: every figure is ESTIMATED from the models above.")
    if not any(s["component"] == "gpu" for s in data["sensors"]):
        print("  No NVIDIA GPU detected (or NVML not available).")
    for note in data["notes"]:
        print(f"  note: {note}")
    if data["unreadable"]:
        print("Could not read:")
        for d in data["unreadable"]:
            print(f"  {d['path']}: {d['problem']}")
            if d["fix"]:
                print(f"      fix: {d['fix']}")
    print(f"Sampling every {format_seconds(data['sample_interval_s'])}; idle policy: {data['idle_policy']}")
    print(f"Span path: {data['span_path']}")
    return 0
