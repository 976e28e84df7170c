#!/usr/bin/env python
"""Run an hf_itt experiment: `python run_itt.py --config run_scripts/demo.yaml [key=value ...]`.

Also the DeepSpeed entry point: `deepspeed run_itt.py --config run_scripts/<experiment>.yaml`.
"""

import sys

from hf_itt.cli import run_entry

if __name__ == "__main__":
    sys.exit(run_entry())
