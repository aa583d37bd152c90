"""The `koala` command: models, train, colorize, export, serve, evaluate, compare and batch
(colorize, embed on Apache Beam). argparse lives here only; each command imports the library it
drives when it runs, so `koala --help` and bad arguments answer without loading TensorFlow."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import NoReturn

INTERRUPTED_EXIT = 130  # 128 + SIGINT, what shells report for Ctrl-C
MODEL_HELP = ("'default' (it takes colour hints, --reference or --palette and suggests colours; 'hints' and "
              "'guided' name it too), a run folder or a .keras file")
SATURATION_HELP = ("scale the predicted colours (default: the model's own); hinted colours come out as given "
                   "at any saturation")
REFERENCE_HELP = ("colour like this colour photo (models with a global-hint input): its colours, blurred, "
                  "become the photo-wide hint")
PALETTE_HELP = ('colour with these colours (models with a global-hint input): "#c02020,#2050a0", '
                'weights after a colon ("#c02020:2,#2050a0:1"); at most {max_palette}')


def _cmd_models(args: argparse.Namespace) -> int:
    from koala.models import MODELS, get_model, trainable_params

    print(f"{'name':<14}{'params':>12}  {'size':>5}  {'output':<7} {'presets':<30} paper")
    for name, spec in MODELS.items():
        presets = ", ".join(spec.presets) or "-"
        print(f"{name:<14}{trainable_params(get_model(name)):>12,}  {spec.default_size:>5}  {spec.output:<7} "
              f"{presets:<30} {spec.paper}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from koala import config as config_lib
    from koala.runs import FinishedRunError, Run
    from koala.training import train

    overrides = list(args.set or [])
    if args.name:
        overrides.append(f"name={args.name}")
    if args.out_dir:
        overrides.append(f"out_dir={args.out_dir}")
    cfg = config_lib.load(args.config, args.preset, overrides)
    try:
        run = Run(train(cfg, overwrite=args.overwrite))
    except FinishedRunError as e:
        raise FinishedRunError(f"{e} (koala train: --set FIELD=VALUE sets a config field, --name NEW names "
                               "the run, --overwrite replaces it)") from None
    print(f"trained model: {run.best}")
    return 0


def _output_dir(out: str) -> Path:
    """The output folder, created if needed; refuses a file name or a folder it cannot write to
    before any photo is colorized."""
    from koala.outputs import INPUT_EXTENSIONS

    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ValueError(f"-o {out}: exists and is not a folder (-o takes a folder)")
    if not path.exists() and path.suffix.lower() in INPUT_EXTENSIONS:
        raise ValueError(f"-o {out}: looks like a file name; -o takes a folder (outputs are named after the inputs)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"-o {out}: cannot create the folder ({e.strerror})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"-o {out}: folder not writable (permission denied)")
    return path


def _cmd_colorize(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from koala.data.hints import HintError, NoHintInputsError
    from koala.images import ImageError, as_pixels, write_atomic
    from koala.inference import Colorizer
    from koala.inputs import expand_inputs
    from koala.outputs import KEEP, WRITE, claim
    from koala.video import is_video
    from koala.video.colorize import check_options, colorize_video

    check_options(args.temporal, args.crf, ("--temporal", "--crf"))  # before any model is loaded
    hints = _read_hints_option(args.hints, args.inputs)
    pairs, errors = expand_inputs(args.inputs)
    for line in errors:
        print(f"koala colorize: {line}", file=sys.stderr)
    if hints is not None and len(pairs) > 1:
        raise ValueError(f"--hints {args.hints}: {args.inputs[0]} names {len(pairs)} photos; a hints file is for one photo")
    colorizer = Colorizer.load(args.model, saturation=args.saturation, temperature=args.temperature)
    global_hint = colorizer.global_hint(args.reference, args.palette)  # refused here, before anything is written
    out_dir = _output_dir(args.out_dir)
    originals = {os.path.realpath(source) for source, _ in pairs}
    claimed, done, kept, failed = {}, 0, 0, len(errors)

    def report(message: str) -> None:
        tqdm.write(f"koala colorize: {message}", file=sys.stderr)

    for source, relative in tqdm(pairs, disable=len(pairs) < 2, unit="file", file=sys.stderr):
        target = out_dir / relative
        verdict = claim(source, str(target), claimed.get(target), os.path.realpath(target) in originals,
                        target.exists(), args.overwrite)
        claimed.setdefault(target, source)
        if verdict == KEEP:  # done by an earlier run: not a failure
            kept += 1
            continue
        if verdict != WRITE:
            report(f"{source}: {verdict}")
            failed += 1
            continue
        try:
            if is_video(source):
                if hints is not None:
                    raise ValueError(f"--hints {args.hints}: hints are for a photo; {source} is a film")
                colorize_video(colorizer, source, target, temporal=args.temporal, crf=args.crf,
                               overwrite=args.overwrite, progress=True, global_hint=global_hint)
            else:
                png = colorizer.colorize_pngs([as_pixels(source)], [hints], [global_hint])[0]
                write_atomic(target, png, overwrite=args.overwrite)
            done += 1
        except HintError as e:  # the hints do not fit this photo: stop, as for a bad hints file
            raise ValueError(f"--hints {args.hints}: {e}") from None
        except NoHintInputsError as e:
            raise ValueError(f"{e} (--model hints)") from None
        except (ImageError, OSError) as e:
            report(str(e) if isinstance(e, ImageError) else f"{source}: {e}")
            failed += 1
    print(f"colorized {done} of {len(pairs) + len(errors)} input(s) into {out_dir}/; {kept} kept "
          f"(output already there; --overwrite replaces it), {failed} failed", file=sys.stderr)
    return 1 if failed else 0


def _cmd_suggest(args: argparse.Namespace) -> int:
    import json

    from koala.data.hints import read_hints
    from koala.inference import Colorizer

    x, y = _point(args.at)
    hints = None if args.hints is None else read_hints(args.hints)
    colorizer = Colorizer.load(args.model)
    suggestions = colorizer.suggest(args.photo, x, y, k=args.k, hints=hints, reference=args.reference,
                                    palette=args.palette)
    print(json.dumps(suggestions, indent=2))
    return 0


def _point(text: str) -> tuple[float, float]:
    """'X,Y' (pixels of the photo) -> (x, y), or a one-line error naming --at."""
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--at: expected X,Y in the photo's pixels, e.g. 120,80; got {text!r}") from None
    return x, y


def _read_hints_option(path: str | None, inputs: list[str]):
    """The ``--hints`` file's table (checked, before any model is loaded), or None without one."""
    if path is None:
        return None
    from koala.data.hints import read_hints

    if len(inputs) != 1:
        raise ValueError(f"--hints {path}: give one photo with a hints file (got {len(inputs)} inputs)")
    return read_hints(path)


def _cmd_export(args: argparse.Namespace) -> int:
    from koala.export import export

    try:
        target = export(args.model, args.out, version=args.version, fmt=args.format, saturation=args.saturation,
                        temperature=args.temperature)
    except FileExistsError as e:
        raise FileExistsError(f"{e} (omit --version to use the next free one)") from None
    print(f"exported {args.format}: {target}")
    return 0


def _raise_open_file_limit() -> None:
    """Idle connections cost a descriptor each: allow as many as the hard limit permits."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = 65536 if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _log_server_events() -> None:
    """One timestamped stderr line per request (``koala.access``) and per waitress warning (e.g.
    "Task queue depth is 2": requests waiting for a thread), instead of waitress's bare lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    for name, level in (("koala.access", logging.INFO), ("waitress", logging.WARNING)):
        log = logging.getLogger(name)
        log.addHandler(handler)
        log.setLevel(level)
        log.propagate = False


def _cmd_serve(args: argparse.Namespace) -> NoReturn:
    from koala.inference import Colorizer
    from koala.serving.app import SLOT_PIXELS, create_app, make_server

    _raise_open_file_limit()
    _log_server_events()
    colorizer = Colorizer.load(args.model)
    app = create_app(colorizer, workers=args.workers, queue=args.queue,
                     max_upload_mb=args.max_upload_mb, max_pixels=args.max_pixels)
    try:
        server = make_server(app, args.host, args.port)
    except OSError as e:
        raise ValueError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}") from None
    print(f"serving {colorizer.metadata['model']} on http://{args.host}:{server.effective_port}/ "
          f"(waitress; {args.workers} worker(s), {args.workers + args.queue} slots of "
          f"{SLOT_PIXELS // 1_000_000} MP); Ctrl-C stops", flush=True)
    try:
        server.run()  # waitress ends its loop on Ctrl-C and swallows the KeyboardInterrupt
    finally:
        server.close()
    raise KeyboardInterrupt


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import json

    from koala.inference import Colorizer

    models = args.model or ["default"]
    if args.hints is not None:
        return _hints_curve(args, models)
    if args.reference is not None or args.suggest is not None:
        return _reference_or_suggest(args, models)
    if args.sweep is not None or args.sweep_temperature is not None:
        return _sweep(args, models)
    if len(models) > 1:
        raise ValueError("give one --model, or several with --sweep/--sweep-temperature to compare frontiers")
    from koala.evaluation.evaluate import evaluate, format_table
    from koala.images import list_images, write_atomic

    paths = list_images(args.data)[: args.limit]
    colorizer = Colorizer.load(models[0], saturation=args.saturation, temperature=args.temperature)
    features = None
    if args.fid:
        from koala.evaluation.metrics import load_feature_extractor

        features = load_feature_extractor(args.fid, args.fid_weights, args.fid_size)
    report = evaluate(colorizer, paths, size=args.size, features=features)
    report["model_path"], report["data"] = str(models[0]), str(args.data)
    print(f"{report['images']} image(s) at {args.size or 'full'} px, "
          f"{report['images_per_second']:.2f} images/s ({report['megapixels_per_second']:.3f} MP/s); "
          f"metrics as in koala's {report['protocol']}")
    print(format_table(report))
    if args.out:  # atomic: a kill never leaves half a report in place of the last one
        write_atomic(args.out, json.dumps(report, indent=2).encode(), overwrite=True)
        print(f"report written to {args.out}")
    return 0


def _sweep(args: argparse.Namespace, models: list[str]) -> int:
    """``koala evaluate --sweep``: the PSNR-colourfulness frontier of each model, beside gray."""
    from koala.evaluation import frontier
    from koala.evaluation.evaluate import write_report
    from koala.inference import Colorizer
    from koala.knobs import check_saturation, check_temperature

    if not args.out:
        raise ValueError("--sweep/--sweep-temperature need --out F.json (the plot goes beside it as F.png)")
    saturations = frontier.parse_values(args.sweep, "--sweep", check_saturation)
    temperatures = frontier.parse_values(args.sweep_temperature, "--sweep-temperature", check_temperature)
    colorizers = {}
    for item in models:
        label, model = frontier.parse_labelled(item)  # LABEL=MODEL names a curve
        colorizer = Colorizer.load(model, saturation=args.saturation, temperature=args.temperature)
        frontier.check_temperatures(colorizer, temperatures or [], label)
        colorizers[label] = colorizer
    report = frontier.sweep_report(colorizers, args.data, saturations, temperatures, args.size, args.limit,
                                   groups=frontier.parse_groups(args.group, "--group"))
    json_path, plot_path = write_report(report, args.out, frontier.plot_frontier)
    print(frontier.markdown_table(report))
    print(f"frontier written to {json_path} and {plot_path}")
    return 0


def _hints_curve(args: argparse.Namespace, models: list[str]) -> int:
    """``koala evaluate --hints``: scores by number of simulated hints, beside ideepcolor's curve."""
    from koala.data.hints import NoHintInputsError
    from koala.evaluation import frontier, hints
    from koala.evaluation.evaluate import write_report
    from koala.inference import Colorizer

    counts = hints.parse_counts(args.hints, "--hints")
    if not args.out:
        raise ValueError("--hints needs --out F.json (the plot goes beside it as F.png)")
    if len(models) > 1 or args.sweep is not None or args.sweep_temperature is not None:
        raise ValueError("--hints scores one --model and takes no --sweep")
    colorizer = Colorizer.load(models[0], saturation=args.saturation, temperature=args.temperature)
    try:
        report = hints.hints_report(colorizer, args.data, counts, args.size, args.limit, seed=args.seed,
                                    groups=frontier.parse_groups(args.group, "--group"))
    except NoHintInputsError as e:
        raise ValueError(f"--hints: {e.reason} (--model hints)") from None
    report["model_path"] = str(models[0])
    json_path, plot_path = write_report(report, args.out, hints.plot_hints)
    print(hints.markdown_table(report))
    print(f"hints curve written to {json_path} and {plot_path}")
    return 0


def _reference_or_suggest(args: argparse.Namespace, models: list[str]) -> int:
    """``koala evaluate --reference self,other`` or ``--suggest K``: as users see them, beside no reference
    and beside the automatic colour."""
    import json

    from koala.evaluation import reference, suggest
    from koala.evaluation.evaluate import write_report
    from koala.evaluation.frontier import parse_groups
    from koala.images import write_atomic
    from koala.inference import Colorizer

    option = "--reference" if args.reference is not None else "--suggest"
    if args.reference is not None and args.suggest is not None:
        raise ValueError("give --reference or --suggest, not both")
    kinds = reference.parse_kinds(args.reference) if args.reference is not None else None
    if not args.out:
        raise ValueError(f"{option} needs --out F.json" + (" (the grid goes beside it as F.png)" if kinds else ""))
    if len(models) > 1 or args.sweep is not None or args.sweep_temperature is not None:
        raise ValueError(f"{option} scores one --model and takes no --sweep")
    colorizer = Colorizer.load(models[0], saturation=args.saturation, temperature=args.temperature)
    if kinds:
        colorizer.global_hint(palette="#808080")  # a model without a global-hint input is refused before any photo
        report, grid = reference.reference_report(colorizer, args.data, kinds, args.size, args.limit, seed=args.seed,
                                                  groups=parse_groups(args.group, "--group"))
        report["model_path"] = str(models[0])
        json_path, grid_path = write_report(report, args.out, lambda _, path: reference.plot_grid(grid, path))
        print(reference.markdown_table(report))
        print(f"reference report written to {json_path} and its grid to {grid_path}")
        return 0
    report = suggest.suggest_report(colorizer, args.data, args.suggest, args.size, args.limit, seed=args.seed)
    report["model_path"] = str(models[0])
    write_atomic(args.out, (json.dumps(report, indent=2) + "\n").encode(), overwrite=True)
    print(suggest.markdown_table(report))
    print(f"suggestion report written to {args.out}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    import json

    from koala.evaluation.compare import config as compare_config
    from koala.evaluation.compare import report as compare_report
    from koala.evaluation.compare import runner

    cc = compare_config.load(args.config, args.preset, list(args.set or []))
    folder = runner.compare(cc, out=args.out, overwrite=args.overwrite)
    summary = json.loads((folder / "report.json").read_text())
    print(compare_report.format_table(summary))
    files = ["report.md", "report.json", "curves.png", "grid.png", *summary.get("frontier", {}).values()]
    print(f"report written to {folder}/ ({', '.join(files)})")
    return 0


def _print_counts(command: str, counts: dict[str, int], verb: str, where: str, dead_letters: str) -> int:
    from koala.batch.common import DONE, FAILED, SKIPPED

    print(f"{verb} {counts[DONE]} image(s) into {where}; {counts[SKIPPED]} skipped (already done), "
          f"{counts[FAILED]} failed", file=sys.stderr)
    if counts[FAILED]:
        print(f"koala batch {command}: {counts[FAILED]} input(s) failed; see {dead_letters}", file=sys.stderr)
    return 1 if counts[FAILED] else 0


def _require_beam() -> None:
    try:
        import apache_beam  # noqa: F401
    except ModuleNotFoundError:
        raise ValueError("apache-beam is not installed (pip install 'koala[beam]')") from None


def _cmd_batch_colorize(args: argparse.Namespace) -> int:
    from koala.batch import DEAD_LETTER_NAME
    from koala.data.hints import NoHintInputsError

    _require_beam()
    from koala.batch.colorize import colorize

    try:
        counts = colorize(args.inputs, args.out_dir, beam_args=args.beam_args, model=args.model,
                          saturation=args.saturation, temperature=args.temperature, overwrite=args.overwrite,
                          batch=args.batch, temporal=args.temporal, crf=args.crf, hint_files=args.hint_files,
                          reference=args.reference)
    except NoHintInputsError as e:
        raise ValueError(f"--hint-files: {e.reason} (--model hints)") from None
    return _print_counts("colorize", counts, "colorized", f"{args.out_dir}/",
                         os.path.join(args.out_dir, DEAD_LETTER_NAME))


def _cmd_batch_embed(args: argparse.Namespace) -> int:
    from koala.batch import DEAD_LETTER_NAME

    _require_beam()
    from koala.batch.embed import embed

    counts = embed(args.manifest, args.out, args.extractor, args.weights, batch=args.batch,
                   shards_dir=args.shards, beam_args=args.beam_args)
    return _print_counts("embed", counts, "embedded", args.out, f"{args.out}.{DEAD_LETTER_NAME}")


def _at_least_one(text: str) -> int:
    """An argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1; got {value}")
    return value


def _add_global_hint_options(parser: argparse.ArgumentParser, palette: bool = True) -> None:
    """--reference (and --palette), for the commands that colorize or suggest."""
    from koala.knobs import MAX_PALETTE  # no TensorFlow import here

    group = parser.add_mutually_exclusive_group()
    group.add_argument("--reference", metavar="PHOTO", help=REFERENCE_HELP)
    if palette:
        group.add_argument("--palette", metavar="COLOURS", help=PALETTE_HELP.format(max_palette=MAX_PALETTE))


def _add_film_options(parser: argparse.ArgumentParser) -> None:
    """--temporal and --crf, for koala colorize and koala batch colorize."""
    from koala import video  # constants only: no PyAV or TensorFlow import here

    parser.add_argument("--temporal", type=float, default=video.DEFAULT_TEMPORAL, metavar="S",
                        help="films: time constant in seconds of the colours' running average in still parts "
                             f"of a shot, reset at cuts (default {video.DEFAULT_TEMPORAL:g}; 0: frame by frame)")
    parser.add_argument("--crf", type=int, default=video.DEFAULT_CRF,
                        help=f"films: H.264 quality, 0 (lossless) to {video.MAX_CRF}; lower is better and "
                             f"bigger (default {video.DEFAULT_CRF})")


def _add_batch_parser(sub: argparse._SubParsersAction) -> None:
    """``koala batch colorize | embed``: Beam pipelines; options they do not know are Beam's."""
    from koala import batch as batch_lib  # constants only: no Beam or TensorFlow import here

    beam_help = ("Other --name=value options go to Apache Beam: --runner=DirectRunner "
                 "--direct_running_mode=multi_processing --direct_num_workers=N (this machine), or "
                 "DataflowRunner / FlinkRunner options (docs/batch.md). Needs pip install koala[beam].")
    batch = _command(sub, "batch", "Apache Beam jobs: colorize an archive, compute the embedding cache")
    jobs = batch.add_subparsers(dest="job", required=True, metavar="JOB")

    p = _command(jobs, "colorize", "colorize files, folders or globs on any filesystem Beam knows", epilog=beam_help)
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="files, folders (recursive) or globs of photos and films; local or gs://...")
    p.add_argument("-o", "--out-dir", required=True, help="folder for the PNGs, films and failed.tsv")
    p.add_argument("--model", default="default", help=MODEL_HELP)
    p.add_argument("--hint-files", action="store_true",
                   help="read each photo's colour hints from <stem>.json beside it, where there is one "
                        "(koala colorize --hints' format); without it such files are left alone")
    _add_global_hint_options(p, palette=False)
    p.add_argument("--saturation", type=float, help=SATURATION_HELP)
    p.add_argument("--temperature", type=float, help="annealed-mean temperature (zhang16)")
    p.add_argument("--batch", type=_at_least_one, default=batch_lib.COLORIZE_BATCH,
                   help=f"photos per model call on a worker (default {batch_lib.COLORIZE_BATCH})")
    _add_film_options(p)
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: skip them)")
    p.set_defaults(func=_cmd_batch_colorize, beam_args=[])

    p = _command(jobs, "embed", "compute the koalarization embedding cache (data_tools.embed) on Beam workers",
                 epilog=beam_help)
    add_embed_arguments(p)
    p.add_argument("--shards", help="folder for the workers' shards, any filesystem Beam knows "
                                    f"(default OUT{batch_lib.SHARDS_SUFFIX}, beside the cache)")
    p.set_defaults(func=_cmd_batch_embed, beam_args=[])


def add_embed_arguments(parser: argparse.ArgumentParser, extractors: list[str] | None = None) -> None:
    """The arguments of an embedding run, for ``koala batch embed`` and ``python -m data_tools.embed``
    alike. ``extractors``: the names to accept (a caller that has loaded TensorFlow); without them
    the library refuses an unknown name, and help lists the registry's names when shown."""
    from koala import batch as batch_lib  # constants only: no Beam or TensorFlow import here

    parser.add_argument("manifest", help="folder, split file (.txt) or image")
    parser.add_argument("out", metavar="OUT", help="the HDF5 cache to create or extend (e.g. embeddings.h5)")
    parser.add_argument("--extractor", required=True, choices=extractors, metavar="NAME",
                        help=f"the frozen classifier: {', '.join(extractors) if extractors else '{extractors}'}")
    parser.add_argument("--weights", default="imagenet", help="imagenet (default), none (seeded random) or a weights file")
    parser.add_argument("--batch", type=_at_least_one, default=batch_lib.EMBED_BATCH,
                        help=f"images per extractor call (default {batch_lib.EMBED_BATCH})")


class _RegistryHelp(argparse.HelpFormatter):
    """Fills ``{train_presets}``, ``{compare_presets}`` and ``{extractors}`` in help texts from the
    registries, when help is shown: listing them loads the models (and TensorFlow), which parsing
    never does."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = super()._get_help_string(action) or ""
        if "{extractors}" in text:
            from koala.models.extractors import EXTRACTORS

            text = text.replace("{extractors}", ", ".join(sorted(EXTRACTORS)))
        if "_presets}" in text:
            import koala

            koala.import_tensorflow()
            from koala import config
            from koala.evaluation.compare import config as compare_config

            text = text.format(train_presets=", ".join(config.presets()),
                               compare_presets=", ".join(compare_config.PRESETS))
        return text


def _command(sub: argparse._SubParsersAction, name: str, summary: str, **kwargs) -> argparse.ArgumentParser:
    """A subcommand whose one-line ``summary`` is both its line in ``koala --help`` and the start of
    its own ``--help``."""
    kwargs.setdefault("description", summary[0].upper() + summary[1:] + ".")
    return sub.add_parser(name, help=summary, formatter_class=_RegistryHelp, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    from koala import __version__

    parser = argparse.ArgumentParser(prog="koala", description="Colorize grayscale photos.")
    parser.add_argument("--version", action="version", version=f"koala {__version__}")
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's start-up and log lines (hidden by default)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _add_models_parser(sub)
    _add_train_parser(sub)
    _add_colorize_parser(sub)
    _add_suggest_parser(sub)
    _add_export_parser(sub)
    _add_serve_parser(sub)
    _add_evaluate_parser(sub)
    _add_compare_parser(sub)
    _add_batch_parser(sub)
    return parser


def _add_models_parser(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "models", "list the registered architectures, their sizes and presets")
    p.set_defaults(func=_cmd_models)


def _add_train_parser(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "train", "train a model from a config file or preset into a run folder (resumes or extends it)")
    p.add_argument("--config", help="YAML config file (may name a preset to start from)")
    p.add_argument("--preset", help="start from this preset: {train_presets} (default: default)")
    p.add_argument("--name", help="run name (folder under out_dir)")
    p.add_argument("--out-dir", help="where run folders go (default runs/)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field, e.g. train.epochs=3")
    p.add_argument("--overwrite", action="store_true", help="replace a finished run of the same name")
    p.set_defaults(func=_cmd_train)


def _add_colorize_parser(sub: argparse._SubParsersAction) -> None:
    from koala import video  # constants only: no PyAV or TensorFlow import here

    kept = ", ".join(suffix.lstrip(".") for suffix in video.KEPT_CONTAINERS)
    p = _command(sub, "colorize", "colorize photos and films at full resolution")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="files, folders (recursive) or globs: photos and films")
    p.add_argument("-o", "--out-dir", required=True,
                   help=f"folder for the colorized PNGs and films (a film keeps its container if it is {kept}, "
                        f"else becomes {video.FALLBACK_SUFFIX.lstrip('.')})")
    p.add_argument("--model", default="default", help=MODEL_HELP)
    p.add_argument("--saturation", type=float, help=SATURATION_HELP)
    p.add_argument("--temperature", type=float,
                   help="annealed-mean temperature for models that predict colour distributions (zhang16)")
    p.add_argument("--hints", metavar="HINTS.json",
                   help='colour hints for the one photo given (models with hint inputs, e.g. the bundled default): '
                        'a JSON list of {"x": px, "y": px, "color": "#rrggbb", "radius": px (optional)} '
                        "in the photo's pixels; the colour's lightness is ignored")
    _add_global_hint_options(p)
    _add_film_options(p)
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=_cmd_colorize)


def _add_suggest_parser(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "suggest", "suggest colours at a point of a photo, most likely first, as JSON",
                 description="Suggest colours at a point of a photo (models with a colour distribution head): "
                             'prints [{"color": "#rrggbb", "probability": p}, ...], most likely first, '
                             "near-identical colours merged, shown at the photo's lightness there.")
    p.add_argument("photo", help="the photo (gray or colour)")
    p.add_argument("--at", required=True, metavar="X,Y", help="the point, in the photo's pixels (0,0: top left)")
    p.add_argument("--k", type=_at_least_one, default=8, help="how many colours (default 8)")
    p.add_argument("--model", default="default", help=MODEL_HELP)
    p.add_argument("--hints", metavar="HINTS.json", help="colour hints placed already (koala colorize --hints' format)")
    _add_global_hint_options(p)
    p.set_defaults(func=_cmd_suggest)


def _add_export_parser(sub: argparse._SubParsersAction) -> None:
    from koala import serving  # constants only: no Flask or TensorFlow import here

    p = _command(sub, "export", "export a model for TF Serving (SavedModel) or ONNX runtimes")
    p.add_argument("--model", default="default", help=MODEL_HELP)
    p.add_argument("--out", required=True, help="base folder; the model goes to OUT/VERSION/")
    p.add_argument("--version", type=int, help="version number (default: the next free one, from 1)")
    p.add_argument("--format", choices=serving.EXPORT_FORMATS, default="savedmodel",
                   help="savedmodel: bytes-in/PNG-out and L-in/ab-out signatures; onnx: the network alone")
    p.add_argument("--saturation", type=float,
                   help="colour scale baked into the SavedModel (default: the model's own; with hints: 1, the colours as hinted)")
    p.add_argument("--temperature", type=float,
                   help="annealed-mean temperature baked in, for models that predict colour distributions")
    p.set_defaults(func=_cmd_export)


def _add_serve_parser(sub: argparse._SubParsersAction) -> None:
    from koala import serving  # constants only: no Flask or TensorFlow import here
    from koala.images import MAX_PIXELS

    p = _command(sub, "serve", "serve a web page and API that colorize photos")
    p.add_argument("--model", default="default", help=MODEL_HELP)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=serving.DEFAULT_PORT,
                   help=f"port (default {serving.DEFAULT_PORT}; 0 picks a free one)")
    p.add_argument("--workers", type=int, default=serving.DEFAULT_WORKERS,
                   help=f"photos colorized at once (default {serving.DEFAULT_WORKERS})")
    p.add_argument("--queue", type=int, default=serving.DEFAULT_QUEUE,
                   help=f"slots for waiting requests, one per {serving.SLOT_PIXELS / 1e6:g} MP of photo; more get 503 "
                        f"(default {serving.DEFAULT_QUEUE})")
    p.add_argument("--max-upload-mb", type=float, default=serving.DEFAULT_MAX_UPLOAD_MB,
                   help=f"largest upload in MB, else 413 (default {serving.DEFAULT_MAX_UPLOAD_MB:g})")
    p.add_argument("--max-pixels", type=int, default=MAX_PIXELS,
                   help=f"largest photo in pixels, else 413 (default and most: koala's limit, {MAX_PIXELS:,})")
    p.set_defaults(func=_cmd_serve)


def _add_evaluate_parser(sub: argparse._SubParsersAction) -> None:
    from koala.evaluation import SUGGEST_HIT_DISTANCE, SUGGEST_MIN_CHROMA  # constants only

    p = _command(sub, "evaluate", "score a model against the grayscale baseline on held-out photos",
                 description="Score a model against the grayscale baseline (ab = 0) on held-out photos. "
                             "Every metric and how photos are scored (8-bit results, SSIM on RGB with an "
                             "11x11 Gaussian window, ratio of mean colourfulness, AuC over 0-150): "
                             "docs/metrics.md in koala's repository.")
    p.add_argument("--model", action="append",
                   help="'default' (the default), a run folder or a .keras file; repeat it with --sweep "
                        "to draw several models' frontiers in one plot (LABEL=MODEL names a curve)")
    p.add_argument("--data", required=True, help="folder or split file of colour photos")
    p.add_argument("--limit", type=int, help="evaluate only the first N photos")
    p.add_argument("--saturation", type=float, help=SATURATION_HELP)
    p.add_argument("--temperature", type=float, help="annealed-mean temperature (zhang16)")
    p.add_argument("--size", type=int,
                   help="evaluate at SIZE x SIZE: short side resized to SIZE, centre square (default: full resolution)")
    p.add_argument("--fid", metavar="EXTRACTOR",
                   help="add the Frechet distance with this feature network: inception_v3 or a .keras model")
    p.add_argument("--fid-weights", default="imagenet", help="inception_v3 weights: imagenet (default), none or a file")
    p.add_argument("--fid-size", type=int, help="side images are resized to for --fid (default: the network's)")
    p.add_argument("--sweep", metavar="S1,S2,...",
                   help="score at each saturation (e.g. 0.8,1,1.2,1.4): the PSNR-colourfulness frontier, "
                        "overall and per first-level sub-folder of --data, beside the gray baseline; "
                        "writes --out F.json and the plot F.png")
    p.add_argument("--sweep-temperature", metavar="T1,T2,...",
                   help="the same over annealed-mean temperatures (models that predict a colour "
                        "distribution); with --sweep, every pair")
    p.add_argument("--group", action="append", metavar="NAME=SOURCE1,SOURCE2",
                   help="with --sweep: also score these sub-folders of --data together "
                        "(e.g. general=bsds500,imagenet_sample1000,urban100)")
    p.add_argument("--hints", metavar="K1,K2,...",
                   help="models with hint inputs: score with each number of seeded simulated hints "
                        "(e.g. 0,1,2,5,10,20,50; placed as in training, at the photo's size), overall and per "
                        "source, beside ideepcolor's published curve; writes --out F.json and the plot F.png")
    p.add_argument("--reference", metavar="self,other",
                   help="models with a global-hint input: score with the photo's own colours as reference "
                        "(self, the upper bound) and/or a seeded other photo of the same source (other), "
                        "beside no reference, overall and per source; writes --out F.json and the grid F.png "
                        "(truth | gray | automatic | self | other | that reference)")
    p.add_argument("--suggest", type=_at_least_one, metavar="K",
                   help="models with a colour distribution head: how often K suggested colours hold the true "
                        f"one at seeded coloured points (true chroma over {SUGGEST_MIN_CHROMA:g}, hit within "
                        f"{SUGGEST_HIT_DISTANCE:g} a*b* units), beside the automatic colour; writes --out F.json")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the simulated hints, of the other photos (--reference) and of the points (--suggest); default 0")
    p.add_argument("--out", help="write the JSON report here")
    p.set_defaults(func=_cmd_evaluate)


def _add_compare_parser(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "compare", "train or load several models and compare them on the same photos")
    p.add_argument("--config", help="compare config (YAML); see koala.evaluation.compare")
    p.add_argument("--preset", help="start from this compare preset: {compare_presets}")
    p.add_argument("--out", help="report folder (default: the config's out)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a field, e.g. eval.limit=50")
    p.add_argument("--overwrite", action="store_true", help="retrain models whose finished runs are in the folder")
    p.set_defaults(func=_cmd_compare)


def _import_tensorflow(verbose: bool) -> None:
    """TensorFlow and Keras, imported quietly (:func:`koala.import_tensorflow`) unless ``verbose``;
    C++ log lines after start-up are hidden too, and Python's below errors."""
    import koala

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "3")
    koala.import_tensorflow(verbose)
    if not verbose:
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")


def _check_knobs(args: argparse.Namespace) -> None:
    """--saturation and --temperature within :mod:`koala.knobs`' ranges, before TensorFlow loads
    (whether the model takes a temperature is the Colorizer's to say)."""
    from koala.knobs import check_saturation, check_temperature

    if getattr(args, "saturation", None) is not None:
        check_saturation(args.saturation, "--saturation")
    if getattr(args, "temperature", None) is not None:
        check_temperature(args.temperature, "--temperature")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and not hasattr(args, "beam_args"):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if hasattr(args, "beam_args"):
        args.beam_args = unknown  # checked against Beam's options by koala.batch
    try:
        _check_knobs(args)
        _import_tensorflow(args.verbose)
        return args.func(args)
    except (ValueError, FileExistsError, FileNotFoundError) as e:
        print(f"koala {args.command}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"koala {args.command}: interrupted", file=sys.stderr)
        return INTERRUPTED_EXIT


if __name__ == "__main__":
    raise SystemExit(main())
