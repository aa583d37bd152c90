"""Frontier sweeps of the same photos, run at different times, as one report and plot
(:func:`koala.evaluation.frontier.merge_reports`): a new model beside an old one's sweep without
scoring the old one again.

    python scripts/merge_frontier.py reports/frontier/default.json \\
        "reports/frontier/default-before-31.json:new=before (24 filters)" --out reports/frontier/default-vs-before.json

Each input is a ``koala evaluate --sweep`` report, optionally followed by ``:MODEL=LABEL,...`` to
take only those models under those labels. Writes the JSON and its plot (same stem, .png).
"""
from __future__ import annotations

import argparse
import sys

from koala.evaluation.evaluate import write_report
from koala.evaluation.frontier import merge_reports, plot_frontier, read_report


def parse_input(item: str) -> tuple[str, dict[str, str]]:
    """'F.json' -> (F.json, {}); 'F.json:a=old,b=new' -> (F.json, {'a': 'old', 'b': 'new'})."""
    path, _, picks = item.partition(".json:")
    if not picks:
        return item, {}
    pairs = [pick.split("=", 1) for pick in picks.split(",")]
    if any(len(pair) != 2 or not all(pair) for pair in pairs):
        raise argparse.ArgumentTypeError(f"expected F.json:MODEL=LABEL,...; got {item!r}")
    return path + ".json", dict(pairs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", nargs="+", type=parse_input, metavar="F.json[:MODEL=LABEL,...]")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    try:
        reports = [(read_report(path), rename) for path, rename in args.reports]
        write_report(merge_reports(reports), args.out, plot_frontier)
    except (OSError, ValueError) as e:  # OSError: --out cannot be written
        sys.exit(f"merge_frontier: {e}")
    print(f"{args.out}: {len(reports)} reports merged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
