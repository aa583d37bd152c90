"""A compare config: which models, the shared training config and budget, how they are scored.

Presets are plain dicts (:data:`PRESETS`); a YAML file or ``--set`` values override any field
(see :mod:`koala.evaluation.compare`).
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from koala import config as config_lib
from koala.knobs import check_saturation

PRESETS: dict[str, dict] = {
    # every registered model at its smoke setting (its own file's), on scikit-image's photos: a few
    # minutes on 2 CPU cores
    "smoke": {"out": "reports/compare-smoke", "train": {"preset": "smoke"}, "models": "all",
              "eval": {"size": 32, "samples": 2}},
}


@dataclass
class EvalSettings:
    """data: folder or split file ("" = the training config's validation photos); size: side of
    the square the photos are scored at (None = the training image_size); limit: first N photos;
    samples: photos in the grid besides each model's worst and best; fid: "" (none),
    "inception_v3" or a .keras feature model, with fid_weights and fid_size as in ``koala evaluate``;
    sweep: saturations to also score every model at, on the same photos, for the PSNR-colourfulness
    frontier (None = no frontier); groups: {name: [sources]} also scored together on the frontier."""

    data: str = ""
    size: int | None = None
    limit: int | None = None
    samples: int = 4
    fid: str = ""
    fid_weights: str = "imagenet"
    fid_size: int | None = None
    sweep: list[float] | None = None
    groups: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.sweep = check_sweep(self.sweep)
        self.groups = check_groups(self.groups)


def check_sweep(sweep: Any) -> list[float] | None:
    """eval.sweep: None, or a non-empty list of saturations within :data:`koala.knobs.SATURATION_RANGE`
    (as floats)."""
    if sweep is None:
        return None
    if (not isinstance(sweep, (list, tuple)) or not sweep
            or not all(isinstance(s, (int, float)) and not isinstance(s, bool) for s in sweep)):
        raise ValueError(f"eval.sweep: expected a list of saturations like [0, 0.5, 1]; got {sweep!r}")
    try:
        return [check_saturation(s) for s in sweep]
    except ValueError as e:
        raise ValueError(f"eval.sweep: {e}") from None


def check_groups(groups: Any) -> dict[str, list[str]]:
    """eval.groups: a mapping of group names to non-empty lists of source names."""
    if groups is None:
        return {}
    if (not isinstance(groups, dict)
            or not all(isinstance(name, str) and isinstance(members, (list, tuple)) and members
                       and all(isinstance(m, str) for m in members) for name, members in groups.items())):
        raise ValueError(f"eval.groups: expected {{name: [source, ...]}} like {{general: [bsds500, urban100]}}; "
                         f"got {groups!r}")
    return {name: list(members) for name, members in groups.items()}


@dataclass
class CompareConfig:
    """out: the report folder; train: a ``koala train`` config (a mapping) shared by every model;
    models: "all" (every registered model), a list of names or {label: overrides}; model_args:
    per architecture, for the models trained here (an architecture not named gets what the
    training config gives it: with the smoke preset, its smoke arguments); eval: how they are scored."""

    out: str = "reports/compare"
    train: dict = field(default_factory=dict)
    models: Any = "all"
    model_args: dict = field(default_factory=dict)
    eval: EvalSettings = field(default_factory=EvalSettings)


def from_dict(values: dict, preset: str | None = None) -> CompareConfig:
    """A CompareConfig from a preset name plus overrides; ``models`` and each architecture's
    ``model_args`` are replaced whole, the rest merged."""
    values = dict(values)
    preset = values.pop("preset", None) or preset
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"unknown compare preset {preset!r}; choose from {sorted(PRESETS)}")
    base = copy.deepcopy(PRESETS.get(preset, {}))
    known = {f.name for f in dataclasses.fields(CompareConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown compare config key(s) {unknown}; known: {sorted(known)}")
    merged = {**base, **{k: v for k, v in values.items() if k not in ("train", "model_args", "eval")}}
    merged["train"] = config_lib.merge(base.get("train", {}), values.get("train") or {})
    merged["model_args"] = {**base.get("model_args", {}), **(values.get("model_args") or {})}
    eval_values = {**base.get("eval", {}), **(values.get("eval") or {})}
    eval_known = {f.name for f in dataclasses.fields(EvalSettings)}
    if set(eval_values) - eval_known:
        raise ValueError(f"unknown eval key(s) {sorted(set(eval_values) - eval_known)}; known: {sorted(eval_known)}")
    merged["eval"] = EvalSettings(**eval_values)
    return CompareConfig(**merged)


def load(path: str | Path | None = None, preset: str | None = None, overrides: list[str] = ()) -> CompareConfig:
    """Read a compare config (YAML); ``overrides`` are ``dotted.key=value`` strings parsed as YAML."""
    if not path and not preset:
        raise ValueError("give a compare config file or a preset")
    return from_dict(config_lib.read_values(path, overrides), preset)
