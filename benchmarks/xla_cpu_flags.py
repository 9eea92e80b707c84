#!/usr/bin/env python
"""XLA's CPU library options against the PyTorch loop, for the conv nets on the CPU.

    python benchmarks/xla_cpu_flags.py [--models ...] [--rounds 2] [--out flags.json]

XLA_FLAGS are read once per process, so every (model, option set) is a process of its own:
``--rounds`` rounds, each running every option set and the PyTorch loop once per model, in turn
(interleaved, so a shared machine's load falls on all of them alike). A process trains one seed
of the model for an epoch of ``--steps`` batches of 64 on random CIFAR-shaped data through the
engine's default CPU path (``Trainer.step_epoch``), times the best of ``--repeats`` epochs after a
warm-up, and reports the parameters after its first epoch, so the options' results can be compared
with the plain build's (relative max difference). The table gives samples/s and the ratio to the
PyTorch loop of the same round.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

OPTION_SETS = {
    "none": "",
    "onednn": "--xla_cpu_use_onednn=true",
    "xnnpack": "--xla_cpu_use_xnnpack=true",
    "onednn+xnnpack": "--xla_cpu_use_onednn=true --xla_cpu_use_xnnpack=true",
}
STEPS = {"shallow_cnn_16": 20, "shallow_cnn_256": 4, "vgg11": 2, "resnet18": 2}


def child(model_name: str, option_set: str, steps: int, repeats: int, params_out: str) -> dict:
  if option_set == "torch":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  else:
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " "
                               + OPTION_SETS[option_set]).strip()
  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
  import benchmark  # noqa: E402  (sets the environment before jax starts)
  import jax
  import jax.numpy as jnp
  import numpy as np

  from learnjax import engine, models
  n = steps * benchmark.BATCH
  kx, ky = jax.random.split(jax.random.PRNGKey(7))
  x = jax.random.normal(kx, (n,) + benchmark.IMAGE, jnp.float32)
  y = jax.random.randint(ky, (1, n), 0, benchmark.NUM_CLASSES, jnp.int32)
  if option_set == "torch":
    benchmark.set_torch_precision("default")
    out = benchmark.run_torch(model_name, np.asarray(x), np.asarray(y[0]), "default", repeats,
                              60.0)
  else:
    model = models.build(model_name, benchmark.NUM_CLASSES)
    cfg = engine.TrainConfig(batch_size=benchmark.BATCH, learning_rate=benchmark.LEARNING_RATE,
                             loop="step")
    trainer = engine.Trainer(model, cfg)
    keys = benchmark.seed_keys(1, 1), benchmark.seed_keys(1, 2)
    state = trainer.init(*keys, x[:1])
    state = trainer.step_epoch(state, x, y, per_seed_x=False)
    params = jax.tree.leaves(jax.device_get(state.params))
    np.savez(params_out, *params)
    out = benchmark.run_engine_path(model, cfg, benchmark.Path("step", "sequential", "own"), 1,
                                    x, y, repeats, 60.0, None)
  out["samples_per_s"] = n / min(out["times_s"])
  return out


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--models", nargs="+", default=list(STEPS))
  parser.add_argument("--options", nargs="+", default=list(OPTION_SETS))
  parser.add_argument("--rounds", type=int, default=2)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--out", default=None)
  parser.add_argument("--workdir", default="/tmp/learnjax_xla_flags")
  parser.add_argument("--child", nargs=3, metavar=("MODEL", "OPTIONS", "STEPS"),
                      help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child:
    name, options, steps = args.child
    result = child(name, options, int(steps), args.repeats,
                   os.path.join(args.workdir, f"{name}_{options}.npz"))
    print("RESULT " + json.dumps(result))
    return 0

  import numpy as np
  os.makedirs(args.workdir, exist_ok=True)
  runs = {}
  for r in range(args.rounds):
    for name in args.models:
      for options in args.options + ["torch"]:
        cmd = [sys.executable, os.path.abspath(__file__), "--child", name, options,
               str(STEPS.get(name, 4)), "--repeats", str(args.repeats), "--workdir", args.workdir]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode or not line:
          result = {"error": (proc.stderr or proc.stdout)[-500:]}
        else:
          result = json.loads(line[-1][7:])
        runs.setdefault((name, options), []).append(result)
        rate = result.get("samples_per_s")
        print(f"round {r + 1} {name:<16} {options:<15} "
              + (f"{rate:9.1f} samples/s" if rate else "FAILED " + result["error"][-200:]),
              flush=True)

  rows = []
  for name in args.models:
    torch_rates = [x.get("samples_per_s") for x in runs[(name, "torch")]]
    plain = dict(np.load(os.path.join(args.workdir, f"{name}_none.npz")))
    for options in args.options + ["torch"]:
      rates = [x.get("samples_per_s") for x in runs[(name, options)]]
      ratios = [a / t for a, t in zip(rates, torch_rates) if a and t]
      row = {"model": name, "options": options, "samples_per_s": rates,
             "vs_torch": ratios, "vs_torch_median": statistics.median(ratios) if ratios else None}
      path = os.path.join(args.workdir, f"{name}_{options}.npz")
      if options not in ("none", "torch") and os.path.exists(path):
        other = dict(np.load(path))
        row["max_rel_diff_vs_none"] = max(
            float(np.abs(other[k] - plain[k]).max() / max(np.abs(plain[k]).max(), 1e-30))
            for k in plain)
      rows.append(row)
  print("\n| model | XLA options | samples/s (rounds) | vs torch (median) | params vs plain |")
  print("|---|---|---|---:|---:|")
  for row in rows:
    rates = ", ".join(f"{r:,.0f}" if r else "-" for r in row["samples_per_s"])
    diff = row.get("max_rel_diff_vs_none")
    print(f"| {row['model']} | {row['options']} | {rates} | "
          f"{row['vs_torch_median'] or 0:.2f}x | {'' if diff is None else f'{diff:.1e}'} |")
  if args.out:
    with open(args.out, "w") as f:
      json.dump({"rows": rows, "rounds": args.rounds}, f, indent=1)
  return 0


if __name__ == "__main__":
  sys.exit(main())
