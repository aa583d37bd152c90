"""The peer of issue 17: koala's CU-Net train step written in PyTorch, timed as
``scripts/bench_train_step.py`` times the Keras one (same network, batch, size, L1 loss, Adam, a
batch already in memory), so the two frameworks can be compared on one CPU in one sitting.

PyTorch is not a koala dependency: run this from an environment that has it, e.g.

    python -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch
    /tmp/torchenv/bin/python scripts/bench_peer_torch.py --precision bf16 --channels-last --steps 40

The network mirrors ``koala.models.cunet.CUNet(base_filters=16, batch_norm=False)``: 3x3
convolutions with ReLU, average pooling, dilated bottleneck (2, 4, 8, 8), 2x2 stride-2 transposed
convolutions, skip concatenations, a 1x1 tanh head (776,930 parameters). ``--precision bf16`` runs
the forward pass under ``torch.autocast("cpu", torch.bfloat16)`` (weights float32), as Keras'
``mixed_bfloat16`` does. Prints one JSON line: ms per batch, images/s and process CPU-ms per image.
"""
from __future__ import annotations

import argparse
import json

import torch
from timing import timed
from torch import nn


def conv(cin: int, cout: int, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation), nn.ReLU(inplace=True))


class CUNet(nn.Module):
    """koala's CU-Net without batch norm: L (N, 1, H, W) -> normalised ab (N, 2, H, W)."""

    def __init__(self, base: int = 16, rates: tuple[int, ...] = (2, 4, 8, 8)):
        super().__init__()
        widths = [base, base * 2, base * 4]
        self.enc = nn.ModuleList(nn.Sequential(conv(cin, w), conv(w, w)) for cin, w in zip([1, *widths[:-1]], widths))
        bottleneck = base * 8
        self.bottleneck = nn.Sequential(*(conv(widths[-1] if i == 0 else bottleneck, bottleneck, r)
                                          for i, r in enumerate(rates)))
        ups = [bottleneck, *reversed(widths[1:])]
        self.up = nn.ModuleList(nn.ConvTranspose2d(cin, w, 2, stride=2) for cin, w in zip(ups, reversed(widths)))
        self.dec = nn.ModuleList(nn.Sequential(conv(2 * w, w), conv(w, w)) for w in reversed(widths))
        self.head = nn.Conv2d(base, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.enc:
            x = block(x)
            skips.append(x)
            x = nn.functional.avg_pool2d(x, 2)
        x = self.bottleneck(x)
        for up, block, skip in zip(self.up, self.dec, reversed(skips)):
            x = block(torch.cat([up(x), skip], dim=1))
        return torch.tanh(self.head(x).float())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--precision", choices=["float32", "bf16"], default="bf16")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    torch.manual_seed(0)
    layout = torch.channels_last if args.channels_last else torch.contiguous_format
    model = CUNet().to(memory_format=layout)
    optimizer = torch.optim.Adam(model.parameters(), 1e-4)
    x = torch.rand(args.batch, 1, args.size, args.size).to(memory_format=layout)
    y = torch.rand(args.batch, 2, args.size, args.size) - 0.5
    autocast = torch.autocast("cpu", torch.bfloat16, enabled=args.precision == "bf16")

    def forward():
        with torch.no_grad(), autocast:
            return model(x)

    def train_step():
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss = (model(x) - y).abs().mean()
        loss.backward()
        optimizer.step()

    print(json.dumps({"framework": f"pytorch {torch.__version__}", "precision": args.precision,
                      "channels_last": args.channels_last, "threads": torch.get_num_threads(),
                      "parameters": sum(p.numel() for p in model.parameters()),
                      "forward": timed(forward, args.steps, args.batch),
                      "train_step": timed(train_step, args.steps, args.batch)}))


if __name__ == "__main__":
    main()
