"""Tests for data_tools.prepare on a small synthetic photo folder built in tmp_path."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_tools.prepare import main, popcount64, split_of

GOOD = [
    "photos/city/good0.jpg",
    "photos/city/good1.jpg",
    "photos/nature/deep/good2.jpg",
    "photos/nature/deep/good3.png",
    "photos/nature/good4.jpg",
    "photos/good5.JPG",
]
EXPECTED_REJECTS = {
    "bad/empty.jpg": "unreadable",
    "bad/text.png": "unreadable",
    "bad/truncated.jpg": "truncated",
    "bad/tiny.png": "tiny",
    "bad/gray.png": "grayscale",
    "bad/gray_mode_l.png": "grayscale",
    "bad/near_gray.png": "near-grayscale",
    "zz/copy_of_good0.jpg": "duplicate",
    "zz/resaved_good1.jpg": "near-duplicate",
    "zz/shrunk_good2.jpg": "near-duplicate",
}


def smooth_colour(seed: int, size: tuple[int, int] = (128, 96)) -> np.ndarray:
    """Random low-frequency colour blobs: photo-like, and distinct dHashes for distinct seeds."""
    coarse = np.random.default_rng(seed).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC))


def save(path: Path, array: np.ndarray, **kwargs) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)


def build_source(src: Path) -> None:
    for seed, rel in enumerate(GOOD):
        save(src / rel, smooth_colour(seed), quality=95)
    bad = src / "bad"
    bad.mkdir()
    (bad / "empty.jpg").write_bytes(b"")
    (bad / "text.png").write_text("this is not a picture\n")
    save(bad / "full.jpg", smooth_colour(100, (256, 256)))
    full = (bad / "full.jpg").read_bytes()
    (bad / "full.jpg").unlink()
    (bad / "truncated.jpg").write_bytes(full[: len(full) // 2])
    save(bad / "tiny.png", smooth_colour(101, (20, 20)))
    gray = smooth_colour(102)[..., :1].repeat(3, axis=2)
    save(bad / "gray.png", gray)
    save(bad / "gray_mode_l.png", gray[..., 0])
    tinted = gray.astype(np.int16)
    tinted[..., 0] = np.clip(tinted[..., 0] + 2, 0, 255)
    save(bad / "near_gray.png", tinted.astype(np.uint8))
    (src / "zz").mkdir()
    shutil.copyfile(src / GOOD[0], src / "zz/copy_of_good0.jpg")
    save(src / "zz/resaved_good1.jpg", smooth_colour(1), quality=80)
    shrunk = Image.open(src / GOOD[2]).resize((127, 95), Image.Resampling.LANCZOS)
    shrunk.save(src / "zz/shrunk_good2.jpg", quality=95)
    (src / "notes.txt").write_text("not scanned\n")


@pytest.fixture
def src(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    build_source(root)
    return root


def run(src: Path, out: Path, *extra: str) -> dict:
    assert main([str(src), str(out), "--workers", "1", *extra]) == 0
    return json.loads((out / "manifest.json").read_text())


def read_splits(out: Path) -> dict[str, list[str]]:
    return {name: (out / f"{name}.txt").read_text().splitlines() for name in ("train", "val", "test")}


def read_rejects(out: Path) -> dict[str, str]:
    header, *rows = (out / "rejected.tsv").read_text().splitlines()
    assert header == "path\treason"
    return dict(row.split("\t") for row in rows)


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    return {
        p.relative_to(root).as_posix(): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_rejects_each_bad_file_with_its_reason(src: Path, tmp_path: Path, capsys) -> None:
    manifest = run(src, tmp_path / "out")
    rejects = read_rejects(tmp_path / "out")
    assert {rel: reason.split(":")[0] for rel, reason in rejects.items()} == EXPECTED_REJECTS
    assert "photos/city/good0.jpg" in rejects["zz/copy_of_good0.jpg"]
    assert "photos/city/good1.jpg" in rejects["zz/resaved_good1.jpg"]
    assert "photos/nature/deep/good2.jpg" in rejects["zz/shrunk_good2.jpg"]
    counts = manifest["counts"]
    assert counts["scanned"] == len(GOOD) + len(EXPECTED_REJECTS)
    assert counts["kept"] == len(GOOD)
    assert counts["rejected_by_reason"] == {"duplicate": 1, "grayscale": 2, "near-duplicate": 2,
                                            "near-grayscale": 1, "tiny": 1, "truncated": 1, "unreadable": 2}
    stdout = capsys.readouterr().out
    assert "SKIP bad/tiny.png: tiny" in stdout
    assert manifest["version"] in stdout


def test_kept_files_are_in_exactly_one_split(src: Path, tmp_path: Path) -> None:
    manifest = run(src, tmp_path / "out", "--val", "0.3", "--test", "0.3")
    lines = [line for split in read_splits(tmp_path / "out").values() for line in split]
    assert sorted(lines) == sorted(str(src / rel) for rel in GOOD)
    assert sum(manifest["counts"][name] for name in ("train", "val", "test")) == len(GOOD)


def test_source_is_never_modified(src: Path, tmp_path: Path) -> None:
    before = snapshot(src)
    run(src, tmp_path / "plain")
    run(src, tmp_path / "resized", "--resize", "40")
    assert snapshot(src) == before


def test_adding_files_does_not_move_existing_ones(src: Path, tmp_path: Path) -> None:
    def split_of_file(out: Path) -> dict[str, str]:
        return {line: name for name, lines in read_splits(out).items() for line in lines}

    run(src, tmp_path / "v1", "--val", "0.3", "--test", "0.3")
    for seed in range(200, 210):
        save(src / f"added/new{seed}.jpg", smooth_colour(seed))
    run(src, tmp_path / "v2", "--val", "0.3", "--test", "0.3")
    old, new = split_of_file(tmp_path / "v1"), split_of_file(tmp_path / "v2")
    assert len(new) > len(old)
    assert {line: new[line] for line in old} == old


@pytest.mark.parametrize("resize", [[], ["--resize", "40"]])
def test_an_added_duplicate_never_displaces_an_assigned_photo(src: Path, tmp_path: Path, resize: list) -> None:
    """The newcomer sorts before the photo it copies; the photo keeps its place, re-running into
    the same folder or into a new one with --previous."""
    out = tmp_path / "out"
    run(src, out, *resize)
    before = read_splits(out)
    shutil.copyfile(src / GOOD[0], src / "aaa_copy_of_good0.jpg")  # exact copy, sorts first
    save(src / "aab_resaved_good1.jpg", smooth_colour(1), quality=80)  # near copy, sorts first
    for again, extra in ((out, []), (tmp_path / "v2", ["--previous", str(out)])):
        run(src, again, *resize, *extra)
        assert read_splits(again) == before
        rejects = read_rejects(again)
        assert rejects["aaa_copy_of_good0.jpg"] == f"duplicate: identical to {GOOD[0]}"
        assert rejects["aab_resaved_good1.jpg"].startswith("near-duplicate: dHash distance")
        assert GOOD[1] in rejects["aab_resaved_good1.jpg"]
    # Without a previous run the sorted order decides: the copy is kept, the original dropped.
    run(src, tmp_path / "fresh", *resize)
    assert read_rejects(tmp_path / "fresh")[GOOD[0]].startswith("duplicate: identical to aaa_copy_of_good0.jpg")


def test_previous_must_be_an_output_of_the_tool(src: Path, tmp_path: Path, capsys) -> None:
    assert main([str(src), str(tmp_path / "out"), "--previous", str(tmp_path / "nowhere")]) == 2
    assert "--previous" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_resize_writes_relative_paths_that_resolve_against_the_list(src: Path, tmp_path: Path) -> None:
    rotated = Image.fromarray(smooth_colour(300))  # 128 wide, 96 high as stored
    exif = rotated.getexif()
    exif[0x0112] = 6  # displayed rotated by 90 degrees: 96 wide, 128 high
    rotated.save(src / "photos/rotated.jpg", exif=exif, quality=95)
    out = tmp_path / "out"
    assert main([str(src), str(out), "--resize", "48", "--workers", "2"]) == 0
    lines = [line for split in read_splits(out).values() for line in split]
    assert len(lines) == len(GOOD) + 1
    for line in lines:
        assert line.startswith("images/") and line.endswith(".jpg")
        with Image.open(out / line) as img:
            assert img.format == "JPEG" and img.mode == "RGB"
            assert max(img.size) == 48
    with Image.open(out / "images/photos/rotated.jpg") as img:
        assert img.size == (36, 48)


def test_same_input_gives_same_version(src: Path, tmp_path: Path) -> None:
    first = run(src, tmp_path / "a")["version"]
    assert run(src, tmp_path / "b")["version"] == first
    assert run(src, tmp_path / "c", "--seed", "1", "--val", "0.5", "--test", "0.4")["version"] != first
    assert run(src, tmp_path / "d", "--resize", "40")["version"] != first


@pytest.mark.parametrize("out_rel", [".", "sub/out"])
def test_refuses_output_inside_source(src: Path, out_rel: str, capsys) -> None:
    before = snapshot(src)
    assert main([str(src), str(src / out_rel), "--workers", "1"]) == 2
    assert "error:" in capsys.readouterr().err
    assert snapshot(src) == before


def test_refuses_missing_source(tmp_path: Path, capsys) -> None:
    assert main([str(tmp_path / "missing"), str(tmp_path / "out")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_popcount_matches_python() -> None:
    values = np.random.default_rng(0).integers(0, 2**64, 1000, dtype=np.uint64, endpoint=False)
    assert popcount64(values).tolist() == [bin(int(v)).count("1") for v in values]


def test_split_ratios_are_roughly_respected() -> None:
    names = [split_of(f"img{i}.jpg", 0, 0.1, 0.2) for i in range(20000)]
    assert names.count("val") / len(names) == pytest.approx(0.1, abs=0.01)
    assert names.count("test") / len(names) == pytest.approx(0.2, abs=0.01)
