import pytest

from koala import config as config_lib


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
