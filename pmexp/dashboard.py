"""`python -m pmexp.dashboard`: a sweep's W&B workspace and report; see pmexp.report.dashboard."""

import sys

from pmexp.report.dashboard import main

if __name__ == "__main__":
    sys.exit(main())
