"""``make demo``: train the seed recipe on Fashion-MNIST (see README).

Equivalent to ``dojang train --recipe seed --out runs/demo``; a finished demo run is
evaluated again instead of retrained, and an interrupted one resumes.
"""

from __future__ import annotations

import os
import sys

from dojang import cli


def main(argv=None) -> int:
    out = os.environ.get("DOJANG_DEMO_OUT", os.path.join("runs", "demo"))
    if os.path.exists(os.path.join(out, "run.json")):
        print(f"continuing the demo run in {out} (delete it to start over)")
        return cli.main(["train", "--resume", out, *(argv or [])])
    return cli.main(["train", "--recipe", "seed", "--out", out, *(argv or [])])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
