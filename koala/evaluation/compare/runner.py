"""`koala compare`'s steps: the models to compare, training or loading each run, scoring them
all on the same photos, then the report folder (:func:`compare`)."""
from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import keras

from koala import config as config_lib
from koala.evaluation.compare.config import CompareConfig
from koala.evaluation.compare.plots import grid_rows, plot_curves, plot_grid
from koala.evaluation.compare.report import write_json, write_markdown
from koala.evaluation.evaluate import evaluate, write_report
from koala.evaluation.frontier import plot_frontier, sweep_report
from koala.evaluation.metrics import load_feature_extractor
from koala.data.sources import data_source
from koala.images import list_images
from koala.inference import Colorizer
from koala.models import MODELS, get_spec, trainable_params
from koala.runs import Run
from koala.training import train

log = logging.getLogger(__name__)


@dataclass
class Entry:
    """One model of the comparison: trained from ``cfg``, or loaded from ``run`` when cfg is None."""

    label: str
    arch: str
    run: Path
    cfg: config_lib.Config | None = None


def entries(cc: CompareConfig) -> list[Entry]:
    """The models to compare, each with its resolved training config (or its run folder)."""
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
            out.append(Entry(label, Run(run).read_metadata().get("model", label), run))
            continue
        arch = over.get("model", label)
        get_spec(arch)
        own = {"model_args": cc.model_args[arch]} if arch in cc.model_args else {}
        values = config_lib.merge(cc.train, {"name": label, "out_dir": str(Path(cc.out) / "runs"), "model": arch, **own})
        cfg = config_lib.from_dict(config_lib.merge(values, over))
        out.append(Entry(label, arch, cfg.run_dir, cfg))
    return out


def train_entry(entry: Entry, overwrite: bool = False) -> bool:
    """Train the entry unless a finished run is there (or it is a loaded run); True if trained."""
    run = Run(entry.run)
    if entry.cfg is None or (run.finished and not overwrite):
        if not run.finished:
            raise FileNotFoundError(f"{entry.run}: no finished run ({run.best.name}) to load for {entry.label!r}")
        return False
    keras.backend.clear_session()
    train(entry.cfg, overwrite=overwrite)
    return True


def run_facts(entry: Entry, network: keras.Model) -> dict:
    """Parameters, training time and training speed of a run, from its folder."""
    run = Run(entry.run)
    meta = run.read_metadata()
    seconds, epochs = meta.get("train_seconds"), meta.get("epochs_run")
    speed = None
    cfg = run.read_config() if seconds and epochs and run.config_file.is_file() else None
    if cfg is not None and cfg.train.steps_per_epoch:
        speed = epochs * cfg.train.steps_per_epoch * cfg.data.batch_size / seconds
    return {"arch": entry.arch, "run": str(entry.run), "params": trainable_params(network),
            "train_seconds": seconds, "epochs": epochs, "train_images_per_second": speed}


def write_frontier(cc: CompareConfig, colorizers: dict[str, Colorizer], source: str, size: int, folder: Path,
                   progress: bool = True) -> tuple[dict, dict[str, str]]:
    """The saturation frontier (``cc.eval.sweep``, ``cc.eval.groups``) of the scored models on the
    table's photos (``source``, ``cc.eval.limit``) at its ``size``, so its numbers match the table;
    written to frontier.json and frontier.png in ``folder``. Returns the frontier report and
    {"json": ..., "png": ...}, the file names in ``folder``."""
    report = sweep_report(colorizers, str(source), cc.eval.sweep, None, size, cc.eval.limit, progress,
                          cc.eval.groups)
    json_path, png_path = write_report(report, folder / "frontier.json", plot_frontier)
    return report, {"json": json_path.name, "png": png_path.name}


def compare(cc: CompareConfig, out: str | Path | None = None, overwrite: bool = False, progress: bool = True) -> Path:
    """Train or load every model of ``cc``, evaluate them on the same photos and write the
    report folder (``out``, default ``cc.out``); returns the folder. With ``cc.eval.sweep``, also
    the saturation frontier of every scored model on those photos at that size (frontier.json, .png)."""
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

    frontier, frontier_files = None, {}
    if cc.eval.sweep is not None:
        frontier, frontier_files = write_frontier(cc, colorizers, source, size, folder, progress)

    first = next(iter(results.values()))["evaluation"]
    summary = {"data": str(source), "images": first["images"], "size": size, "out": str(folder),
               "budget": {"epochs": base.train.epochs, "steps_per_epoch": base.train.steps_per_epoch,
                          "batch_size": base.data.batch_size, "image_size": base.data.image_size},
               "fid_extractor": first.get("fid_extractor"),
               "gray_baseline": first["gray_baseline"], "models": results, "failed": failures,
               **({"frontier": frontier_files} if frontier_files else {}),
               "config": {**dataclasses.asdict(cc)}}
    write_json(summary, folder)
    plot_curves({label: Run(r["run"]).history() for label, r in results.items()}, folder / "curves.png")
    rows = grid_rows([p["path"] for p in first["per_image"]], results, cc.eval.samples)
    plot_grid(rows, colorizers, size, folder / "grid.png")
    write_markdown(summary, rows, folder, frontier)
    return folder
