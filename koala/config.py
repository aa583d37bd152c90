"""One typed configuration for training, with presets; YAML files override a preset.

A config file may name a ``preset`` to start from and override any field::

    preset: smoke
    model: cunet
    data: {image_size: 64}
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from koala.data.augment import Augment


@dataclass
class DataConfig:
    """train/val: folder, split file (.txt), a list of them (trained on together, each keeping its
    sources) or "" for scikit-image's bundled colour photos.
    embeddings: an HDF5 embedding cache (models that fuse a global embedding).
    source_balance: 0 (default) samples every training photo equally often; up to 1 evens out the
    sources (first-level sub-folders): a source of n photos is drawn in proportion to n^(1 - balance).
    groups: kinds of photo ({"people": [source names], ...}; default none): with source_balance,
    every kind is drawn equally often, then the sources within each by source_balance."""

    train: str | list = ""
    val: str | list = ""
    image_size: int = 128
    batch_size: int = 16
    cache: bool = True
    max_train_images: int | None = None
    max_val_images: int | None = None
    embeddings: str = ""
    source_balance: float = 0.0
    groups: dict = field(default_factory=dict)
    augment: Augment = field(default_factory=Augment)


@dataclass
class TrainConfig:
    """Optimisation. precision: auto | float32 | mixed_float16 | mixed_bfloat16;
    jit_compile: auto | true | false (auto = XLA on GPU only); strategy: default | mirrored | multiworker.
    init_weights: start from a trained model's weights ("default", a run folder or a .keras file),
    e.g. to fine-tune resunet34 with the mse_ssim loss; layers with new names keep their
    initialisation, and a wider model (more base_filters) starts as the same function (Net2Net).
    cpu_budget: stop after the epoch at which the run's process CPU seconds reach
    it (null: no limit), to compare models at equal compute.
    distribution_weight: weight of a colour distribution head's cross-entropy beside the ab loss
    (models with one: cunet with distribution: true); distribution_prior: an ab prior (.npy of
    data_tools.ab_prior) to rebalance that cross-entropy by ("": unweighted).
    keep_every: also keep every Nth epoch's model as checkpoints/epoch_NNN.keras in the run folder
    (0: only best.keras), so that a run can be chosen on the colour frontier rather than on val_loss.
    train_only: layer-name prefixes; when given, only the layers whose names start with one of them
    train (the rest are frozen), e.g. a new head on a trained network at a learning rate that
    would upset the rest (Caffe's lr_mult 0); default null trains every layer."""

    epochs: int = 30
    steps_per_epoch: int | None = None
    learning_rate: float = 1e-3
    loss: str = "l1"
    loss_args: dict = field(default_factory=dict)
    init_weights: str = ""
    early_stopping_patience: int = 6
    reduce_lr_patience: int = 3
    reduce_lr_factor: float = 0.5
    min_learning_rate: float = 1e-5
    precision: str = "auto"
    jit_compile: Any = "auto"
    strategy: str = "default"
    sample_images: int = 4
    seed: int = 0
    cpu_budget: float | None = None
    distribution_weight: float = 0.01
    distribution_prior: str = ""
    train_only: list | None = None
    keep_every: int = 0


@dataclass
class Config:
    name: str = "run"
    out_dir: str = "runs"
    model: str = "cunet"
    model_args: dict = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.name


SMOKE = "smoke"  # the tiny preset: each model's own smoke arguments (its registry entry) on a few photos
_COMMON_PRESETS: dict[str, dict] = {
    "default": {},
    SMOKE: {
        "name": SMOKE,
        "data": {"image_size": 32, "batch_size": 4, "max_val_images": 4},
        "train": {"epochs": 2, "steps_per_epoch": 4, "sample_images": 2},
    },
}


@functools.cache
def presets() -> dict[str, dict]:
    """Every training preset by name: default, smoke, then each model's own (koala/models/<arch>.py,
    e.g. resunet34_gan, zhang16_small). Built on first use: it imports every model (and TensorFlow),
    which reading a run folder's config does not need. Treat the mappings as read-only."""
    from koala.models import MODELS

    return {**_COMMON_PRESETS, **{name: preset for spec in MODELS.values() for name, preset in spec.presets.items()}}


def _is_model(name: Any) -> bool:
    from koala.models import MODELS

    return isinstance(name, str) and name in MODELS


def smoke_model_args(model: str) -> dict:
    """The smoke preset's model arguments for ``model``: those its file registers (tiny widths, no downloads)."""
    from koala.models import get_spec

    return dict(get_spec(model).smoke_args)


def merge(base: dict, override: dict) -> dict:
    """A deep copy of ``base`` with ``override`` merged in, mapping by mapping; ``model_args`` and
    ``loss_args`` belong to one model and loss, so an override replaces them whole, never mixed
    with a preset's. Neither input is changed.

    Example: ``merge({"train": {"epochs": 2, "loss": "mse"}}, {"train": {"epochs": 5}})`` is
    ``{"train": {"epochs": 5, "loss": "mse"}}``.
    """
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key not in ("model_args", "loss_args"):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


_NESTED = {(Config, "data"): DataConfig, (Config, "train"): TrainConfig, (DataConfig, "augment"): Augment}

# Value rules checked when a config is read, so a mistake is one line naming the field, not a
# TensorFlow error (or a hang: steps_per_epoch 0 never ends an epoch) minutes into a run.
POSITIVE = {"image_size", "batch_size", "max_train_images", "max_val_images", "epochs", "steps_per_epoch",
            "learning_rate", "sample_images", "cpu_budget"}
NON_NEGATIVE = {"early_stopping_patience", "keep_every", "reduce_lr_patience", "min_learning_rate", "seed", "distribution_weight",
                "rotation", "zoom", "shear", "shift"}
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")  # train.precision (koala.training.setup)
STRATEGIES = ("default", "mirrored", "multiworker")  # train.strategy (koala.training.setup.get_strategy)
CHOICES = {"precision": PRECISIONS, "strategy": STRATEGIES, "jit_compile": ("auto", True, False)}
_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false", dict: "a mapping",
               list: "a list of strings"}


def _typed(value: Any, hint: Any, where: str) -> Any:
    """``value`` checked against a field's type hint (ints accepted as floats); else a ValueError."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None and type(None) in options:
        return None
    for option in options:
        if option is Any or (option is bool and isinstance(value, bool)):
            return value
        if option in (int, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
            if option is float or isinstance(value, int):
                return option(value)
        elif option in (str, dict) and isinstance(value, option):
            return value
        elif option is list and isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return value
        elif option is float and isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    expected = " or ".join("null" if o is type(None) else _TYPE_NAMES.get(o, str(o)) for o in options)
    raise ValueError(f"{where}: expected {expected}; got {value!r}")


def _checked(key: str, value: Any, where: str) -> Any:
    if value is None:
        return value
    if key in POSITIVE and value <= 0:
        raise ValueError(f"{where}: must be positive; got {value!r}")
    if key in NON_NEGATIVE and value < 0:
        raise ValueError(f"{where}: must be zero or more; got {value!r}")
    if key == "source_balance" and not 0 <= value <= 1:
        raise ValueError(f"{where}: must be between 0 and 1; got {value!r}")
    if key == "reduce_lr_factor" and not 0 < value < 1:
        raise ValueError(f"{where}: must be between 0 and 1 (exclusive); got {value!r}")
    if key in CHOICES and value not in CHOICES[key]:
        raise ValueError(f"{where}: must be one of {list(CHOICES[key])}; got {value!r}")
    return value


def _build(cls, values: Any, where: str):
    if not isinstance(values, dict):
        raise ValueError(f"{where}: expected a mapping of fields; got {values!r}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"unknown config key(s) {unknown} in {where}; known: {sorted(known)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        nested = _NESTED.get((cls, key))
        if nested:
            kwargs[key] = _build(nested, {} if value is None else value, f"{where}.{key}")
        else:
            kwargs[key] = _checked(key, _typed(value, hints[key], f"{where}.{key}"), f"{where}.{key}")
    return cls(**kwargs)


def _check_model_and_loss(cfg: Config) -> None:
    """The model name, and the loss and its arguments for models trained with a plain loss, checked
    as :func:`koala.losses.get_loss` checks them (it builds the loss), so both give the same error.
    Models with their own loss, such as zhang16, check their loss_args when they build it."""
    from koala.losses import LOSSES, get_loss
    from koala.models import MODELS

    if cfg.model not in MODELS:
        raise ValueError(f"config.model: unknown model {cfg.model!r}; choose from {sorted(MODELS)}")
    if MODELS[cfg.model].make_loss:
        return
    if cfg.train.loss not in LOSSES:
        raise ValueError(f"config.train.loss: unknown loss {cfg.train.loss!r}; choose from {sorted(LOSSES)}")
    try:
        get_loss(cfg.train.loss, **cfg.train.loss_args)
    except ValueError as e:
        raise ValueError(f"config.train.loss_args: {e}") from None


def from_dict(values: dict, preset: str | None = None) -> Config:
    """A Config from a preset name plus overrides (a file's content or ``--set`` values).

    The smoke preset fits any model: unless ``model_args`` are given, it takes the chosen model's
    smoke arguments (:func:`smoke_model_args`), so ``--preset smoke --set model=zhang16`` is tiny too.
    """
    values = dict(values)
    preset = values.pop("preset", None) or preset or "default"
    if preset not in presets():
        raise ValueError(f"unknown preset {preset!r}; choose from {sorted(presets())}")
    merged = merge(presets()[preset], values)
    model = merged.get("model", Config.model)
    if preset == SMOKE and "model_args" not in merged and _is_model(model):
        merged["model_args"] = smoke_model_args(model)
    cfg = _build(Config, merged, "config")
    _check_model_and_loss(cfg)
    return cfg


def read_values(path: str | Path | None, overrides: list[str] = ()) -> dict:
    """A YAML/JSON file's mapping with ``dotted.key=value`` overrides (values parsed as YAML)."""
    values = _read_yaml(Path(path)) if path else {}
    for item in overrides:
        key, _, raw = item.partition("=")
        if not _:
            raise ValueError(f"override {item!r} must look like key=value")
        node = values
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        try:
            node[leaf] = yaml.safe_load(raw)
        except yaml.YAMLError as e:
            raise ValueError(f"override {item!r}: not a YAML value ({getattr(e, 'problem', None) or e})") from None
    return values


def _read_yaml(path: Path) -> dict:
    """A config file's mapping; a missing file or a YAML error is one line with the file and line."""
    try:
        values = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ValueError(f"{path}: cannot read the config ({e.strerror})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
        raise ValueError(f"{where}: YAML error: {getattr(e, 'problem', None) or e}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ValueError(f"{path}: a config must be a mapping of fields; got {type(values).__name__}")
    return values


def load(path: str | Path | None = None, preset: str | None = None, overrides: list[str] = ()) -> Config:
    """Read a YAML/JSON training config, starting from a preset, with ``overrides``."""
    return from_dict(read_values(path, overrides), preset)


def save(config: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
