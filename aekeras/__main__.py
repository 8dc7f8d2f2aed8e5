import sys

from aekeras.cli import entry_point

sys.exit(entry_point())
