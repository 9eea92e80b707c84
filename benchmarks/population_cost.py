r"""What a population's measures cost beside its training, from a finished population workdir.

  python benchmarks/population_cost.py --workdir=W

Sums the wall seconds stored by the population's units: each N1's training (its result.json
``seconds``: every seed, compilation included), each N2 cell's, and each network's parameter
measures (``measures/<network>.json``, per measure, compilation of the flatness searches
included; the three searches run as one program, so their time is the first one's,
``pacbayes_flatness``), and prints the measures' share of the N1 training time. Every figure is wall time on
the machine the population ran on, as it was loaded.
"""

from __future__ import annotations

import argparse
import glob
import json
import os


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--workdir", required=True)
  args = parser.parse_args()
  n1 = [json.load(open(p)) for p in glob.glob(os.path.join(args.workdir, "n1", "*", "n1", "*",
                                                           "result.json"))]
  cells = [json.load(open(p)) for p in glob.glob(os.path.join(args.workdir, "n2", "cells", "*",
                                                              "result.json"))]
  measures = [json.load(open(p)) for p in glob.glob(os.path.join(args.workdir, "measures",
                                                                 "*.json"))]
  n1_seconds = sum(r["seconds"] for r in n1)
  n2_seconds = sum(c["n2"]["seconds"] for c in cells if "n2" in c)
  per_measure = {}
  for m in measures:
    for name, seconds in m.get("seconds", {}).items():
      per_measure[name] = per_measure.get(name, 0.0) + seconds
  total = sum(per_measure.values())
  print(f"networks: {len(n1)} N1s, {len(cells)} N2 cells, {len(measures)} measured")
  print(f"N1 training: {n1_seconds:.1f} s; N2 training: {n2_seconds:.1f} s")
  print(f"parameter measures: {total:.1f} s = {100 * total / n1_seconds:.1f} % of N1 training, "
        f"{100 * total / (n1_seconds + n2_seconds):.1f} % of all training")
  for name, seconds in sorted(per_measure.items(), key=lambda kv: -kv[1]):
    print(f"  {name:24s} {seconds:8.1f} s")


if __name__ == "__main__":
  main()
