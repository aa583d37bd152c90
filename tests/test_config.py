import pytest

from koala import config as config_lib
from koala.cli import main as cli_main
from koala.models import MODELS, get_model


def test_smoke_preset_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("preset: smoke\nmodel_args: {base_filters: 4}\ndata: {image_size: 48, augment: {rotation: 0}}\n")
    cfg = config_lib.load(path, overrides=["train.epochs=3", "data.train=/x"])
    assert cfg.name == "smoke" and cfg.model_args == {"base_filters": 4}
    assert cfg.data.image_size == 48 and cfg.data.batch_size == 4 and cfg.data.augment.rotation == 0
    assert cfg.data.augment.flip is True and cfg.train.epochs == 3 and cfg.data.train == "/x"


def test_saved_config_loads_back_identically(tmp_path):
    cfg = config_lib.load(preset="smoke", overrides=["train.learning_rate=0.01"])
    config_lib.save(cfg, tmp_path / "saved.yaml")
    assert config_lib.load(tmp_path / "saved.yaml") == cfg


@pytest.mark.parametrize("overrides, message", [
    (["train.epochz=3"], "unknown config key"),
    (["data.augment.blur=1"], "unknown config key"),
    (["preset=huge"], "unknown preset"),
    (["epochs"], "key=value"),
])
def test_bad_configs_are_named(overrides, message):
    with pytest.raises(ValueError, match=message):
        config_lib.load(overrides=overrides)


@pytest.mark.parametrize("overrides, message", [
    (["train.epochs=ten"], "config.train.epochs: expected an integer; got 'ten'"),
    (["train.steps_per_epoch=0"], "config.train.steps_per_epoch: must be positive; got 0"),
    (["data.batch_size=-3"], "config.data.batch_size: must be positive; got -3"),
    (["data.augment.flip=maybe"], "config.data.augment.flip: expected true or false"),
    (["train.precision=fp8"], "config.train.precision: must be one of"),
    (["train.loss=l1", "train.loss_args={beta: 2}"], r"config.train.loss_args: loss 'l1' takes no argument\(s\) \['beta'\]; it takes \[\]"),
    (["train.loss=focal"], "config.train.loss: unknown loss 'focal'"),
    (["train.loss=huber", "train.loss_args={delta: -1}"], "config.train.loss_args: huber's delta must be > 0; got -1"),
    (["train.loss=l1_ssim", "train.loss_args={ssim_weight: lots}"],
     "config.train.loss_args: l1_ssim's ssim_weight must be a number; got 'lots'"),
    (["model=unet9"], "config.model: unknown model 'unet9'"),
    (["data=5"], "config.data: expected a mapping"),
])
def test_wrong_types_and_values_name_the_field(overrides, message):
    with pytest.raises(ValueError, match=message):
        config_lib.load(overrides=overrides)


def test_yaml_numbers_and_known_loss_arguments_are_accepted():
    cfg = config_lib.load(overrides=["train.learning_rate=1e-3", "train.loss=huber", "train.loss_args={delta: 0.2}",
                                     "data.max_train_images=null", "train.epochs=3"])
    assert cfg.train.learning_rate == 0.001 and cfg.train.loss_args == {"delta": 0.2}
    assert cfg.data.max_train_images is None and cfg.train.epochs == 3


def test_yaml_errors_give_the_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  epochs: 3\n   batch: [\n")
    with pytest.raises(ValueError, match=rf"{path}, line 3, column \d+: YAML error"):
        config_lib.load(path)
    with pytest.raises(ValueError, match="cannot read the config"):
        config_lib.load(tmp_path / "missing.yaml")


def test_config_errors_are_one_line_from_the_cli(tmp_path):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "koala.cli", "train", "--preset", "smoke", "--set", "train.epochs=ten",
                             "--out-dir", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["koala train: config.train.epochs: expected an integer; got 'ten'"]
    assert not list(tmp_path.iterdir())


def test_merge_is_deep_replaces_model_and_loss_args_whole_and_changes_neither_input():
    base = {"train": {"epochs": 2, "loss": "mse", "loss_args": {"delta": 1.0}}, "model_args": {"a": 1, "b": 2}}
    override = {"train": {"epochs": 5, "loss_args": {"scale": 3}}, "model_args": {"b": 4}}
    merged = config_lib.merge(base, override)
    assert merged == {"train": {"epochs": 5, "loss": "mse", "loss_args": {"scale": 3}}, "model_args": {"b": 4}}
    merged["train"]["loss_args"]["scale"] = 0
    merged["model_args"]["b"] = 0
    assert base["train"] == {"epochs": 2, "loss": "mse", "loss_args": {"delta": 1.0}}
    assert override == {"train": {"epochs": 5, "loss_args": {"scale": 3}}, "model_args": {"b": 4}}



@pytest.mark.parametrize("name", sorted(MODELS))
def test_smoke_preset_takes_each_models_own_smoke_arguments(name):
    """`--preset smoke --set model=NAME` works for every registered model (it used to pass CU-Net's
    base_filters to every model): the arguments are those the model's file registers, they build it,
    and the shared smoke budget is kept."""
    cfg = config_lib.load(preset="smoke", overrides=[f"model={name}"])
    assert cfg.model == name and cfg.model_args == MODELS[name].smoke_args
    assert (cfg.data.image_size, cfg.data.batch_size, cfg.train.epochs, cfg.train.steps_per_epoch) == (32, 4, 2, 4)
    network = get_model(name, **cfg.model_args)
    assert network.get_layer("L").batch_shape[-1] == 1
    given = config_lib.load(preset="smoke", overrides=[f"model={name}", "model_args={}"])
    assert given.model_args == {}  # model_args given: the preset adds nothing


@pytest.mark.slow
def test_smoke_preset_trains_another_architecture_from_the_cli(tmp_path):
    """The command of the issue's traceback (resunet34, whose arguments have no base_filters) trains."""
    from koala.runs import Run

    rc = cli_main(["train", "--preset", "smoke", "--set", "model=resunet34", "--set", "train.epochs=1",
                   "--set", "train.steps_per_epoch=1", "--set", "data.max_val_images=2", "--out-dir", str(tmp_path)])
    run = Run(tmp_path / "smoke")
    assert rc == 0 and run.finished and run.read_metadata()["model_args"] == MODELS["resunet34"].smoke_args


def test_importing_runs_and_config_loads_neither_tensorflow_nor_the_models():
    """Presets are built when first used, so `import koala.runs` (which the light commands and the
    data tools reach) stays light."""
    import subprocess
    import sys

    code = ("import sys, koala.runs, koala.config; "
            "print(sorted(m for m in ('tensorflow', 'keras', 'koala.models') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stderr
