"""`python -m pmexp.maxbatch`: the largest batch per dropout variant; see pmexp.experiment.maxbatch."""

import sys

from pmexp.experiment.maxbatch import main

if __name__ == "__main__":
    sys.exit(main())
