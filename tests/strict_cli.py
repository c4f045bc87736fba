"""``python -m tests.strict_cli ARGS``: the ``dojang`` command with the strict stand-in
device enabled, so that ``--device strict`` runs a whole command on arrays that refuse
implicit conversion to NumPy (as a GPU's do)."""

import sys

from dojang import cli
from dojang.backends import strict

if __name__ == "__main__":
    strict.enable()
    sys.exit(cli.main())
