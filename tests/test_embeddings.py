"""The embedding cache: data_tools.embed (write, resume, merge), koala.data.embeddings (checks)
and its rows joined to the photos by koala.data.make_dataset, with the tiny stand-in extractor."""
from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image
from conftest import TINY_DIM

from data_tools.embed import main
from koala.color import rgb_to_l
from koala.data import Augment, SideInput, make_dataset
from koala.data.embeddings import CacheError, EmbeddingCache
from koala.images import list_images, load_rgb
from koala.models.extractors import build_extractor, fingerprint

N_IMAGES = 8


def write_photos(folder: Path, count: int = N_IMAGES) -> list[str]:
    """Small smooth colour images of varied sizes, each different."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        coarse = rng.integers(0, 256, (3, 4, 3), dtype=np.uint8)
        Image.fromarray(coarse).resize((40 + 4 * i, 36), Image.BILINEAR).save(folder / f"img{i}.png")
    return list_images(folder)


def embed(*args: str) -> int:
    return main([*map(str, args), "--extractor", "tiny", "--weights", "none", "--batch", "3"])


def read(path: Path) -> tuple[list[str], np.ndarray, dict]:
    with h5py.File(path, "r") as f:
        keys = [k.decode() for k in f["keys"][:]]
        return keys, f["embeddings"][:], dict(f.attrs)


def test_cache_holds_keys_embeddings_and_attributes(tmp_path, tiny):
    paths = write_photos(tmp_path / "photos")
    out = tmp_path / "cache.h5"
    assert embed(tmp_path / "photos", out) == 0
    keys, embeddings, attrs = read(out)
    assert keys == paths
    assert embeddings.shape == (N_IMAGES, TINY_DIM) and embeddings.dtype == np.float32
    extractor = build_extractor("tiny", None)
    assert attrs["extractor"] == "tiny" and attrs["weights"] == "none" and attrs["dim"] == TINY_DIM
    assert attrs["fingerprint"] == fingerprint(extractor.model)
    assert attrs["rows"] == N_IMAGES and attrs["base_dir"] == os.getcwd()
    datetime.fromisoformat(attrs["created"])
    expected = extractor(rgb_to_l(load_rgb(paths[5])[None])).numpy()[0]
    np.testing.assert_allclose(embeddings[5], expected, atol=1e-5)
    assert len({tuple(row) for row in embeddings}) == N_IMAGES


def test_resume_keeps_written_rows_and_drops_half_written_ones(tmp_path, tiny):
    paths = write_photos(tmp_path / "photos")
    half = tmp_path / "photos" / "half.txt"
    half.write_text("\n".join(Path(p).name for p in paths[:3]))  # relative lines, resolved by list_images
    out = tmp_path / "cache.h5"
    assert embed(half, out) == 0
    first_keys, first_rows, _ = read(out)
    with h5py.File(out, "a") as f:  # a kill after writing a batch but before committing it
        f["keys"].resize((5,))
        f["keys"][3:] = paths[3:5]  # keys written, embeddings never
        f["embeddings"].resize((5, TINY_DIM))
    assert embed(tmp_path / "photos", out) == 0
    keys, rows, attrs = read(out)
    assert keys[:3] == first_keys and np.array_equal(rows[:3], first_rows)
    assert sorted(keys) == sorted(paths) and len(keys) == len(set(keys)) == attrs["rows"] == N_IMAGES


def test_shards_merged_equal_the_unsharded_cache(tmp_path, tiny):
    paths = write_photos(tmp_path / "photos")
    whole, merged = tmp_path / "whole.h5", tmp_path / "merged.h5"
    assert embed(tmp_path / "photos", whole) == 0
    shards = [tmp_path / f"shard{i}.h5" for i in range(3)]
    for i, shard in enumerate(shards):  # as koala batch embed's workers write them: a part each
        part = tmp_path / f"part{i}.txt"
        part.write_text("\n".join(paths[i::3]))
        assert embed(part, shard) == 0
    assert [len(read(s)[0]) for s in shards] == [3, 3, 2]
    assert main(["merge", str(merged), *map(str, shards)]) == 0
    assert main(["merge", str(merged), str(shards[0])]) == 0  # merging again adds nothing
    keys_w, rows_w, attrs_w = read(whole)
    keys_m, rows_m, attrs_m = read(merged)
    assert sorted(keys_m) == sorted(keys_w) and len(keys_m) == N_IMAGES
    np.testing.assert_allclose(rows_m[[keys_m.index(k) for k in keys_w]], rows_w, atol=1e-5)
    assert attrs_m["fingerprint"] == attrs_w["fingerprint"] and attrs_m["extractor"] == "tiny"


@pytest.fixture
def other_weights(tmp_path, tiny) -> str:
    """A weights file for the tiny extractor that differs from its seeded random weights."""
    model = build_extractor("tiny", None).model
    model.set_weights([w + 0.5 for w in model.get_weights()])
    path = tmp_path / "other.weights.h5"
    model.save_weights(path)
    return str(path)


def test_mismatched_extractor_weights_or_missing_images_are_refused(tmp_path, tiny, other_weights, capsys):
    paths = write_photos(tmp_path / "photos", 4)
    out = tmp_path / "cache.h5"
    assert embed(tmp_path / "photos", out) == 0
    cache = EmbeddingCache.open(out)
    with pytest.raises(CacheError, match=f"^{out}: built with extractor tiny, asked for inception_resnet_v2$"):
        cache.check("inception_resnet_v2", "imagenet", cache.fingerprint)
    other = fingerprint(build_extractor("tiny", other_weights).model)
    with pytest.raises(CacheError, match=f"weights none \\(fingerprint {cache.fingerprint[:12]}\\).*{other[:12]}"):
        cache.check("tiny", other_weights, other)
    cache.check("tiny", "none", cache.fingerprint)
    extra = write_photos(tmp_path / "more", 6)[4:]
    with pytest.raises(CacheError, match=f"^{out}: 2 images of train.txt are missing from the cache, e.g. {extra[0]}$"):
        cache.lookup(paths + extra, "train.txt")
    np.testing.assert_array_equal(cache.lookup(paths[::-1], "train"), cache.embeddings[::-1])
    rc = main([str(tmp_path / "photos"), str(out), "--extractor", "tiny", "--weights", other_weights])
    assert rc == 2 and "asked for" in capsys.readouterr().err and len(read(out)[0]) == 4


def test_unreadable_images_are_left_out(tmp_path, tiny, capsys):
    write_photos(tmp_path / "photos", 3)
    (tmp_path / "photos" / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "cache.h5"
    assert embed(tmp_path / "photos", out) == 1
    assert "1 unreadable image(s) left out, e.g." in capsys.readouterr().err
    assert [Path(k).name for k in read(out)[0]] == ["img0.png", "img1.png", "img2.png"]


def test_dataset_keeps_each_embedding_with_its_image(tmp_path):
    """Shuffled, augmented and with a bad file dropped, every L still arrives with its own row.
    One colour photo (row -2, not checked) lets training accept the set (all gray is refused)."""
    folder = tmp_path / "gray"
    folder.mkdir()
    levels = [30, 80, 130, 180, 230]
    paths = []
    for i, level in enumerate(levels):
        Image.fromarray(np.full((40, 50, 3), level, np.uint8)).save(folder / f"g{i}.png")
        paths.append(str(folder / f"g{i}.png"))
    (folder / "bad.png").write_bytes(b"")
    paths.insert(2, str(folder / "bad.png"))
    Image.fromarray(np.full((40, 50, 3), (200, 40, 40), np.uint8)).save(folder / "colour.png")
    paths.append(str(folder / "colour.png"))
    embeddings = np.array([[v] for v in [30, 80, -1, 130, 180, 230, -2]], np.float32)
    side = SideInput("embedding", per_photo=lambda p, source: embeddings[[paths.index(x) for x in p]])
    for training in (True, False):
        ds = make_dataset(paths, 32, 1, training, augment=Augment(), seed=3, side_input=side)
        seen = []
        for inputs, ab in ds:
            gray = float(np.mean(inputs["L"])) * 100 + 50  # L in [0, 100]
            level = float(inputs["embedding"][0, 0])
            if level == -2:
                continue
            seen.append(level)
            expected_l = float(rgb_to_l(np.full((1, 1, 3), level / 255, np.float32))[0, 0, 0]) * 100 + 50
            assert abs(gray - expected_l) < 0.5 and np.abs(ab).max() < 0.01
        assert sorted(seen) == levels


def run_embed(*args: str, env: dict | None = None, **kwargs):
    import subprocess
    import sys

    command = [sys.executable, "-m", "data_tools.embed", *map(str, args)]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


@pytest.mark.slow
def test_imagenet_weights_that_cannot_be_fetched_fail_in_one_line(tmp_path):
    """No internet (here: every download goes to a closed port), no weights in KERAS_HOME."""
    photos = write_photos(tmp_path / "photos", 2)
    env = {k: v for k, v in os.environ.items() if k.lower() != "no_proxy"}
    env.update(KERAS_HOME=str(tmp_path / "keras"), HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9",
               https_proxy="http://127.0.0.1:9", http_proxy="http://127.0.0.1:9", TF_CPP_MIN_LOG_LEVEL="3")
    proc = run_embed(tmp_path / "photos", tmp_path / "e.h5", "--extractor", "resnet50", env=env)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2 and "Traceback" not in err, err[-2000:]
    (line,) = [line for line in err.splitlines() if line.startswith("embed:")]  # besides TensorFlow's start-up log
    assert line.startswith("embed: cannot download the ImageNet weights of resnet50") and "weights none" in line
    assert len(photos) == 2 and not (tmp_path / "e.h5").exists()


# data_tools.embed that gets a real SIGINT (Ctrl-C) right after its first batch is committed: an
# interruption at a known moment, whatever the machine's speed.
INTERRUPTED_AFTER_FIRST_BATCH = """
import os, signal, sys
from data_tools import embed

append_rows = embed.append_rows

def append_then_interrupt(*args):
    append_rows(*args)
    os.kill(os.getpid(), signal.SIGINT)

embed.append_rows = append_then_interrupt
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, even when started in the background
sys.exit(embed.main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_ctrl_c_stops_in_one_line_and_the_same_command_carries_on(tmp_path):
    import subprocess
    import sys

    count = 10
    write_photos(tmp_path / "photos", count)
    args = [str(a) for a in (tmp_path / "photos", tmp_path / "e.h5", "--extractor", "resnet50", "--weights", "none",
                             "--batch", "2")]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    interrupted = subprocess.run([sys.executable, "-c", INTERRUPTED_AFTER_FIRST_BATCH, *args], env=env,
                                 capture_output=True, text=True, timeout=300)
    err = interrupted.stderr
    assert interrupted.returncode == 130 and "Traceback" not in err, err[-2000:]
    assert err.strip().splitlines()[-1].startswith("embed: interrupted; the rows written so far are kept")
    assert rows_committed(tmp_path / "e.h5") == 2  # the first batch, committed before the interruption
    proc = run_embed(*args, env=env)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    assert f"2 of {count} images already in" in err and rows_committed(tmp_path / "e.h5") == count


def rows_committed(path: Path) -> int:
    """The cache's committed rows, read beside a writer that holds the file open (0 while it cannot be read)."""
    try:
        with h5py.File(path, "r", locking=False) as f:
            return int(f.attrs.get("rows", 0))
    except (OSError, KeyError):
        return 0
