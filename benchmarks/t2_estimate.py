#!/usr/bin/env python
"""Device time of the full T2 grid (shallow CNN widths 16..1024, N1 x N2), from a benchmark run.

    python benchmarks/t2_estimate.py RESULTS.json [--epochs 500] [--epochs_from WORKDIR]

T2 trains, per seed, 7 N1s on D1 and 49 N2s on D2 (every N1 width is learnt by every N2 width);
with 5 seeds and |D1| = |D2| = 25,000 (CIFAR-10). A seed group trains until its slowest seed stops
(stopped seeds are frozen but still computed when vmapped), so a training of width k costs

    max-over-seeds epochs x 25,000 x seeds / (samples/s of width k with that many seeds)

The rate of each width is the benchmark's row for ``shallow_cnn_<k>`` at ``--seeds`` seeds: the
``*`` row (what the engine's 'auto' choices run) unless ``--path fastest``. Widths the benchmark
did not run are interpolated linearly in log(rate) against log(width) between the nearest measured
widths (extrapolated from the two nearest at the ends). Epochs: ``--epochs`` for every training (the
protocol's cap of 500 is the worst case), or the epochs a T2 run actually took, read from its
``results.json`` (``--epochs_from``; missing trainings fall back to ``--epochs``). Evaluation passes
(D2 and D3 predictions) are left out: one forward pass each per training, under 1% of the time.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

WIDTHS = (16, 32, 64, 128, 256, 512, 1024)


def rates_from_benchmark(rows: list[dict], seeds: int, path: str) -> dict[int, float]:
  """Measured samples/s per shallow CNN width at ``seeds`` seeds."""
  rates: dict[int, float] = {}
  for r in rows:
    name = r.get("model", "")
    if (r.get("impl") != "jax" or r.get("seeds") != seeds or not name.startswith("shallow_cnn_")
        or not r.get("samples_per_s")):
      continue
    if path == "default" and not r.get("default"):
      continue
    width = int(name.rsplit("_", 1)[1])
    rates[width] = max(rates.get(width, 0.0), r["samples_per_s"])
  return rates


def interpolate(rates: dict[int, float], width: int) -> tuple[float, bool]:
  """(samples/s, measured?) for ``width``."""
  if width in rates:
    return rates[width], True
  known = sorted(rates)
  if len(known) < 2:
    raise SystemExit("error: need benchmark rows for at least two shallow CNN widths")
  lower = [w for w in known if w < width]
  upper = [w for w in known if w > width]
  if lower and upper:
    a, b = lower[-1], upper[0]
  elif upper:
    a, b = upper[0], upper[1]
  else:
    a, b = lower[-2], lower[-1]
  t = (math.log(width) - math.log(a)) / (math.log(b) - math.log(a))
  log_rate = (1 - t) * math.log(rates[a]) + t * math.log(rates[b])
  return math.exp(log_rate), False


def epochs_from_results(workdir: str) -> tuple[dict, dict]:
  """(N1 epochs by width, N2 epochs by (n1 width, n2 width)): the slowest seed of each training."""
  path = os.path.join(workdir, "results.json")
  try:
    with open(path) as f:
      cells = json.load(f)["cells"]
  except (OSError, ValueError, KeyError) as e:
    raise SystemExit(f"error: cannot read the T2 results {path}: {e}") from None
  n1, n2 = {}, {}
  for c in cells:
    if c.get("status") != "ok" or c.get("variant") != "true" or c.get("n1_epoch") is not None:
      continue
    if not (c["n1_model"].startswith("shallow_cnn_") and c["n2_model"].startswith("shallow_cnn_")):
      continue
    a = int(c["n1_model"].rsplit("_", 1)[1])
    b = int(c["n2_model"].rsplit("_", 1)[1])
    n1[a] = max(c["n1"]["epochs"])
    n2[(a, b)] = max(c["n2"]["epochs"])
  return n1, n2


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("benchmark", help="JSON written by benchmarks/benchmark.py --out")
  parser.add_argument("--seeds", type=int, default=5)
  parser.add_argument("--examples", type=int, default=25_000, help="|D1| = |D2|")
  parser.add_argument("--epochs", type=int, default=500,
                      help="epochs of every training (500 = the protocol's cap, the worst case)")
  parser.add_argument("--epochs_from", default="", help="a T2 workdir whose epochs to use")
  parser.add_argument("--path", choices=("default", "fastest"), default="default")
  args = parser.parse_args(argv)
  try:
    with open(args.benchmark) as f:
      bench = json.load(f)
  except (OSError, ValueError) as e:
    print(f"error: cannot read {args.benchmark}: {e}", file=sys.stderr)
    return 2
  rates = rates_from_benchmark(bench.get("rows", []), args.seeds, args.path)
  n1_epochs, n2_epochs = epochs_from_results(args.epochs_from) if args.epochs_from else ({}, {})
  dev = bench.get("device", {})
  device = f"{dev.get('device_kind', '?')} ({dev.get('backend', '?')})"
  print(f"T2 on {device}: {args.seeds} seeds, |D1| = |D2| = {args.examples:,}, "
        f"{args.path} engine path; epochs: "
        + (f"from {args.epochs_from} (else {args.epochs})" if args.epochs_from
           else f"{args.epochs} per training"))
  print(f"\n{'width':>6} {'samples/s':>10} {'':>3} {'s/epoch':>8} {'N1 epochs':>9} "
        f"{'N1 s':>8} {'N2 epochs (sum)':>15} {'N2 s':>9}")
  total = 0.0
  for k in WIDTHS:
    rate, measured = interpolate(rates, k)
    per_epoch = args.examples * args.seeds / rate
    e1 = n1_epochs.get(k, args.epochs)
    # Width k is the N2 of every N1 width.
    e2 = sum(n2_epochs.get((a, k), args.epochs) for a in WIDTHS)
    s1, s2 = e1 * per_epoch, e2 * per_epoch
    total += s1 + s2
    print(f"{k:>6} {rate:>10,.0f} {'' if measured else '(i)':>3} {per_epoch:>8.2f} {e1:>9} "
          f"{s1:>8.0f} {e2:>15} {s2:>9.0f}")
  print(f"\ntotal: {total:,.0f} s = {total / 60:.1f} device-minutes"
        "  ((i) = interpolated from the measured widths)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
