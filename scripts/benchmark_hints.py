"""How fast the web page answers a hint: the preview request (the photo shrunk in the browser to the
working size, hints scaled with it) and the full-size request that follows, through the real Flask
app (``koala.serving.app``), as the page sends them.

    python scripts/benchmark_hints.py                      # the bundled default (it takes hints)
    python scripts/benchmark_hints.py --model runs/hints --photo scan.jpg --hints 1 10 50

Prints milliseconds per request (median of ``--repeat``, after one warm-up) for each number of
hints. Numbers depend on what else the machine is doing.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def hint_colorizer(model: str | None):
    """The given model, else the bundled default (it takes hints)."""
    from koala.inference import Colorizer

    return Colorizer.load(model or "default"), model or "default"


def photo_png(path: str | None, megapixels: float) -> bytes:
    """The photo's bytes, or a smooth gray 3:2 PNG of ``megapixels``."""
    import numpy as np
    from PIL import Image

    if path:
        return Path(path).read_bytes()
    width = int((megapixels * 1e6 * 1.5) ** 0.5)
    height = int(width / 1.5)
    yy, xx = np.mgrid[0:height, 0:width]
    gray = (128 + 60 * np.sin(xx / 37.0) * np.cos(yy / 53.0)).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(gray).save(buffer, format="PNG")
    return buffer.getvalue()


def shrunk(data: bytes, side: int) -> tuple[bytes, float]:
    """What the page sends as a preview: short side ``side`` (never enlarged), PNG; and the scale."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        scale = min(1.0, side / min(img.size))
        small = img.convert("RGB").resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                                          Image.BILINEAR)
    buffer = io.BytesIO()
    small.save(buffer, format="PNG")
    return buffer.getvalue(), small.width / img.width


def timed(client, data: bytes, hints: list[dict], repeat: int) -> float:
    """Median milliseconds of ``repeat`` POSTs of ``data`` with ``hints`` (after one warm-up)."""
    times = []
    for i in range(repeat + 1):
        start = time.perf_counter()
        answer = client.post("/api/colorize", data={"image": (io.BytesIO(data), "p.png"), "hints": json.dumps(hints)},
                             content_type="multipart/form-data")
        if answer.status_code != 200:
            raise SystemExit(f"HTTP {answer.status_code}: {answer.json}")
        if i:
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a hint model (default: the bundled one, else the default's architecture)")
    parser.add_argument("--photo", help="a photo (default: a generated gray scan of --megapixels)")
    parser.add_argument("--megapixels", type=float, default=1.0, help="size of the generated photo (default 1)")
    parser.add_argument("--hints", type=int, nargs="+", default=[1, 10, 50], help="numbers of hints (default 1 10 50)")
    parser.add_argument("--repeat", type=int, default=5, help="requests per measurement (default 5)")
    args = parser.parse_args()

    import numpy as np
    from PIL import Image

    from koala.serving.app import create_app

    colorizer, label = hint_colorizer(args.model)
    client = create_app(colorizer).test_client()
    data = photo_png(args.photo, args.megapixels)
    small, scale = shrunk(data, colorizer.image_size)
    with Image.open(io.BytesIO(data)) as img:
        width, height = img.size
    rng = np.random.default_rng(0)
    print(f"model: {label}; working size {colorizer.image_size} px; photo {width} x {height} "
          f"({width * height / 1e6:.1f} MP); preview {round(width * scale)} x {round(height * scale)}")
    print("| hints | preview ms | full size ms |")
    print("|---:|---:|---:|")
    for count in args.hints:
        hints = [{"x": int(x), "y": int(y), "color": "#b0202a"}
                 for x, y in zip(rng.integers(0, width, count), rng.integers(0, height, count))]
        scaled = [{**h, "x": min(h["x"] * scale, width * scale - 1), "y": min(h["y"] * scale, height * scale - 1)}
                  for h in hints]
        print(f"| {count} | {timed(client, small, scaled, args.repeat):.0f} | "
              f"{timed(client, data, hints, args.repeat):.0f} |", flush=True)


if __name__ == "__main__":
    main()
