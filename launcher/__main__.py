"""`python3 -m launcher up|down|status|logs|deps`: see the package docstring."""

import sys

from launcher import main

sys.exit(main())
