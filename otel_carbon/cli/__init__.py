"""``otel-carbon`` command line: one module per subcommand.

Each subcommand module exposes ``add_parser(subparsers)`` which registers itself and sets
``func`` (``args -> exit code``) as the parser default.
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from otel_carbon.cli import compare as _compare
from otel_carbon.cli import intensity as _intensity
from otel_carbon.cli import report as _report
from otel_carbon.cli import run as _run
from otel_carbon.cli import sensors as _sensors

_COMMANDS = (_sensors, _intensity, _run, _report, _compare)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otel-carbon",
        description="Energy and CO2e of Python services, per OpenTelemetry span.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _COMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
