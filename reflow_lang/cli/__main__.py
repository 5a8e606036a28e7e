"""`python -m reflow_lang.cli`: the same as `reflowc`."""

import sys

from reflow_lang.cli import main

sys.exit(main())
