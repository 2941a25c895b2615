"""`python -m scdeepclust`: the same as the `scdeepclust` command."""

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())
