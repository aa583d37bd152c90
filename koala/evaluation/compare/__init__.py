"""`koala compare`: train (or load) several colorizers on the same split with the same budget,
score them on the same photos beside the grayscale baseline, and write a report folder.

Each model is trained by :func:`koala.training.train` (the one training path) from one shared
training config plus that model's own overrides, and scored by
:func:`koala.evaluation.evaluate.evaluate` (so its numbers are those ``koala evaluate`` prints for
the same run and photos). The folder::

    report.md     one row per model and the gray baseline: every metric, parameters, time, speed
    report.json   the same numbers, the per-image scores and the resolved settings
    curves.png    training and validation loss per epoch, one panel per model (history.csv)
    grid.png      gray input | each model | ground truth, for a fixed sample of photos plus each
                  model's worst and best photo by PSNR
    runs/         the run folders of the models trained here
    frontier.json, frontier.png
                  with ``eval.sweep``: every scored model at each saturation on the same photos
                  and size (:func:`koala.evaluation.frontier.sweep_report`, as ``koala evaluate
                  --sweep`` writes), beside gray; report.md gains a Frontier section

A compare config (YAML) names a preset to start from and overrides any of::

    preset: smoke
    out: reports/smoke
    train: {preset: smoke, data: {train: photos/train, val: photos/val}}  # a `koala train` config
    models: all          # every registered model; or a list of names; or {label: overrides}
    model_args: {cunet: {base_filters: 8}}   # per architecture, used when a model is trained
    eval: {data: "", size: 64, limit: 200, samples: 4, fid: ""}
    # optional: eval.sweep: [0, 0.5, 1, 1.5] (saturations: the frontier) and
    # eval.groups: {general: [bsds500, urban100]} (sources also scored together on it)

A model entry of ``models`` may override any training field (``{model: cunet, train: {loss:
mse}}``) or load a finished run instead (``{run: runs/default}``). A finished run folder of the
same name under ``out/runs`` is reused, so an interrupted compare picks up where it stopped.

    config.py   CompareConfig and EvalSettings, the presets, reading a compare config
    runner.py   the models to compare, training or loading each run, scoring them: compare()
    report.py   report.md's table and text, report.json
    plots.py    curves.png and grid.png
"""
