#!/usr/bin/env python
"""Our DML-CSR against the released reference code: time and peak memory, side by side.

    python benchmarks/bench_reference.py --reference /scratch/insightface/parsing/dml_csr

``--reference`` is a checkout of deepinsight/insightface's ``parsing/dml_csr`` (never part of this
project). Each measurement runs in a fresh process (peak RSS = ``ru_maxrss`` of that process):
- inference: the inference model (no edge branches), batch 1, 473x473, eval, no grad;
- training step: the training model, batch 2, 473x473, forward + backward of the sum of all
  outputs' means + an SGD step.
One warm-up, then the median of ``--reps`` timed repetitions. Networks: ours with the pure-PyTorch
ABN (``abn=torch``) and with ``inplace_abn`` (``abn=inplace``), and the reference built with
``inplace_abn.InPlaceABN``. Prints a markdown table.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, statistics, sys, time
import torch
which, mode, reps, ref = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
torch.manual_seed(0)
train = mode == "train"
if which == "reference":
    sys.path.insert(0, ref)
    from inplace_abn import InPlaceABN
    from networks.dml_csr import DML_CSR
    net = DML_CSR(11, abn=InPlaceABN, trained=train)
else:
    from model import build_model
    net = build_model(11, edges=train, abn=which)
x = torch.randn(2 if train else 1, 3, 473, 473)
opt = torch.optim.SGD(net.parameters(), lr=1e-6) if train else None
net.train(train)
def step():
    if not train:
        with torch.no_grad():
            net(x)
        return
    outs = net(x)
    loss = sum(o.float().mean() for o in outs)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
step()
times = []
for _ in range(reps):
    t0 = time.perf_counter(); step(); times.append(time.perf_counter() - t0)
print(json.dumps({"seconds": statistics.median(times), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def measure(which: str, mode: str, reps: int, reference: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, which, mode, str(reps), str(reference)],
                         check=True, capture_output=True, text=True, cwd=ROOT).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", type=Path, required=True)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", type=Path, help="also write the table here")
    args = ap.parse_args()
    rows = ["| network | inference s (batch 1, 473) | inference peak RSS MB | train step s (batch 2, 473) | train peak RSS MB |",
            "|---|---|---|---|---|"]
    for which, label in (("torch", "ours, abn=torch"), ("inplace", "ours, abn=inplace"),
                         ("reference", "reference (InPlaceABN)")):
        inf = measure(which, "eval", args.reps, args.reference)
        trn = measure(which, "train", args.reps, args.reference)
        rows.append(f"| {label} | {inf['seconds']:.2f} | {inf['peak_rss_mb']:.0f} | "
                    f"{trn['seconds']:.2f} | {trn['peak_rss_mb']:.0f} |")
        print(rows[-1], flush=True)
    table = "\n".join(rows)
    if args.out:
        args.out.write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
