"""Copy a run's best model into koala/weights/ as a bundled model (:func:`koala.runs.bundle`).

    python scripts/package_model.py runs/default --name default --overwrite
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from koala.runs import Run, bundle


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--name", default="default")
    parser.add_argument("--overwrite", action="store_true", help="replace a bundled model of that name")
    parser.add_argument("--stopped", action="store_true",
                        help="bundle the best so far of a stopped run that can resume (its backup stays)")
    args = parser.parse_args()
    run = Run(args.run)
    try:
        bundled = bundle(run, args.name, overwrite=args.overwrite, stopped=args.stopped)
    except (FileExistsError, FileNotFoundError) as e:
        if isinstance(e, FileExistsError):
            way = " (--overwrite replaces it)"
        else:  # name --stopped only where it would help: a stopped run with a best checkpoint
            way = " (--stopped takes the best so far of a stopped run)" if run.resuming and run.best.is_file() else ""
        print(f"package_model: {e}{way}", file=sys.stderr)
        return 2
    print(f"wrote {bundled} ({bundled.stat().st_size / 1e6:.1f} MB) and its metadata")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
