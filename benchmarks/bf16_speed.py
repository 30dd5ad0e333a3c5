"""g's training step in fp32 against bf16 autocast, on the shapes of Table 1's features.

For each (architecture, layer) of the small profile's Table 1 the script builds g (K = 2) for
that feature's channels and map size, and times its forward + backward + Adam step on one
thread, batch 128, alternating fp32 and ``torch.autocast("cpu", dtype=torch.bfloat16)`` rounds
in one process (so both see the same load), and prints the ratio of the medians. bf16 needs the
CPU's AVX-512 BF16 (or AMX) instructions to be fast; the script says whether this CPU has them
(``/proc/cpuinfo``) and measures either way.

Example:
    python benchmarks/bf16_speed.py --steps 20 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from kc.core.losses import consistency_loss
from kc.core.model import ConsistencyNet
from kc.core.precision import autocast, cpu_bf16_flags

# Table 1's feature shapes under the small profile (WIDTH 0.25, 32-pixel inputs): channels, map
# (read off the cached features, 2026-12-04)
SHAPES = {
    ("alexnet", "conv4"): (64, 8),
    ("alexnet", "conv5"): (64, 8),
    ("vgg16", "conv4_3"): (128, 8),
    ("vgg16", "conv5_3"): (128, 4),
    ("resnet34", "last14"): (64, 8),
}


def step_seconds(g: ConsistencyNet, x: torch.Tensor, t: torch.Tensor, steps: int, bf16: bool) -> float:
    opt = torch.optim.Adam(g.parameters(), lr=1e-3)
    start = time.perf_counter()
    for _ in range(steps):
        with autocast("bf16" if bf16 else "fp32", "cpu"):
            loss = consistency_loss(g, x, t, 0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per precision")
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print(f"one thread; CPU bf16 instructions: {', '.join(cpu_bf16_flags()) or 'none found'}; "
          f"load {os.getloadavg()[0]:.2f}")  # fmt: skip
    print(f"{'feature':22s} {'C':>4s} {'map':>4s} {'fp32 ms':>8s} {'bf16 ms':>8s} {'ratio':>6s}")
    for (arch, layer), (c, s) in SHAPES.items():
        g = ConsistencyNet(c, c, order=2)
        x, t = torch.randn(args.batch, c, s, s), torch.randn(args.batch, c, s, s)
        step_seconds(g, x, t, 3, False), step_seconds(g, x, t, 3, True)  # warm-up
        times: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.rounds):
            for bf16 in (False, True):
                times[bf16].append(step_seconds(g, x, t, args.steps, bf16))
        fp32, bf16 = statistics.median(times[False]), statistics.median(times[True])
        print(f"{arch + ' ' + layer:22s} {c:4d} {s:4d} {1e3 * fp32:8.2f} {1e3 * bf16:8.2f} "
              f"{fp32 / bf16:6.2f}")  # fmt: skip
    print(f"load at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
