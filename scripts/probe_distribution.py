"""Issue 31's test of the colour distribution head: does automatic colour decoded from the predicted
distribution (the annealed mean at some temperature, or the regression and the annealed mean mixed)
beat the ab regression on the PSNR-colourfulness frontier?

    python scripts/probe_distribution.py runs/dist-1 --data ../shared/datasets/photos-v1/val \
        --temperatures 0.38,0.6,1 --mixes 0.5 --saturations 1,1.2,1.4 --out reports/issue31/probe.json

Each decoding is one curve of :func:`koala.evaluation.frontier.sweep_report` (the regression as the
model ships, then ``am T``: the annealed mean of the head's logits, bilinearly upsampled to the
working size, and ``mix W @ T``: W of the annealed mean plus 1 - W of the regression), scored beside
gray on the same photos; ``koala evaluate`` writes the same JSON and plot.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

from koala.color import AB_NORM, ab_bins, annealed_mean  # noqa: E402
from koala.evaluation.evaluate import write_report  # noqa: E402
from koala.evaluation.frontier import markdown_table, parse_groups, parse_values, plot_frontier, sweep_report  # noqa: E402
from koala.inference import Colorizer  # noqa: E402
from koala.models.cunet import network_inputs  # noqa: E402


@dataclasses.dataclass
class DecodedColorizer(Colorizer):
    """A Colorizer whose ab is ``mix`` of the annealed mean of the distribution head (at
    ``anneal``) and ``1 - mix`` of the regression."""

    anneal: float = 0.38
    mix: float = 1.0

    def network_fn(self):
        network, bins, temperature, mix = self.network, ab_bins(), self.anneal, self.mix

        def call(l_small, hints=None, global_hints=None):
            out = network(network_inputs(network, l_small, hints, global_hints), training=False)
            logits = tf.image.resize(tf.cast(out["bins"], tf.float32), tf.shape(l_small)[1:3], "bilinear")
            decoded = annealed_mean(logits, bins, temperature) / AB_NORM
            return mix * decoded + (1.0 - mix) * tf.cast(out["ab"], tf.float32)

        return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a run folder or .keras file of a model with a distribution head")
    parser.add_argument("--data", required=True)
    parser.add_argument("--temperatures", default="0.38,0.6,1")
    parser.add_argument("--mixes", default="0.5", help="shares of the annealed mean mixed with the regression")
    parser.add_argument("--saturations", default="1,1.2,1.4")
    parser.add_argument("--group", action="append", help="NAME=source,source: a group also scored together")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    base = Colorizer.load(args.model)
    if not isinstance(base.network.output, dict):
        parser.error(f"{args.model}: the model has no distribution head")
    temperatures = parse_values(args.temperatures, "temperatures")
    models: dict[str, Colorizer] = {"regression": base}
    for t in temperatures:
        models[f"am {t:g}"] = DecodedColorizer(**_fields(base), anneal=t, mix=1.0)
        for w in parse_values(args.mixes, "mixes"):
            models[f"mix {w:g} @ {t:g}"] = DecodedColorizer(**_fields(base), anneal=t, mix=w)
    report = sweep_report(models, args.data, parse_values(args.saturations, "saturations"), None,
                          limit=args.limit, groups=parse_groups(args.group))
    json_path, _ = write_report(report, Path(args.out), plot_frontier)
    print(markdown_table(report))
    print(f"wrote {json_path}")


def _fields(colorizer: Colorizer) -> dict:
    """A Colorizer's own fields, to build a DecodedColorizer of the same model."""
    return {f.name: getattr(colorizer, f.name) for f in dataclasses.fields(Colorizer) if f.init and f.name != "_graphs"}


if __name__ == "__main__":
    main()
