"""The images of D1, D2 and D3 of a config, for a model outside learnjax to train and predict on.

::

    python -m learnjax.data.export --config=configs/t12_mnist_mlp.py --out=/tmp/mnist_splits.npz

writes an .npz with, for ``part`` in ``d1``, ``d2`` and ``d3``:

- ``{part}_images``: the images as stored in the data set, uint8 (N, H, W, C);
- ``{part}_images_normalised``: float32, normalised as learnjax normalises them (per channel, with
  the mean and standard deviation of the whole training split: ``mean``, ``std``);
- ``{part}_labels``: the true labels; ``{part}_index``: the positions in the data set's train
  (D1, D2) or test (D3) split;

and ``num_classes``, ``dataset`` and, where the data set has them, ``class_names``. Train N1 on
D1 (``d1_images*`` with ``d1_labels``: the first ``n1_size`` training images; D2 is the last
``n2_size``, so with ``n1_size + n2_size`` below the training split some images are in neither).
Predict on D2 and D3 (and D1, for N1's training error) in this order, save the predictions as
``d2``, ``d3`` (and ``d1``) in an .npz (see :mod:`learnjax.predictions` for the shapes taken),
and measure their learnability with ``--config.n1.model=predictions
--config.n1.predictions=FILE.npz`` (same data settings). A scikit-learn model wants
``x.reshape(len(x), -1)``; PyTorch wants NCHW: ``x.transpose(0, 3, 1, 2)``.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from learnjax.errors import LearnjaxError


def export_arrays(data_config) -> dict[str, np.ndarray]:
  """The arrays :func:`export` writes, for a config's ``data`` block."""
  from learnjax.data import sources, splits as splits_lib
  pool = sources.load_pool(data_config)
  from learnjax import train_sizes   # D2 = the largest of data.n2_size
  splits = splits_lib.make_splits(pool, data_config.get("n1_size"),
                                  train_sizes.d2_size(data_config.get("n2_size")),
                                  data_config.get("test_size"))
  arrays = {"num_classes": np.int64(splits.num_classes), "dataset": np.str_(pool.name),
            "mean": splits.mean.astype(np.float32), "std": splits.std.astype(np.float32)}
  for part, split, x in (("d1", splits.d1, pool.x_train), ("d2", splits.d2, pool.x_train),
                         ("d3", splits.d3, pool.x_test)):
    arrays[f"{part}_images"] = x[split.index]
    arrays[f"{part}_images_normalised"] = split.x
    arrays[f"{part}_labels"] = split.y
    arrays[f"{part}_index"] = split.index.astype(np.int64)
  if getattr(pool, "class_names", None):
    arrays["class_names"] = np.asarray(pool.class_names, dtype=str)
  return arrays


def export(data_config, out: str) -> dict[str, np.ndarray]:
  """Writes D1's, D2's and D3's images (see the module's docstring) to ``out``; returns the arrays."""
  if not out or not out.endswith(".npz"):
    raise LearnjaxError(f"--out must name an .npz file, got {out!r}")
  check_out(out, inputs_of(data_config))
  arrays = export_arrays(data_config)
  from learnjax.storage import atomic_write_npz
  try:
    atomic_write_npz(out, arrays)
  except OSError as e:
    raise LearnjaxError(f"cannot write --out {out}: {e.strerror or e}") from None
  return arrays


def inputs_of(data_config) -> list[str]:
  """The files a config's data block reads, which --out must never overwrite."""
  path = data_config.get("npz_path") or ""
  return [path] if path and data_config.get("name") == "npz" else []


def check_out(out: str, inputs: list[str]) -> None:
  """Refuses an --out that is a folder, an input (by any path or link), or not writable."""
  if os.path.isdir(out):
    raise LearnjaxError(f"--out {out} is a folder; name the .npz file to write")
  for path in inputs:
    if os.path.exists(out) and os.path.exists(path) and os.path.samefile(out, path) \
        or os.path.realpath(out) == os.path.realpath(path):
      raise LearnjaxError(f"--out {out} is the file of the data set, {path}; writing there would "
                          "replace the data: name a new file")
  if os.path.exists(out) and _is_learnjax_input(out):
    raise LearnjaxError(f"--out {out} holds learnjax input (a data set, or the predictions of an "
                        "N1), which the export would replace; name a new file")
  folder = os.path.dirname(os.path.abspath(out))
  if not os.path.isdir(folder):
    raise LearnjaxError(f"no such folder for --out: {folder}")
  if not os.access(folder, os.W_OK) or os.path.exists(out) and not os.access(out, os.W_OK):
    raise LearnjaxError(f"cannot write --out {out}: its folder {folder} or the file itself is "
                        "read-only")


def _is_learnjax_input(path: str) -> bool:
  """Whether an existing .npz is a data set (x_train...) or a predictions file (d2, d3), not an
  earlier export (which may be overwritten)."""
  try:
    with np.load(path) as data:
      names = set(data.files)
  except Exception:  # noqa: BLE001  not an .npz: an input of no learnjax kind
    return False
  return {"x_train", "x_test"} <= names or {"d2", "d3"} <= names and "d2_images" not in names


def main(argv=None) -> None:
  from absl import app, flags
  from ml_collections import config_flags

  config_flag = config_flags.DEFINE_config_file(
      "config", None, "Experiment config file (configs/*.py[:arg]); its data block is used.")
  out_flag = flags.DEFINE_string("out", None, "The .npz file to write.")

  def run(args):
    from learnjax.cli_input import tolerant_output
    tolerant_output()
    if len(args) > 1:
      _fail(f"unexpected arguments: {' '.join(args[1:])}")
    if config_flag.value is None or not out_flag.value:
      _fail("give --config=CONFIG.py and --out=FILE.npz")
    try:
      data_config = config_flag.value.data
      plugin_names = config_flag.value.get("plugins", "")
    except OSError as e:  # a config file that could not be loaded
      lines = [line.strip() for line in str(e).splitlines() if line.strip()]
      _fail(f"{lines[0]}: {lines[-1]}" if len(lines) > 1 else str(e))
    try:
      from learnjax import plugins
      plugins.load(plugin_names)   # a data source or variant of the researcher's own
      arrays = export(data_config, out_flag.value)
    except LearnjaxError as e:
      _fail(str(e))
    print(f"wrote {out_flag.value}: {arrays['dataset']} D1 {arrays['d1_images'].shape}, D2 "
          f"{arrays['d2_images'].shape} and D3 {arrays['d3_images'].shape}, "
          f"{int(arrays['num_classes'])} classes; train N1 on d1_images* (d1_labels), predict on "
          f"d2_images* and d3_images* (and d1_images*), save the labels as d2 and d3 (and d1) in "
          f"an .npz and pass it as --config.n1.model=predictions --config.n1.predictions=FILE.npz")

  def parse(args):
    try:
      return flags.FLAGS(args)
    except Exception as e:  # noqa: BLE001  a bad flag, config file or override
      _fail(" ".join(str(e).replace("\\n", " ").split())[:500])

  app.run(run, argv=argv, flags_parser=parse)


def _fail(message: str) -> None:
  print(f"error: {message}", file=sys.stderr, flush=True)
  sys.exit(2)


if __name__ == "__main__":
  from learnjax.cli_input import interruptible
  with interruptible("the export", "no file was written"):
    main()
