import sys

from aekeras.cli import main

sys.exit(main())
