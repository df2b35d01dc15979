"""``otel-carbon`` command line: one module per subcommand.

Each subcommand module exposes ``add_parser(subparsers)`` which registers itself and sets
``func`` (``args -> exit code``) as the parser default.

Conventions: results go to stdout, messages to stderr; exit 0 is success, 1 a failed check
(``compare`` over budget), 2 bad usage or unusable input, and ``run`` returns its command's
code. Output files are checked before any work starts. No traceback reaches the user: a
closed pipe (``| head``) ends quietly, anything unexpected is one line on stderr.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import TYPE_CHECKING, List, Optional

from otel_carbon import __version__

if TYPE_CHECKING:
    import argparse

_EPILOG = """examples:
  otel-carbon run -- python app.py          energy and CO2e of a program, per span, zero code
  otel-carbon report spans.jsonl --html r.html
  otel-carbon compare main.jsonl pr.jsonl --budget 5%
  otel-carbon sensors                       what is measured here, what is estimated, and why
  otel-carbon intensity --country FR        the grid intensity in use

exit codes: 0 success; 1 a check failed (compare over budget); 2 bad usage or unusable
input; run: the command's own code (128+N when signal N ended it).
`otel-carbon COMMAND --help` describes each command."""


def build_parser() -> argparse.ArgumentParser:
    # The subcommands load here, not on import: ``otel-carbon run`` starts its Python
    # programs with otel_carbon.cli.run_child, which needs none of them.
    import argparse

    from otel_carbon.cli import compare, intensity, report, run, sensors
    from otel_carbon.cli._common import HelpFormatter

    parser = argparse.ArgumentParser(
        prog="otel-carbon",
        description="Energy and CO2e of Python services, per OpenTelemetry span.",
        epilog=_EPILOG,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"otel-carbon {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (sensors, intensity, run, report, compare):
        module.add_parser(sub)
    return parser


def _quiet_broken_pipe() -> int:
    """stdout's reader went away (``| head``): stop quietly, as a shell tool killed by SIGPIPE."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's final flush must not fail again
    except (OSError, ValueError, AttributeError):
        pass
    return 128 + getattr(signal, "SIGPIPE", 13)


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = None
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        code = int(args.func(args) or 0)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except KeyboardInterrupt:
        print(f"otel-carbon {getattr(args, 'command', None) or ''}: interrupted".replace(" :", ":"), file=sys.stderr)
        return 128 + signal.SIGINT
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback
        command = getattr(args, "command", None) or ""
        print(f"otel-carbon {command}: internal error: {type(exc).__name__}: {exc}".replace(" :", ":"), file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
