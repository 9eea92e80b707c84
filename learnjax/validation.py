"""Every setting of an experiment checked before anything is trained, and the workdir with it.

A bad setting must never cost compute nor leave a number that looks right: :func:`check_config`
refuses out-of-range, non-finite and mistyped fields, grid lists with empty or repeated elements,
and snapshot epochs that training never reaches; :func:`check_workdir` refuses a results folder
that cannot be used; :func:`check_data` refuses a workdir launched with other settings or data, or
holding damaged or foreign record files (:mod:`learnjax.guard`). None of them imports JAX, so the
command line answers bad input in about a second.
"""

from __future__ import annotations

import math
import os
import re
import tempfile

import ml_collections

from learnjax import guard, sizes as sizes_lib
from learnjax.config import base_config, flatten  # noqa: F401  (flatten: validation.flatten)
from learnjax.predictions import MODEL as PREDICTIONS_MODEL
from learnjax.data import variants
from learnjax.errors import LearnjaxError

# train.precision -> (jax_default_matmul_precision, the models' compute dtype); parameters stay
# float32 in every case. 'default' is XLA's choice: TF32 for float32 matmuls and convolutions on
# NVIDIA GPUs since Ampere, bfloat16 passes on TPUs, exact float32 on CPUs.
PRECISIONS = {"default": (None, None), "float32": ("highest", None),
              "tf32": ("tensorfloat32", None), "bfloat16": (None, "bfloat16")}
PRECISION_NAMES = tuple(PRECISIONS)
SEED_MAX = 2**32 - 1                 # random keys are made from 32-bit seeds
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")   # one path component, no hidden file
CHOICES = {"train.error_measure": ("running", "full"), "train.loop": ("auto", "scan", "step"),
           "train.seed_layout": ("auto", "vmap", "vmap_grouped", "sequential"),
           "train.precision": PRECISION_NAMES}


def grid_list(value, field: str, kind=str, allow_empty: bool = False) -> list:
  """A grid axis: one value or a comma-separated list, with no empty or repeated element."""
  if isinstance(value, str):
    items = [v.strip() for v in value.split(",")]
    if items == [""]:
      items = []
    if "" in items:
      raise LearnjaxError(f"config.{field}={value!r} has an empty element; separate values by "
                          "single commas")
  elif isinstance(value, (list, tuple)):
    items = list(value)
  else:
    items = [value]
  if not items and not allow_empty:
    raise LearnjaxError(f"config.{field} is empty")
  if kind is int:
    if any(isinstance(v, bool) or isinstance(v, float) and not v.is_integer() for v in items):
      raise LearnjaxError(f"config.{field} must be integers, got {value!r}")
    try:
      items = [int(v) for v in items]
    except (TypeError, ValueError):
      raise LearnjaxError(f"config.{field} must be integers (one, or several separated by "
                          f"commas), got {value!r}") from None
  seen = set()
  for v in items:
    if v in seen:
      raise LearnjaxError(f"config.{field} lists {v!r} twice ({value!r}); each value once")
    seen.add(v)
  return items


def _number(flat, field, low=None, high=None, low_open=False, high_open=False, what="a number"):
  value = flat[field]
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
    raise LearnjaxError(f"config.{field} must be a finite number, got {value!r}")
  too_low = low is not None and (value <= low if low_open else value < low)
  too_high = high is not None and (value >= high if high_open else value > high)
  if too_low or too_high:
    raise LearnjaxError(f"config.{field} must be {what}, got {value!r}")
  return value


def _integer(flat, field, low, what, none_ok=False):
  value = flat[field]
  if value is None and none_ok:
    return None
  if isinstance(value, bool) or not isinstance(value, int) or value < low:
    raise LearnjaxError(f"config.{field} must be {what}, got {value!r}")
  return value


def check_structure(config) -> None:
  """Refuses a config that is not a ConfigDict holding every field of ``base_config()``."""
  if not isinstance(config, ml_collections.ConfigDict):
    raise LearnjaxError(f"the config must be an ml_collections.ConfigDict (get_config returned "
                        f"{type(config).__name__}); start it from learnjax.config.base_config()")
  flat = flatten(config)
  missing = [k for k in flatten(base_config()) if k not in flat]
  if missing:
    shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
    raise LearnjaxError(f"the config lacks {shown}; start it from learnjax.config.base_config()")


def check_config(config) -> None:
  """Refuses any setting that would fail later or train something other than what was asked."""
  check_structure(config)
  flat = flatten(config)
  if not isinstance(flat["data.name"], str) or not flat["data.name"].strip():
    raise LearnjaxError("data.name is empty; choose digits, npz (with --config.data.npz_path) or "
                        "a tensorflow-datasets name (mnist, cifar10, fashion_mnist...)")
  for field in CHOICES:
    check_choice(field, flat[field])
  _integer(flat, "seeds", 1, "a positive integer")
  if _integer(flat, "seed", 0, "an integer >= 0") > SEED_MAX:
    raise LearnjaxError(f"config.seed must be at most {SEED_MAX} (2^32 - 1: random keys hold 32 "
                        f"bits, a larger seed would be truncated), got {flat['seed']}")
  for size in ("data.n1_size", "data.test_size"):
    _integer(flat, size, 1, "a positive integer (or unset for the default)", none_ok=True)
  sizes_lib.n2_sizes(flat["data.n2_size"])   # one size, a comma list or geometric:A:B:K
  for block in ("n1", "n2"):
    grid_list(flat[f"{block}.model"], f"{block}.model")
    for hparam in ("width", "depth"):
      _integer(flat, f"{block}.{hparam}", 1, "a positive integer", none_ok=True)
    sizes = grid_list(flat[f"{block}.batch_size"], f"{block}.batch_size", int)
    if any(b < 1 for b in sizes):
      raise LearnjaxError(f"config.{block}.batch_size must be positive integers, "
                          f"got {flat[f'{block}.batch_size']!r}")
  check_variants(config)
  check_unused_settings(flat)
  _number(flat, "train.learning_rate", 0, low_open=True, what="a positive finite number")
  _number(flat, "train.momentum", 0, 1, high_open=True, what="in [0, 1)")
  _number(flat, "train.plateau_factor", 0, 1, True, True, what="in (0, 1)")
  _integer(flat, "train.plateau_patience", 1, "an integer >= 1 (epochs)")
  # stop_error 0: no seed stops early, every training runs max_epochs.
  _number(flat, "train.stop_error", 0, 1, high_open=True, what="in [0, 1) (0: train max_epochs)")
  max_epochs = _integer(flat, "train.max_epochs", 1, "a positive integer")
  _integer(flat, "train.eval_batch_size", 1, "a positive integer")
  _integer(flat, "train.devices", 0, "0 (all that divide the seeds) or a positive integer")
  _integer(flat, "train.concurrent_seeds", 0, "0 (auto) or a positive integer")
  if not isinstance(flat["train.shared_order"], bool):
    raise LearnjaxError(f"config.train.shared_order must be True or False, "
                        f"got {flat['train.shared_order']!r}")
  _integer(flat, "checkpoint_every_epochs", 0, "0 (no periodic checkpoints) or a positive integer")
  _number(flat, "progress_seconds", 0, what="a number >= 0")
  epochs = snapshot_epochs(config)
  if epochs and epochs[-1] > max_epochs:
    raise LearnjaxError(f"config.n1.snapshot_epochs asks for epoch {epochs[-1]}, beyond "
                        f"train.max_epochs={max_epochs}; N1 never reaches it")


def check_unused_settings(flat: dict) -> None:
  """Refuses a setting that the chosen options would ignore: it would look used in config.json."""
  if flat["data.npz_path"] and flat["data.name"] != "npz":
    raise LearnjaxError(f"config.data.npz_path={flat['data.npz_path']!r} is read only with "
                        f"data.name=npz, but data.name is {flat['data.name']!r}; add "
                        "--config.data.name=npz, or leave data.npz_path empty")
  given = PREDICTIONS_MODEL in grid_list(flat["n1.model"], "n1.model")
  for field in ("n1.predictions", "n1.name"):
    if flat[field] and not given:
      raise LearnjaxError(f"config.{field}={flat[field]!r} is read only with "
                          f"n1.model={PREDICTIONS_MODEL}, but n1.model is {flat['n1.model']!r}; "
                          f"add --config.n1.model={PREDICTIONS_MODEL}, or leave {field} empty")
  for name in grid_list(flat["n1.name"], "n1.name", allow_empty=True):
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name) or "__" in name:
      raise LearnjaxError(f"config.n1.name {name!r} must be a plain name (letters, digits, and . "
                          "_ + - inside, no '__'): it names the folder of that N1 in the workdir")


def check_model_hparams(field: str, names: list[str], given: dict, takes) -> None:
  """Refuses a hyper-parameter that a model of the block would ignore, or a missing one it needs.

  ``given``: {'width': 256, 'depth': None} of config.{field}; ``takes(name)``: (the
  hyper-parameters the model ``name`` takes, those it needs set), as the model registry declares
  them. A width set beside a model that has its own (``vgg11``) would be recorded in config.json
  as if it had been used.
  """
  for name in names:
    uses, needs = takes(name)
    missing = [h for h in needs if given.get(h) is None]
    if missing:
      raise LearnjaxError(f"model {name!r} of config.{field}.model needs {', '.join(missing)} "
                          f"(e.g. --config.{field}.{missing[0]}=...)")
    unused = [h for h, v in given.items() if v is not None and h not in uses]
    if unused:
      h = unused[0]
      raise LearnjaxError(
          f"config.{field}.{h}={given[h]} is not used by model {name!r} of config.{field}.model, "
          f"which takes {', '.join(uses) or 'no hyper-parameters'}; leave {field}.{h} unset, or "
          f"give models that take it (python -m learnjax.models lists the families)")


def check_choice(field: str, value) -> str:
  """Refuses a value of ``field`` (``'train.loop'``...) outside its choices (:data:`CHOICES`)."""
  if value not in CHOICES[field]:
    raise LearnjaxError(f"config.{field} must be one of {', '.join(CHOICES[field])}, "
                        f"got {value!r}")
  return value


def check_devices(config) -> list:
  """Refuses more ``train.devices`` than this process sees (imports JAX: call it after the rest);
  the local devices."""
  return check_device_count(config.train.devices)


def check_variants(config) -> list:
  """The registered variants of ``data.variant``, with ``data.corrupt_fraction`` given exactly
  when one of them reads it."""
  chosen = [variants.get(v) for v in grid_list(config.data.variant, "data.variant")]
  fractions = corrupt_fractions(config)
  readers = [v.name for v in chosen if v.uses_fraction]
  if readers and not fractions:
    raise LearnjaxError(f"data.variant={readers[0]} needs data.corrupt_fraction: the fraction of "
                        "D1's labels replaced, in [0, 1] (several separated by commas, e.g. "
                        "--config.data.corrupt_fraction=0,0.5,1)")
  if fractions and not readers:
    users = ", ".join(v for v in variants.names() if variants.get(v).uses_fraction)
    raise LearnjaxError(f"data.corrupt_fraction={config.data.corrupt_fraction!r} is read only by "
                        f"{users}, which data.variant does not list; unset it or add the variant")
  replacing = [v.name for v in chosen if v.eval_images is not None]
  if replacing and snapshot_epochs(config):
    raise LearnjaxError(f"n1.snapshot_epochs is not available with data.variant={replacing[0]}, "
                        "whose D2 and D3 images differ per seed; measure it without snapshots")
  return chosen


def corrupt_fractions(config) -> list[float]:
  """``data.corrupt_fraction`` as a list of fractions in [0, 1] (empty when unset)."""
  value = config.data.get("corrupt_fraction")
  fractions = []
  for item in grid_list("" if value is None else value, "data.corrupt_fraction", allow_empty=True):
    try:
      fraction = float(item)
    except (TypeError, ValueError):
      fraction = math.nan
    if isinstance(item, bool) or not 0.0 <= fraction <= 1.0:
      raise LearnjaxError(f"config.data.corrupt_fraction must be fractions in [0, 1], got "
                          f"{value!r}")
    fractions.append(fraction)
  ids = [variants.fraction_id(f) for f in fractions]
  if len(set(ids)) != len(ids):
    raise LearnjaxError(f"config.data.corrupt_fraction lists one fraction twice ({value!r})")
  return fractions


def check_device_count(devices: int) -> list:
  """Refuses more ``devices`` than this process sees; the local devices (imports JAX)."""
  import jax
  local = jax.local_devices()
  if devices > len(local):
    raise LearnjaxError(f"train.devices={devices}, but this process sees "
                        f"{len(local)} {local[0].platform} device(s)")
  return local


def snapshot_epochs(config) -> list[int]:
  """The N1 epochs whose predictions are kept (``n1.snapshot_epochs``), sorted."""
  value = config.n1.get("snapshot_epochs", "")
  epochs = grid_list(value, "n1.snapshot_epochs", int, allow_empty=True)
  if any(e < 1 for e in epochs):
    raise LearnjaxError(f"config.n1.snapshot_epochs must be positive epochs, got {value!r}")
  return sorted(epochs)


def check_workdir(workdir) -> None:
  """Refuses a results folder that is empty, a file, under a file, or cannot be written."""
  if not workdir or not str(workdir).strip():
    raise LearnjaxError("--workdir is empty; give the folder for results (created if missing)")
  if re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", str(workdir)):
    raise LearnjaxError(f"--workdir {workdir} is a URL; learnjax writes to a folder: mount the "
                        "bucket or share (gcsfuse, NFS) and give the path of the mount")
  path = os.path.abspath(workdir)
  if os.path.exists(path) and not os.path.isdir(path):
    raise LearnjaxError(f"--workdir {workdir} is a file; give a folder (new, or holding learnjax "
                        "results)")
  if os.path.isdir(path):
    try:  # an unnamed temporary file: nothing appears in the folder
      tempfile.TemporaryFile(dir=path).close()
    except OSError as e:
      raise LearnjaxError(f"--workdir {workdir} is not writable ({e.strerror}); results need a "
                          "writable folder") from None
    return
  parent = os.path.dirname(path)
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  if not os.path.isdir(parent):
    raise LearnjaxError(f"cannot create --workdir {workdir}: {parent} is a file, not a folder")
  try:
    tempfile.TemporaryFile(dir=parent).close()
  except OSError as e:
    raise LearnjaxError(f"cannot create --workdir {workdir}: {parent} is not writable "
                        f"({e.strerror})") from None


def check_data(config, workdir: str, pool=None) -> dict:
  """Checks the data (``pool``, else loaded) and its split, and refuses a workdir of other data;
  its record."""
  from learnjax.data import fingerprint, sources, splits
  pool = sources.load_pool(config.data) if pool is None else pool
  parts = splits.make_splits(pool, config.data.n1_size, sizes_lib.d2_size(config.data.n2_size),
                           config.data.test_size)
  record = fingerprint.fingerprint(pool, parts)
  if os.path.isdir(workdir):
    guard.Workdir(workdir, config, record).check_records()
  return record

