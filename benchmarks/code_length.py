"""The prequential code length of three N1s on one curve: a constant, a random hash of the image,
and an N1 trained on the true labels; with the wall time of each curve.

  python benchmarks/code_length.py --data mnist.npz --n1 constant hash mnist_mlp_4 \
      --sizes geometric:250:16000:7 --n1_size 30000 --test_size 10000 --seeds 3 --out out.json

The defaults are the T12 curve setup (configs/t12_mnist_mlp.py:curve: N2 = mnist_mlp_4, the
protocol's SGD, stop rule and 500 epochs) at the sizes given. The expected properties
(docs/protocol.md section 8): the constant costs about its first block's uniform code, the hash
about the uniform code, the trained N1 lies between.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time

import numpy as np


def hash_labels(images: np.ndarray, num_classes: int = 10) -> np.ndarray:
  """A fixed random function of the image: sha256 of its bytes, modulo the number of classes."""
  return np.asarray([int(hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest(), 16)
                     % num_classes for x in images])


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data", required=True, help="an .npz with x_train, y_train, x_test, y_test")
  parser.add_argument("--n1", nargs="+", default=["constant", "hash", "mnist_mlp_4"])
  parser.add_argument("--n2", default="mnist_mlp_4")
  parser.add_argument("--sizes", default="geometric:250:16000:7")
  parser.add_argument("--n1_size", type=int, default=30000)
  parser.add_argument("--test_size", type=int, default=10000)
  parser.add_argument("--seeds", type=int, default=3)
  parser.add_argument("--out", required=True)
  args = parser.parse_args(argv)

  import learnjax
  from learnjax import sizes as sizes_lib
  sizes = sizes_lib.n2_sizes(args.sizes)
  d2, d3 = sizes[-1], args.test_size
  rows = []
  for name in args.n1:
    if name == "constant":
      n1 = (np.zeros(d2, int), np.zeros(d3, int))
    elif name == "hash":
      n1 = lambda images: hash_labels(images)   # noqa: E731
      n1.__name__ = "hash"
    else:
      n1 = name
    start = time.time()
    curve = learnjax.learnability(n1, args.data, n2=args.n2, seeds=args.seeds,
                                  n1_size=args.n1_size, n2_size=sizes, test_size=d3,
                                  progress=lambda line: print(line, flush=True))
    seconds = time.time() - start
    first = sizes[0] * math.log2(10)
    row = {"n1": name, "sizes": sizes, "seeds": args.seeds, "seconds": seconds,
           "code_bits": curve.code_bits.tolist(), "uniform_bits": curve.uniform_bits,
           "first_block_bits": first,
           "code_over_uniform": (curve.code_bits / curve.uniform_bits).tolist(),
           "learnability": curve.learnability.mean(0).tolist(),
           "n1_test_accuracy": float(np.mean(curve[sizes[-1]].metrics["n1_test_accuracy"]))}
    rows.append(row)
    print(json.dumps(row), flush=True)
    with open(args.out, "w") as f:
      json.dump({"args": vars(args), "rows": rows}, f, indent=1)
  return 0


if __name__ == "__main__":
  sys.exit(main())
