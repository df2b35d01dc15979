"""What the subcommands share: help layout, output checks made before any work, errors."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional

class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's and epilog's line breaks (exit codes, examples)."""


def epilog(codes: str, example: str) -> str:
    return f"exit codes:\n{codes}\n\nexample:\n{example}"


def output_problem(path: Optional[str]) -> Optional[str]:
    """Why ``path`` cannot be written (a missing folder, not a folder, no permission), or None.

    Checked before the work starts, so a typo fails at once instead of after a long run."""
    if not path:
        return None
    if os.path.isdir(path):
        return f"{path} is a directory"
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        return f"the directory {folder} does not exist"
    if os.path.exists(path):
        if not os.access(path, os.W_OK):
            return f"{path} is not writable"
    elif not os.access(folder, os.W_OK | os.X_OK):
        return f"cannot create files in {folder}"
    return None


def error(command: str, message: str) -> int:
    """One line on stderr; returns 2 (bad usage or unreadable input)."""
    print(f"otel-carbon {command}: error: {message}", file=sys.stderr)
    return 2
