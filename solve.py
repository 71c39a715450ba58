#!/usr/bin/env python
"""Solve LLM-pricing scenarios and verify every result against its closed form.

    python solve.py [SCENARIO ...] [--out DIR] [--format csv,latex,md,parquet] [--quiet | --verbose]
    python solve.py sweep SCENARIO --param PATH=START:STOP:COUNT [...]   (see: solve.py sweep --help)

Exit codes: 0 every regime solved and every check passed; 1 something did not
converge or did not verify (verification.csv says which); 2 bad input.
The implementation is models/cli.py (also the console command ``llm-pricing``).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from models.cli import main, one_sided, print_table  # noqa: E402,F401  (the CLI's public names)

if __name__ == "__main__":
    sys.exit(main())
