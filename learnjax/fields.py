"""Every config field's kind, declared once: validation, the guard, the command line, the API, the
engine's settings and the report all read this table.

Kinds:

* ``GRID``: a grid axis (``data.variant``, ``n1.model``, ``n1.batch_size``...). It holds a list
  (one value or a comma string is turned into its list once, by :func:`resolve`); each stored
  unit's fingerprint holds its own value, so the axis may change from one launch to the next.
* ``UNIT``: names or shapes a unit without being an axis (``n1.width``, ``n1.name``,
  ``experiment``); left out of the workdir's settings like a grid axis.
* ``PROTOCOL``: determines the numbers (learning rate, seeds, data sizes): part of every
  fingerprint; a workdir refuses a launch that changes one.
* ``EXECUTION``: how the work runs (loop, devices, checkpoints, plugins): never changes a number,
  left out of fingerprints.
* ``PATH``: where an input lies; its content is fingerprinted instead.

A field added after the first release declares ``neutral``: the value at which learnjax behaves as
before the field existed. At that value it is left out of every fingerprint, so a stored workdir
resumes, and :func:`learnjax.config.stored_config` gives it that value where an older config.json
lacks it. ``engine``: the field is a setting of :class:`learnjax.engine.TrainConfig` of the same
name. ``check``: the range check :func:`learnjax.validation.check_config` applies.

Adding a training setting is its default and comment in :func:`learnjax.config.base_config`, one
row here, and its use in the engine. Plain Python, no JAX.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

from learnjax import train_sizes
from learnjax.errors import LearnjaxError

GRID, UNIT, PROTOCOL, EXECUTION, PATH = "grid", "unit", "protocol", "execution", "path"
_UNSET = object()


# ---- range checks --------------------------------------------------------------------------------

def number(low=None, high=None, low_open=False, high_open=False, what="a number"):
  """A finite number in a range."""
  def check(field, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
      raise LearnjaxError(f"config.{field} must be a finite number, got {value!r}")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
      raise LearnjaxError(f"config.{field} must be {what}, got {value!r}")
  return check


def integer(low, what, none_ok=False):
  """An integer >= ``low`` (or None where ``none_ok``: unset for the default)."""
  def check(field, value):
    if value is None and none_ok:
      return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
      raise LearnjaxError(f"config.{field} must be {what}, got {value!r}")
  return check


def choice(*values):
  def check(field, value):
    if value not in values:
      raise LearnjaxError(f"config.{field} must be one of {', '.join(values)}, got {value!r}")
  check.values = values
  return check


def rates(field, value):
  """Unset, or rates in [0, 1): one number, a comma string or a list (a grid axis)."""
  if value is None:
    return
  items = grid_list(value, field)
  for item in items:
    try:
      rate = float(item) if isinstance(item, str) else item
    except ValueError:
      rate = None
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
      raise LearnjaxError(f"config.{field} must be rates in [0, 1) (one, or several separated by "
                          f"commas), got {value!r}")


def boolean(field, value):
  if not isinstance(value, bool):
    raise LearnjaxError(f"config.{field} must be True or False, got {value!r}")


# ---- the table -----------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Field:
  name: str                          # dotted: 'train.learning_rate'
  kind: str
  check: Callable | None = None      # (name, value) -> None, raises LearnjaxError
  element: type | None = None        # GRID: each element's type
  allow_empty: bool = False          # GRID: may list nothing
  neutral: Any = _UNSET              # the value that behaves as before the field existed
  engine: bool = False               # a setting of engine.TrainConfig of the same name
  column: str | None = None          # GRID: the key a stored cell record holds its value under
  header: str | None = None          # GRID: the column's header in tables

  @property
  def leaf(self) -> str:
    return self.name.rsplit(".", 1)[-1]

  @property
  def has_neutral(self) -> bool:
    return self.neutral is not _UNSET


PRECISION_NAMES = ("default", "float32", "tf32", "bfloat16")

_TABLE = (
    Field("plugins", EXECUTION),
    Field("experiment", UNIT),
    Field("seed", PROTOCOL, integer(0, "an integer >= 0")),
    Field("seeds", PROTOCOL, integer(1, "a positive integer")),
    Field("data.name", PROTOCOL),
    Field("data.npz_path", PATH),
    Field("data.data_dir", PATH),
    Field("data.variant", GRID, element=str, column="variant", header="variant"),
    Field("data.corrupt_fraction", GRID, element=float, allow_empty=True),
    Field("data.n1_size", PROTOCOL,
          integer(1, "a positive integer (or unset for the default)", none_ok=True)),
    # One size, several (a learnability curve: each cell's size is its own grid point) or
    # geometric:A:B:K; the workdir's setting is |D2|, the largest.
    Field("data.n2_size", PROTOCOL, element=int, column="n2_size", header="N2 size"),
    Field("data.test_size", PROTOCOL,
          integer(1, "a positive integer (or unset for the default)", none_ok=True)),
    Field("n1.model", GRID, element=str, column="n1_model", header="N1"),
    Field("n1.width", UNIT, integer(1, "a positive integer", none_ok=True)),
    Field("n1.depth", UNIT, integer(1, "a positive integer", none_ok=True)),
    # A hyper-parameter of the models that take it (mlp, shallow_cnn): one N1 per rate listed;
    # unset and 0 are the model without dropout.
    Field("n1.dropout", GRID, rates, element=float, neutral=None),
    Field("n1.batch_size", GRID, element=int, column="n1_batch_size", header="N1 batch"),
    Field("n1.snapshot_epochs", GRID, element=int, allow_empty=True, column="n1_epoch",
          header="N1 epoch"),
    Field("n1.predictions", PATH),
    Field("n1.name", UNIT),
    Field("n2.model", GRID, element=str, column="n2_model", header="N2"),
    Field("n2.width", UNIT, integer(1, "a positive integer", none_ok=True)),
    Field("n2.depth", UNIT, integer(1, "a positive integer", none_ok=True)),
    Field("n2.dropout", GRID, rates, element=float, neutral=None),
    Field("n2.batch_size", GRID, element=int, column="n2_batch_size", header="N2 batch"),
    Field("train.learning_rate", PROTOCOL,
          number(0, low_open=True, what="a positive finite number"), engine=True),
    Field("train.momentum", PROTOCOL, number(0, 1, high_open=True, what="in [0, 1)"), engine=True),
    Field("train.nesterov", PROTOCOL, boolean, neutral=False, engine=True),
    Field("train.weight_decay", PROTOCOL, number(0, what="a number >= 0 (0: no weight decay)"),
          neutral=0.0, engine=True),
    Field("train.plateau_factor", PROTOCOL, number(0, 1, True, True, what="in (0, 1)"),
          engine=True),
    Field("train.plateau_patience", PROTOCOL, integer(1, "an integer >= 1 (epochs)"), engine=True),
    # stop_error 0: no seed stops early, every training runs max_epochs.
    Field("train.stop_error", PROTOCOL,
          number(0, 1, high_open=True, what="in [0, 1) (0: train max_epochs)"), engine=True),
    Field("train.max_epochs", PROTOCOL, integer(1, "a positive integer"), engine=True),
    Field("train.error_measure", PROTOCOL, choice("running", "full"), engine=True),
    Field("train.loop", EXECUTION, choice("auto", "scan", "step"), engine=True),
    Field("train.seed_layout", EXECUTION, choice("auto", "vmap", "vmap_grouped", "sequential")),
    Field("train.devices", EXECUTION,
          integer(0, "0 (all that divide the seeds) or a positive integer")),
    Field("train.concurrent_seeds", EXECUTION, integer(0, "0 (auto) or a positive integer")),
    Field("train.shared_order", PROTOCOL, boolean, neutral=False, engine=True),
    Field("train.eval_batch_size", EXECUTION, integer(1, "a positive integer"), engine=True),
    Field("train.precision", PROTOCOL, choice(*PRECISION_NAMES), neutral="default"),
    Field("checkpoint_every_epochs", EXECUTION,
          integer(0, "0 (no periodic checkpoints) or a positive integer")),
    Field("progress_seconds", EXECUTION, number(0, what="a number >= 0")),
)
FIELDS: dict[str, Field] = {f.name: f for f in _TABLE}

# {name: neutral value} of the fields added after the first release (learnjax.config.NEUTRAL).
NEUTRAL = {f.name: f.neutral for f in _TABLE if f.has_neutral}


def of_kind(*kinds: str) -> tuple[str, ...]:
  return tuple(f.name for f in _TABLE if f.kind in kinds)


def grid_axes() -> tuple[Field, ...]:
  """The grid axes that a stored cell records (its ``column``), in table order."""
  return tuple(f for f in _TABLE if f.column)


def list_fields() -> tuple[str, ...]:
  """The fields that take a list (the grid axes and ``data.n2_size``)."""
  return tuple(f.name for f in _TABLE if f.element is not None)


def engine_fields() -> tuple[str, ...]:
  return tuple(f.name for f in _TABLE if f.engine)


def choices(name: str) -> tuple[str, ...]:
  return FIELDS[name].check.values


# ---- lists ---------------------------------------------------------------------------------------

def grid_list(value, field: str, kind=str, allow_empty: bool = False) -> list:
  """A grid axis: one value, a comma-separated string or a list; no empty or repeated element."""
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


def as_list(value) -> list:
  """A stored grid value as a list, leniently (a config.json of any release): the report's reader."""
  if value is None:
    return []
  if isinstance(value, (list, tuple)):
    return list(value)
  if isinstance(value, str):
    return [v.strip() for v in value.split(",") if v.strip()]
  return [value]


def parse(name: str, value):
  """The value a list field holds once resolved: a grid axis its list, ``data.n2_size`` its sizes
  (one size stays a number); refuses a bad list with the value as the user wrote it."""
  field = FIELDS[name]
  if name == "data.n2_size":
    values = train_sizes.parse(value)
    return values if len(values) > 1 else values[0]
  if name in ("data.corrupt_fraction", "n1.dropout", "n2.dropout") and value is None:
    return None   # unset: no variant or model reads it
  kind = int if field.element is int else str
  items = grid_list("" if value is None else value, name, kind, field.allow_empty)
  if field.check is rates:
    return [float(item) for item in items]
  if field.element is float:   # each fraction's range: validation.corrupt_fractions
    items = [_float_or_same(item) for item in items]
    if len(set(map(repr, items))) != len(items):
      raise LearnjaxError(f"config.{name} lists one fraction twice ({value!r})")
  return items


def _float_or_same(item):
  if isinstance(item, str):
    try:
      return float(item)
    except ValueError:
      return item
  return item


def resolve(config) -> None:
  """Turns every list field of a ConfigDict into its list, in place (idempotent): the one place a
  comma string is parsed."""
  for name in list_fields():
    *blocks, leaf = name.split(".")
    node = config
    for block in blocks:
      node = node[block]
    value = parse(name, node[leaf])
    with node.ignore_type():
      node[leaf] = value
