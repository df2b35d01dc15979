import sys

from otel_carbon.cli import main

sys.exit(main())
