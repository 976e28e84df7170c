"""``python -m hf_itt.report RUN_DIR... --out report/`` (same as ``hf-itt report``)."""

import sys

from hf_itt.report.build import main

sys.exit(main())
