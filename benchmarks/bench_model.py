#!/usr/bin/env python
"""Speed and memory of the DML-CSR network: inference latency and training-step time.

Every configuration runs in a fresh subprocess so that peak memory (ru_maxrss on CPU,
torch.cuda.max_memory_allocated on GPU) is its own. Prints a markdown table.

    python benchmarks/bench_model.py            # paper sizes (depth 101, 473) + CPU presets
    python benchmarks/bench_model.py --quick    # CPU presets only
    python benchmarks/bench_model.py --json out.json

Training step = forward + cross-entropy on the three heads + backward + SGD step (lr 1e-3,
momentum 0.9, wd 5e-4), gradients cleared before the forward. On CUDA: bf16 autocast and
channels_last. Times are medians over the repeats after one warm-up. The "conv" column says whether
CPU 3x3 convolutions ran as NNPACK Winograd (this package's default) or oneDNN only (as the reference).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Config:
    name: str
    mode: str  # "infer" | "train"
    depth: int
    width: float
    size: int
    batch: int
    abn: str
    repeats: int
    num_classes: int = 11
    conva_kernel: int = 3
    winograd: bool = True  # CPU 3x3 convolutions on NNPACK (False = oneDNN only, as the reference)


@dataclass
class Result:
    config: Config
    seconds: float | None = None  # median per call (inference) or per step (training)
    times: list[float] = field(default_factory=list)
    peak_mb: float | None = None
    params: int | None = None
    gmacs: float | None = None  # forward multiply-accumulates per batch
    device: str = ""
    error: str | None = None


def configs(quick: bool, backends: list[str]) -> list[Config]:
    out: list[Config] = []
    if not quick:
        # the reference's set-up: InPlaceABN and oneDNN convolutions
        baseline = "inplace" if "inplace" in backends else backends[0]
        out.append(Config("paper", "infer", 101, 1.0, 473, 1, baseline, repeats=3, winograd=False))
        out.append(Config("paper", "train", 101, 1.0, 473, 2, baseline, repeats=2, winograd=False))
    for abn in backends:
        if not quick:
            out.append(Config("paper", "infer", 101, 1.0, 473, 1, abn, repeats=3))
            out.append(Config("paper", "train", 101, 1.0, 473, 2, abn, repeats=2))
        for depth, width, size, batch in ((18, 0.5, 128, 16), (18, 0.25, 128, 16), (18, 0.25, 96, 16)):
            for mode in ("infer", "train"):
                out.append(Config("cpu", mode, depth, width, size, batch, abn, repeats=3))
    return out


# ---------------------------------------------------------------- child: one measurement


def count_gmacs(cfg: Config) -> float:
    """Forward MACs of the model for one batch, counted on the meta device (no compute)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from model import build_model

    with torch.device("meta"):
        model = build_model(cfg.num_classes, cfg.depth, edges=cfg.mode == "train", conva_kernel=cfg.conva_kernel,
                            width=cfg.width, abn="torch").eval()
        x = torch.empty(cfg.batch, 3, cfg.size, cfg.size)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return counter.get_total_flops() / 2e9


def measure(cfg: Config) -> Result:
    import resource

    import torch
    import torch.nn.functional as F

    from model import build_model, count_parameters, set_winograd

    set_winograd(cfg.winograd)
    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    result = Result(cfg, device=torch.cuda.get_device_name() if cuda else f"cpu x{torch.get_num_threads()}")
    result.gmacs = count_gmacs(cfg)

    train = cfg.mode == "train"
    model = build_model(cfg.num_classes, cfg.depth, edges=train, conva_kernel=cfg.conva_kernel, width=cfg.width, abn=cfg.abn)
    result.params = count_parameters(model)
    model = model.to(device).train(train)
    x = torch.randn(cfg.batch, 3, cfg.size, cfg.size, device=device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda)

    if train:
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
        s2 = -(-cfg.size // 2)
        h4 = (-(-(s2 - 1) // 2) + 1,) * 2  # stride 4 after the ceil-mode max pool (473 -> 119)
        g = torch.Generator(device="cpu").manual_seed(0)
        target = torch.randint(0, cfg.num_classes, (cfg.batch, *h4), generator=g).to(device)
        binary = (target > 0).long()

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            with autocast():
                out = model(x)
                loss = (F.cross_entropy(out.parsing.float(), target) + F.cross_entropy(out.binary_edge.float(), binary)
                        + F.cross_entropy(out.category_edge.float(), target))
            loss.backward()
            opt.step()
    else:

        def step() -> None:
            with torch.inference_mode(), autocast():
                model(x)

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    for i in range(cfg.repeats + 1):
        sync()
        t0 = time.perf_counter()
        step()
        sync()
        if i:  # the first call is warm-up
            result.times.append(time.perf_counter() - t0)
    result.seconds = statistics.median(result.times)
    if cuda:
        result.peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        result.peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return result


# ---------------------------------------------------------------- parent: orchestration


def run_child(cfg: Config, timeout: float) -> Result:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(asdict(cfg))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return Result(cfg, error=f"timeout after {timeout:.0f} s")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return Result(cfg, error=tail[:120])
    data = json.loads(lines[-1])
    data["config"] = cfg
    return Result(**data)


def table(results: list[Result]) -> str:
    head = ("| config | mode | depth | width | input | batch | ABN | conv | time / call (s) | imgs/s "
            "| peak mem (MB) | params (M) | GMAC / batch |")
    rows = [head, "|" + "---|" * 13]
    for r in results:
        c = r.config
        conv = "winograd" if c.winograd and r.device.startswith("cpu") else "default"
        left = f"| {c.name} | {c.mode} | {c.depth} | {c.width:g} | {c.size}x{c.size} | {c.batch} | {c.abn} | {conv} |"
        if r.error:
            rows.append(f"{left} error: {r.error} | | | | |")
            continue
        rows.append(
            f"{left} {r.seconds:.3f} | {c.batch / r.seconds:.1f} | {r.peak_mb:.0f} | {r.params / 1e6:.2f} | {r.gmacs:.1f} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CPU presets only (skip depth 101 at 473)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--backends", default="torch,inplace", help="comma-separated ABN backends")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per configuration")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        result = measure(Config(**json.loads(args.child)))
        data = asdict(result)
        data.pop("config")
        print(json.dumps(data))
        return

    backends = [b for b in args.backends.split(",") if b]
    if "inplace" in backends:
        sys.path.insert(0, str(ROOT))
        from model.abn import inplace_abn_available

        if not inplace_abn_available():
            print("inplace_abn not importable: skipping that backend", file=sys.stderr)
            backends.remove("inplace")
    results = []
    for cfg in configs(args.quick, backends):
        print(f"... {cfg.name} {cfg.mode} depth {cfg.depth} width {cfg.width:g} {cfg.size}px batch {cfg.batch} "
              f"abn {cfg.abn} winograd {cfg.winograd}",
              file=sys.stderr, flush=True)
        results.append(run_child(cfg, args.timeout))
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))


if __name__ == "__main__":
    main()
