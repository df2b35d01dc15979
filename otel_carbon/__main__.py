"""``python -m otel_carbon``: the ``otel-carbon`` command."""

import sys

from otel_carbon.cli import main

sys.exit(main())
