"""`koala compare`: train (or load) several colorizers on the same split with the same budget,
score them on the same photos beside the grayscale baseline, and write a report folder.

Each model is trained by :func:`koala.training.train` (the one training path) from one shared
training config plus that model's own overrides, and scored by :func:`koala.evaluation.evaluate`
(so its numbers are those ``koala evaluate`` prints for the same run and photos). The folder::

    report.md     one row per model and the gray baseline: every metric, parameters, time, speed
    report.json   the same numbers, the per-image scores and the resolved settings
    curves.png    training and validation loss per epoch, one panel per model (history.csv)
    grid.png      gray input | each model | ground truth, for a fixed sample of photos plus each
                  model's worst and best photo by PSNR
    runs/         the run folders of the models trained here

A compare config (YAML) names a preset to start from and overrides any of::

    preset: smoke
    out: reports/smoke
    train: {preset: smoke, data: {train: photos/train, val: photos/val}}  # a `koala train` config
    models: all          # every registered model; or a list of names; or {label: overrides}
    model_args: {cunet: {base_filters: 8}}   # per architecture, used when a model is trained
    eval: {data: "", size: 64, limit: 200, samples: 4, fid: ""}

A model entry of ``models`` may override any training field (``{model: cunet, train: {loss:
mse}}``) or load a finished run instead (``{run: runs/default}``). A finished run folder of the
same name under ``out/runs`` is reused, so an interrupted compare picks up where it stopped.
"""
from __future__ import annotations

import copy
import csv
import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from koala import config as config_lib
from koala.evaluation import METRICS, PROTOCOL, evaluate, gray_baseline, load_at_size

log = logging.getLogger(__name__)

# The smallest sensible setting of each architecture known here, for smoke runs: tiny widths, and
# no downloads (koalarization's extractor gets seeded random weights). Architectures registered
# later and not named here are trained with their defaults.
SMOKE_MODEL_ARGS: dict[str, dict] = {
    "cunet": {"base_filters": 8, "batch_norm": False},
    "zhang16": {"width": 0.125},
    "koalarization": {"extractor": "resnet50", "extractor_weights": "none"},
    "resunet34": {"decoder_filters": [16, 16, 8, 8, 8]},
    "resnet18ae": {},
}

PRESETS: dict[str, dict] = {
    "smoke": {  # every registered model, tiny, on scikit-image's photos: a few minutes on 2 CPU cores
        "out": "reports/compare-smoke",
        "train": {
            "preset": "smoke",
            "data": {"image_size": 32, "batch_size": 4, "max_val_images": 6},
            "train": {"epochs": 2, "steps_per_epoch": 4, "sample_images": 2},
        },
        "models": "all",
        "model_args": SMOKE_MODEL_ARGS,
        "eval": {"size": 32, "samples": 2},
    },
}


@dataclass
class EvalSettings:
    """data: folder or split file ("" = the training config's validation photos); size: side of
    the square the photos are scored at (None = the training image_size); limit: first N photos;
    samples: photos in the grid besides each model's worst and best; fid: "" (none),
    "inception_v3" or a .keras feature model, with fid_weights and fid_size as in ``koala evaluate``."""

    data: str = ""
    size: int | None = None
    limit: int | None = None
    samples: int = 4
    fid: str = ""
    fid_weights: str = "imagenet"
    fid_size: int | None = None


@dataclass
class CompareConfig:
    out: str = "reports/compare"
    train: dict = field(default_factory=dict)
    models: Any = "all"
    model_args: dict = field(default_factory=dict)
    eval: EvalSettings = field(default_factory=EvalSettings)


@dataclass
class Entry:
    """One model of the comparison: trained from ``cfg``, or loaded from ``run`` when cfg is None."""

    label: str
    arch: str
    run: Path
    cfg: config_lib.Config | None = None


def _merge(base: dict, override: dict) -> dict:
    """Deep merge; ``model_args`` and ``loss_args`` are replaced whole, as in koala.config."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key not in ("model_args", "loss_args"):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


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
    merged["train"] = _merge(base.get("train", {}), values.get("train") or {})
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


def entries(cc: CompareConfig) -> list[Entry]:
    """The models to compare, each with its resolved training config (or its run folder)."""
    from koala.models import MODELS, get_spec

    if cc.models == "all":
        wanted = {name: {} for name in MODELS}
    elif isinstance(cc.models, (list, tuple)):
        wanted = {name: {} for name in cc.models}
    elif isinstance(cc.models, dict):
        wanted = {label: dict(over or {}) for label, over in cc.models.items()}
    else:
        raise ValueError(f"models must be 'all', a list of model names or a mapping; got {cc.models!r}")
    if not wanted:
        raise ValueError("no models to compare")
    out = []
    for label, over in wanted.items():
        if "run" in over:
            run = Path(over["run"])
            meta = json.loads((run / "koala.json").read_text()) if (run / "koala.json").is_file() else {}
            out.append(Entry(label, meta.get("model", label), run))
            continue
        arch = over.get("model", label)
        get_spec(arch)
        values = _merge(cc.train, {"name": label, "out_dir": str(Path(cc.out) / "runs"), "model": arch,
                                   "model_args": cc.model_args.get(arch, {})})
        cfg = config_lib.from_dict(_merge(values, over))
        out.append(Entry(label, arch, cfg.run_dir, cfg))
    return out


def _finished(run: Path) -> bool:
    return (run / "best.keras").is_file() and not (run / "backup").exists()


def train_entry(entry: Entry, overwrite: bool = False) -> bool:
    """Train the entry unless a finished run is there (or it is a loaded run); True if trained."""
    import keras

    from koala.training import train

    if entry.cfg is None or (_finished(entry.run) and not overwrite):
        if not _finished(entry.run):
            raise FileNotFoundError(f"{entry.run}: no finished run (best.keras) to load for {entry.label!r}")
        return False
    keras.backend.clear_session()
    train(entry.cfg, overwrite=overwrite)
    return True


def run_facts(entry: Entry, network) -> dict:
    """Parameters, training time and training speed of a run, from its folder."""
    from koala.models import get_spec, trainable_params

    spec = get_spec(entry.arch)
    meta = json.loads((entry.run / "koala.json").read_text()) if (entry.run / "koala.json").is_file() else {}
    seconds, epochs = meta.get("train_seconds"), meta.get("epochs_run")
    speed = None
    cfg_path = entry.run / "config.yaml"
    if seconds and epochs and cfg_path.is_file():
        cfg = config_lib.load(cfg_path)
        if cfg.train.steps_per_epoch:
            speed = epochs * cfg.train.steps_per_epoch * cfg.data.batch_size / seconds
    return {"arch": entry.arch, "run": str(entry.run),
            "params": int(spec.count_params(network) if spec.count_params else trainable_params(network)),
            "train_seconds": seconds, "epochs": epochs, "train_images_per_second": speed}


def compare(cc: CompareConfig, out: str | Path | None = None, overwrite: bool = False, progress: bool = True) -> Path:
    """Train or load every model of ``cc``, evaluate them on the same photos and write the
    report folder (``out``, default ``cc.out``); returns the folder."""
    from koala.images import list_images
    from koala.inference import Colorizer
    from koala.training import data_source

    if out is not None:
        cc = dataclasses.replace(cc, out=str(out))
    folder = Path(cc.out)
    folder.mkdir(parents=True, exist_ok=True)
    models = entries(cc)
    base = config_lib.from_dict({**cc.train, "model_args": {}})
    size = cc.eval.size or base.data.image_size
    source = cc.eval.data or data_source(base.data.val)
    paths = list_images(source)[: cc.eval.limit]
    features = None
    if cc.eval.fid:
        from koala.metrics import load_feature_extractor

        features = load_feature_extractor(cc.eval.fid, cc.eval.fid_weights, cc.eval.fid_size)

    results, colorizers, failures = {}, {}, {}
    for entry in models:
        start = time.time()
        try:
            trained = train_entry(entry, overwrite)
            colorizer = Colorizer.load(entry.run)
        except Exception as e:  # one model that cannot train must not sink the comparison
            log.exception("compare: %s failed", entry.label)
            failures[entry.label] = f"{type(e).__name__}: {e}"
            continue
        print(f"compare: {entry.label}: {'trained' if trained else 'loaded'} {entry.run} "
              f"({time.time() - start:.0f} s); evaluating on {len(paths)} photo(s) at {size} px", flush=True)
        report = evaluate(colorizer, paths, progress=progress, size=size, features=features)
        results[entry.label] = {**run_facts(entry, colorizer.network), "evaluation": report}
        colorizers[entry.label] = colorizer
    if not results:
        raise RuntimeError(f"every model failed: {failures}")

    first = next(iter(results.values()))["evaluation"]
    summary = {"data": str(source), "images": first["images"], "size": size, "out": str(folder),
               "budget": {"epochs": base.train.epochs, "steps_per_epoch": base.train.steps_per_epoch,
                          "batch_size": base.data.batch_size, "image_size": base.data.image_size},
               "fid_extractor": first.get("fid_extractor"),
               "gray_baseline": first["gray_baseline"], "models": results, "failed": failures,
               "config": {**dataclasses.asdict(cc)}}
    (folder / "report.json").write_text(json.dumps(summary, indent=2, default=str))
    plot_curves({label: Path(r["run"]) for label, r in results.items()}, folder / "curves.png")
    rows = grid_rows([p["path"] for p in first["per_image"]], results, cc.eval.samples)
    plot_grid(rows, colorizers, size, folder / "grid.png")
    (folder / "report.md").write_text(format_report(summary, rows))
    return folder


TABLE_HEAD = ("model", "params", "train s", "train img/s", "infer img/s")
SHORT = {"colourfulness": "CF", "colourfulness_ratio": "CF ratio", "delta_colourfulness": "ΔCF"}


def _cell(value, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}f}"


def metric_keys(summary: dict) -> list[str]:
    return [k for k in METRICS if k in summary["gray_baseline"]]


def format_table(summary: dict) -> str:
    """The Markdown table: one row per model, then the gray baseline."""
    keys = metric_keys(summary)
    lines = ["| " + " | ".join(TABLE_HEAD + tuple(SHORT.get(k, k) for k in keys)) + " |",
             "|---|" + "---:|" * (len(TABLE_HEAD) - 1 + len(keys))]
    for label, r in summary["models"].items():
        ev = r["evaluation"]
        cells = [f"{label} ({r['arch']})" if label != r["arch"] else label, _cell(r["params"]),
                 _cell(r["train_seconds"], 0), _cell(r["train_images_per_second"], 2),
                 _cell(ev["images_per_second"], 2)]
        lines.append("| " + " | ".join(cells + [_cell(ev["model"][k]) for k in keys]) + " |")
    gray = ["gray baseline", "—", "—", "—", "—"] + [_cell(summary["gray_baseline"][k]) for k in keys]
    lines.append("| " + " | ".join(gray) + " |")
    return "\n".join(lines)


def format_report(summary: dict, rows: list[tuple[str, str]]) -> str:
    b = summary["budget"]
    steps = f"{b['steps_per_epoch']} steps" if b["steps_per_epoch"] else "full passes"
    lines = [
        "# koala compare",
        "",
        f"Scored on {summary['images']} photo(s) of `{summary['data']}` at {summary['size']} x "
        f"{summary['size']} px. Same training budget for every trained model: {b['epochs']} epoch(s) of "
        f"{steps}, batch {b['batch_size']}, {b['image_size']} px crops. Metrics as defined in koala's "
        f"{PROTOCOL} (8-bit results, each beside the gray baseline).",
        "",
        format_table(summary),
        "",
        "Columns: params = trainable parameters; train s = training time (with validation); "
        "train img/s = training images per second (with validation); infer img/s = colorized photos "
        "per second at the scoring size.",
    ]
    lines += [f"- **{SHORT.get(k, k)}**: {METRICS[k]}" for k in metric_keys(summary)]
    if summary.get("fid_extractor"):
        lines.append(f"- fid features: {summary['fid_extractor']}")
    if summary["failed"]:
        lines += ["", "Failed:"] + [f"- {label}: {why}" for label, why in summary["failed"].items()]
    lines += ["", "Training curves: ![curves](curves.png)", "",
              "Gray input | each model | ground truth: ![grid](grid.png)", ""]
    lines += [f"- row {i + 1}: `{Path(path).name}` ({why})" for i, (path, why) in enumerate(rows)]
    return "\n".join(lines) + "\n"


def grid_rows(paths: list[str], results: dict, samples: int) -> list[tuple[str, str]]:
    """(path, why) rows of the image grid: ``samples`` photos evenly spaced over the list, then
    each model's worst and best photo by PSNR; a photo chosen twice appears once."""
    rows: dict[str, list[str]] = {}
    if samples > 0:
        for i in sorted(set(np.linspace(0, len(paths) - 1, min(samples, len(paths))).round().astype(int))):
            rows.setdefault(paths[i], []).append("sample")
    for label, r in results.items():
        scores = [p["psnr"] for p in r["evaluation"]["per_image"]]
        rows.setdefault(paths[int(np.argmin(scores))], []).append(f"worst {label}")
        rows.setdefault(paths[int(np.argmax(scores))], []).append(f"best {label}")
    return [(path, ", ".join(why)) for path, why in rows.items()]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_grid(rows: list[tuple[str, str]], colorizers: dict, size: int, path: Path) -> None:
    """gray | each model | truth for every row, at the scoring size."""
    plt = _pyplot()
    titles = ["gray input", *colorizers, "ground truth"]
    fig, axes = plt.subplots(len(rows), len(titles), figsize=(1.8 * len(titles), 1.9 * len(rows)), squeeze=False)
    for r, (image_path, why) in enumerate(rows):
        true = load_at_size(image_path, size)
        images = [gray_baseline(true), *(c.colorize_float(true) for c in colorizers.values()), true]
        for c, image in enumerate(images):
            axes[r, c].imshow(np.clip(image, 0, 1))
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
            if r == 0:
                axes[r, c].set_title(titles[c], fontsize=8)
        axes[r, 0].set_ylabel("\n".join([Path(image_path).stem, *why.split(", ")]), fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def read_history(run: Path) -> dict[str, list[float]]:
    """Columns of a run's history.csv (empty when there is none)."""
    history = run / "history.csv"
    if not history.is_file():
        return {}
    with open(history) as f:
        rows = list(csv.DictReader(f))
    return {key: [float(row[key]) for row in rows if row.get(key) not in (None, "")] for key in (rows[0] if rows else {})}


def plot_curves(runs: dict[str, Path], path: Path) -> None:
    """Loss and validation loss per epoch, one panel per model (losses differ between models)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(runs), figsize=(3.2 * len(runs), 2.8), squeeze=False)
    for ax, (label, run) in zip(axes[0], runs.items()):
        history = read_history(run)
        for key in ("loss", "val_loss"):
            if history.get(key):
                epochs = np.arange(1, len(history[key]) + 1)
                ax.plot(epochs, history[key], marker="o", label=key)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("epoch")
        if history:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "no history.csv", ha="center", transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
