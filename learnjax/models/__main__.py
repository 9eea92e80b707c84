"""Lists the model zoo: ``python -m learnjax.models [--num_classes N] [--input_shape 32,32,3]``.

One row per preset, in registry order: name, parameter count, parameter tensors (the paper's
"layers" column: leaves of the ``params`` tree), BatchNorm running-stat elements and the input
shape counted. Shapes come from ``jax.eval_shape`` of ``model.init``, so nothing is initialised
or computed. Without ``--input_shape`` the ``mnist_*`` presets are counted on 28x28x1 (their
dataset; the paper's 795h + 10) and every other preset on 32x32x3.
"""

from __future__ import annotations

import argparse
import sys

from learnjax import models
from learnjax.errors import LearnjaxError


def count(name: str, num_classes: int, input_shape: tuple[int, ...],
          **hparams) -> tuple[int, int, int]:
  """(parameters, parameter tensors, BN running-stat elements) of a registry name."""
  size = models.size(models.build(name, num_classes, **hparams), input_shape)
  return size.params, size.tensors, size.batch_stats


def main(argv=None) -> None:
  parser = _Parser(prog="python -m learnjax.models", description=__doc__.split("\n")[0])
  parser.add_argument("--num_classes", default="10", help="classes of the head (default 10)")
  parser.add_argument("--input_shape", default=None,
                      help="H,W,C of one image (default: 28,28,1 for mnist_*, else 32,32,3)")
  args = parser.parse_args(argv)
  try:
    shape = _input_shape(args.input_shape)
    num_classes = _num_classes(args.num_classes)
  except LearnjaxError as e:
    _fail(str(e))
  print(f"{'model':<18} {'params':>12} {'tensors':>8} {'bn_stats':>9}  input")
  for name in models.preset_names():
    shape_of = shape or ((28, 28, 1) if name.startswith("mnist_") else (32, 32, 3))
    n, tensors, stats = count(name, num_classes, shape_of)
    print(f"{name:<18} {n:>12,} {tensors:>8} {stats:>9,}  {'x'.join(map(str, shape_of))}")


class _Parser(argparse.ArgumentParser):
  """argparse, with a bad argument answered in one ``error:`` line (exit 2), not its usage."""

  def error(self, message):
    _fail(f"{message} (python -m learnjax.models --help lists the arguments)")


def _fail(message: str) -> None:
  print(f"error: {message}", file=sys.stderr, flush=True)
  sys.exit(2)


def _num_classes(spec: str) -> int:
  try:
    value = int(spec)
  except ValueError:
    raise LearnjaxError(f"--num_classes must be an integer, got {spec!r}") from None
  if value < 2:
    raise LearnjaxError(f"--num_classes must be at least 2, got {value}")
  return value


def _input_shape(spec: str | None) -> tuple[int, int, int] | None:
  """(H, W, C) from 'H,W,C', each a positive integer."""
  if spec is None:
    return None
  try:
    shape = tuple(int(s) for s in spec.split(","))
  except ValueError:
    shape = ()
  if len(shape) != 3 or min(shape) < 1:
    raise LearnjaxError(f"--input_shape must be three positive integers H,W,C (e.g. 32,32,3), "
                        f"got {spec!r}")
  return shape


if __name__ == "__main__":
  from learnjax.cli_input import interruptible
  with interruptible("the listing", "it wrote no file"):
    main()
