"""`python -m hf_itt ...`: the hf-itt command line."""

import sys

from hf_itt.cli import main

sys.exit(main())
