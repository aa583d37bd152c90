"""The `koala` command: train, colorize, models (and more as they land)."""
from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _cmd_models(args: argparse.Namespace) -> int:
    from koala.models import MODELS, get_model, trainable_params

    print(f"{'name':<14}{'params':>12}  {'size':>5}  paper")
    for name, spec in MODELS.items():
        params = trainable_params(get_model(name))
        print(f"{name:<14}{params:>12,}  {spec.default_size:>5}  {spec.paper}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from koala import config as config_lib
    from koala.training import train

    overrides = list(args.set or [])
    if args.name:
        overrides.append(f"name={args.name}")
    if args.out_dir:
        overrides.append(f"out_dir={args.out_dir}")
    cfg = config_lib.load(args.config, args.preset, overrides)
    run = train(cfg, overwrite=args.overwrite)
    print(f"trained model: {run / 'best.keras'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="koala", description="Colorize grayscale photos.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("models", help="list the registered architectures")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("train", help="train a model from a config file or preset")
    p.add_argument("--config", help="YAML config file (may name a preset to start from)")
    p.add_argument("--preset", help="start from this preset (default, smoke)")
    p.add_argument("--name", help="run name (folder under out_dir)")
    p.add_argument("--out-dir", help="where run folders go (default runs/)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field, e.g. train.epochs=3")
    p.add_argument("--overwrite", action="store_true", help="replace a finished run of the same name")
    p.set_defaults(func=_cmd_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileExistsError, FileNotFoundError) as e:
        print(f"koala {args.command}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
