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

from learnjax import fields, guard, plugins, train_sizes
from learnjax.config import base_config, flatten  # noqa: F401  (flatten: validation.flatten)
from learnjax.predictions import MODEL as PREDICTIONS_MODEL
from learnjax.data import variants
from learnjax.errors import LearnjaxError

# train.precision -> (jax_default_matmul_precision, the models' compute dtype); parameters stay
# float32 in every case. 'default' is XLA's choice: TF32 for float32 matmuls and convolutions on
# NVIDIA GPUs since Ampere, bfloat16 passes on TPUs, exact float32 on CPUs.
PRECISIONS = {"default": (None, None), "float32": ("highest", None),
              "tf32": ("tensorfloat32", None), "bfloat16": (None, "bfloat16")}
PRECISION_NAMES = fields.PRECISION_NAMES
assert tuple(PRECISIONS) == PRECISION_NAMES
SEED_MAX = 2**32 - 1                 # random keys are made from 32-bit seeds
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")   # one path component, no hidden file
CHOICES = {name: fields.choices(name) for name, f in fields.FIELDS.items()
           if getattr(f.check, "values", None)}
grid_list = fields.grid_list


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
  """Refuses any setting that would fail later or train something other than what was asked, and
  turns every grid axis into its list (:func:`learnjax.fields.resolve`)."""
  check_structure(config)
  flat = flatten(config)
  plugins.specs(flat["plugins"])
  if not isinstance(flat["data.name"], str) or not flat["data.name"].strip():
    raise LearnjaxError("data.name is empty; choose digits, npz (with --config.data.npz_path) or "
                        "a tensorflow-datasets name (mnist, cifar10, fashion_mnist...)")
  for name, field in fields.FIELDS.items():   # each field's own range (learnjax.fields)
    if field.check is not None:
      field.check(name, flat[name])
  if flat["seed"] > SEED_MAX:
    raise LearnjaxError(f"config.seed must be at most {SEED_MAX} (2^32 - 1: random keys hold 32 "
                        f"bits, a larger seed would be truncated), got {flat['seed']}")
  fields.resolve(config)   # one size, a comma list or geometric:A:B:K; grid axes as lists
  for block in ("n1", "n2"):
    if any(b < 1 for b in config[block].batch_size):
      raise LearnjaxError(f"config.{block}.batch_size must be positive integers, "
                          f"got {flat[f'{block}.batch_size']!r}")
  check_variants(config)
  check_unused_settings(flatten(config))
  epochs = snapshot_epochs(config)
  if epochs and epochs[-1] > flat["train.max_epochs"]:
    raise LearnjaxError(f"config.n1.snapshot_epochs asks for epoch {epochs[-1]}, beyond "
                        f"train.max_epochs={flat['train.max_epochs']}; N1 never reaches it")


def check_unused_settings(flat: dict) -> None:
  """Refuses a setting that the chosen options would ignore: it would look used in config.json."""
  if flat["data.npz_path"] and flat["data.name"] != "npz":
    raise LearnjaxError(f"config.data.npz_path={flat['data.npz_path']!r} is read only with "
                        f"data.name=npz, but data.name is {flat['data.name']!r}; add "
                        "--config.data.name=npz, or leave data.npz_path empty")
  if flat["train.nesterov"] and not flat["train.momentum"]:
    raise LearnjaxError("config.train.nesterov=True is read only with a momentum above 0, but "
                        "train.momentum is 0; set --config.train.momentum (e.g. 0.9), or leave "
                        "train.nesterov False")
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
  fields.FIELDS[field].check(field, value)
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
  parts = splits.make_splits(pool, config.data.n1_size, train_sizes.d2_size(config.data.n2_size),
                           config.data.test_size)
  record = fingerprint.fingerprint(pool, parts)
  if os.path.isdir(workdir):
    guard.Workdir(workdir, config, record).check_records()
  return record

