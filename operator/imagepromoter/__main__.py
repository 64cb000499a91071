"""`python -m imagepromoter` is the `imagepromoter` command."""

import sys

from imagepromoter import cli

sys.exit(cli.main())
