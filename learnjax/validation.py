"""Every setting of an experiment checked before anything is trained, and the workdir with it.

A bad setting must never cost compute nor leave a number that looks right: :func:`check_config`
refuses out-of-range, non-finite and mistyped fields, grid lists with empty or repeated elements,
and snapshot epochs that training never reaches; :func:`check_workdir` refuses a results folder
that cannot be used; :func:`check_workdir_data` (and :func:`check_data`) refuses a workdir whose results were
computed on other data. None of them imports JAX, so the command line answers bad input in about a second.
"""

from __future__ import annotations

import math
import os
import tempfile

import ml_collections

from learnjax import store as store_lib
from learnjax.data import variants
from learnjax.data.fingerprint import describe_changes
from learnjax.errors import LearnjaxError

PRECISION_NAMES = ("default", "float32", "tf32", "bfloat16")
CHOICES = {"train.error_measure": ("running", "full"), "train.loop": ("auto", "scan", "step"),
           "train.seed_layout": ("auto", "vmap", "sequential"), "train.precision": PRECISION_NAMES}


def flatten(config) -> dict:
  """{'train.learning_rate': 0.01, ...} of a ConfigDict (or dict)."""
  flat = {}

  def walk(prefix, value):
    if isinstance(value, (dict, ml_collections.ConfigDict)):
      for k, v in value.items():
        walk(f"{prefix}{k}.", v)
    else:
      flat[prefix[:-1]] = value

  walk("", config)
  return flat


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
  from learnjax.config import base_config
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
  for field, choices in CHOICES.items():
    if flat[field] not in choices:
      raise LearnjaxError(f"config.{field} must be one of {', '.join(choices)}, "
                          f"got {flat[field]!r}")
  _integer(flat, "seeds", 1, "a positive integer")
  _integer(flat, "seed", 0, "an integer >= 0")
  for size in ("data.n1_size", "data.n2_size", "data.test_size"):
    _integer(flat, size, 1, "a positive integer (or unset for the default)", none_ok=True)
  for block in ("n1", "n2"):
    grid_list(flat[f"{block}.model"], f"{block}.model")
    for hparam in ("width", "depth"):
      _integer(flat, f"{block}.{hparam}", 1, "a positive integer", none_ok=True)
    sizes = grid_list(flat[f"{block}.batch_size"], f"{block}.batch_size", int)
    if any(b < 1 for b in sizes):
      raise LearnjaxError(f"config.{block}.batch_size must be positive integers, "
                          f"got {flat[f'{block}.batch_size']!r}")
  check_variants(config)
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


def check_devices(config) -> None:
  """Refuses more ``train.devices`` than this process sees (imports JAX: call it after the rest)."""
  import jax
  local = jax.local_devices()
  if config.train.devices > len(local):
    raise LearnjaxError(f"train.devices={config.train.devices}, but this process sees "
                        f"{len(local)} {local[0].platform} device(s)")


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


DATA_RECORD = "data.json"


def check_data(config, workdir: str) -> dict:
  """Loads and checks the data and its split, and refuses a workdir of other data; its record."""
  from learnjax.data import fingerprint, sources, splits
  pool = sources.load_pool(config.data)
  parts = splits.make_splits(pool, config.data.n1_size, config.data.n2_size, config.data.test_size)
  record = fingerprint.fingerprint(pool, parts)
  check_workdir_data(workdir, record)
  return record


def _has_results(workdir: str) -> bool:
  return any(os.path.isfile(os.path.join(workdir, kind, unit, "result.json"))
             for kind in ("cells", "n1") if os.path.isdir(os.path.join(workdir, kind))
             for unit in os.listdir(os.path.join(workdir, kind)))


def check_workdir_data(workdir: str, fingerprint: dict) -> None:
  """Refuses a workdir whose stored results were computed on other data than ``fingerprint``."""
  path = os.path.join(workdir, DATA_RECORD)
  if not os.path.exists(path) or not _has_results(workdir):
    return
  old = store_lib.read_json(path)
  changes = describe_changes(old if isinstance(old, dict) else {}, fingerprint)
  if changes:
    raise LearnjaxError(f"{workdir} holds results computed on other data ({changes}); use "
                        "a new --workdir, or the data of those results")


def write_workdir_data(store, fingerprint: dict) -> None:
  store_lib.atomic_write_json(os.path.join(store.workdir, DATA_RECORD), fingerprint)
