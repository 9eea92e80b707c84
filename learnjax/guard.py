"""What determined each stored unit, and the record of the settings a workdir was launched with.

A stored number is used only under the settings and data that made it. Two things ensure it:

* Every unit (``n1/<id>``, ``cells/<id>``, and in-flight ``checkpoints/<kind>/<id>``) holds a
  ``fingerprint.json``, written before anything else of it: the fields that determine its numbers
  (the protocol settings, the data's hashes, its own grid point, the sha256 of an N1 given as
  predictions) and their digest. A unit is used only when its fingerprint equals the launch's.
* The workdir's record (``config.json`` and ``data.json``) is created once, atomically, by the first
  launch, before it trains anything; every later launch compares its settings and data to it and
  is refused if they differ, or joins (sharing the rows) if they are the same.

Fields that only say how the work is executed (:data:`EXECUTION_FIELDS`) or where an input lies
(:data:`PATH_FIELDS`, whose content is fingerprinted instead) are left out, and so is any field at
its neutral value (:data:`learnjax.config.NEUTRAL`): a field added in a later release, at the
value that behaves as the older release did, leaves every fingerprint as it was.

A workdir that lost a record file is judged by its units' own fingerprints; a unit stored before
fingerprints existed is adopted only where both record files exist and match the launch.
This module imports no JAX.
"""

from __future__ import annotations

import hashlib
import json
import os

from learnjax import config as config_lib, fields, train_sizes, storage
from learnjax.data.variants import registry as variants_registry
from learnjax.data.variants.registry import LEGACY_CONSTRUCTION
from learnjax.errors import LearnjaxError

# How the work is executed (never changes a number), where an input lies (the content is
# fingerprinted instead, so the same .npz reached by another path is the same data), and the grid
# axes and labels (free across launches on one workdir; each unit's fingerprint holds its own grid
# point): the kinds of learnjax.fields.
EXECUTION_FIELDS = fields.of_kind(fields.EXECUTION)
PATH_FIELDS = fields.of_kind(fields.PATH)
GRID_FIELDS = fields.of_kind(fields.GRID, fields.UNIT)
# Fingerprint fields naming a unit's own grid point (the rest is the workdir's protocol and data).
_UNIT_FIELDS = ("data.variant", "data.corrupt_fraction", "n1.", "n2.", "n1_epoch")

FINGERPRINT = "fingerprint.json"
CONFIG_RECORD = "config.json"
DATA_RECORD = "data.json"
_DATA_KEYS = ("dataset", "num_classes", "image_shape", "train_images", "train_labels", "d1", "d2",
              "d3", "d3_images", "d3_labels")


def _flatten(tree, prefix="") -> dict:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict) or hasattr(value, "to_dict"):
      flat.update(_flatten(value.to_dict() if hasattr(value, "to_dict") else value,
                           f"{prefix}{key}."))
    else:
      flat[prefix + key] = value
  return flat


def _plain(value):
  """A JSON round trip: tuples become lists, so stored and fresh values compare equal."""
  return json.loads(json.dumps(value))


def settings(config) -> dict:
  """The protocol settings of a config (ConfigDict or stored dict) that every unit shares."""
  left_out = EXECUTION_FIELDS + PATH_FIELDS + GRID_FIELDS
  flat = _flatten(config.to_dict() if hasattr(config, "to_dict") else config)
  if "data.n2_size" in flat:   # |D2|, the largest size; N2's sizes are each cell's own
    flat["data.n2_size"] = train_sizes.d2_size(flat["data.n2_size"])
  return _plain({k: v for k, v in sorted(flat.items()) if k not in left_out
                 and not (k in config_lib.NEUTRAL and v == config_lib.NEUTRAL[k])})


def data_fields(data_record: dict) -> dict:
  from learnjax.data.fingerprint import identity
  record = identity(data_record)
  return _plain({f"data.{k}": record.get(k) for k in _DATA_KEYS})


def n1_fields(protocol: dict, data_record: dict, variant: str, model: str, batch_size: int,
              snapshot_epochs=(), predictions_sha256: str | None = None,
              corrupt_fraction: float | None = None, construction: str | None = None,
              model_identity: dict | None = None) -> dict:
  """What determines an N1: the protocol, the data, its variant (with its corrupt fraction, and
  its construction where it is not the first one, see learnjax.data.variants), model and batch
  size, the epochs whose predictions it keeps, and the content of its predictions file (an N1
  given as one). ``model_identity``: a user's model's parameter shapes and definition digest
  (learnjax.models.identity; None for learnjax's own models)."""
  fields = {**protocol, **data_fields(data_record), "data.variant": variant, "n1.model": model,
            "n1.batch_size": int(batch_size), **_identity_fields("n1", model_identity)}
  if corrupt_fraction is not None:
    fields["data.corrupt_fraction"] = float(corrupt_fraction)
  if construction is not None and construction != LEGACY_CONSTRUCTION:
    fields["data.variant_construction"] = construction
  if snapshot_epochs:
    fields["n1.snapshot_epochs"] = sorted(int(e) for e in snapshot_epochs)
  if predictions_sha256:
    fields["n1.predictions_sha256"] = predictions_sha256
  return _plain(fields)


def cell_fields(n1: dict, n2_model: str, n2_batch_size: int, n1_epoch: int | None,
                n2_size: int | None = None, n2_identity: dict | None = None) -> dict:
  """What determines a cell: its N1's fields and N2's model (and its identity, as N1's), batch
  size, N1 epoch and the number of D2's first examples it learns (a curve's size; None: all of
  D2)."""
  fields = {**n1, "n2.model": n2_model, "n2.batch_size": int(n2_batch_size),
            **_identity_fields("n2", n2_identity)}
  if n1_epoch is not None:
    fields["n1_epoch"] = int(n1_epoch)
  if n2_size is not None:
    fields["n2.train_size"] = int(n2_size)
  return _plain(fields)


def _identity_fields(net: str, identity: dict | None) -> dict:
  if identity is None:
    return {}
  return {f"{net}.model_params": identity["params"], f"{net}.model_definition": identity["definition"]}


def fingerprint(fields: dict) -> dict:
  text = json.dumps(fields, sort_keys=True, separators=(",", ":"))
  return {"fields": fields, "digest": hashlib.sha256(text.encode()).hexdigest()}


def _workdir_part(fields: dict) -> dict:
  return {k: v for k, v in fields.items() if not k.startswith(_UNIT_FIELDS)}


def describe_changes(old: dict, new: dict, limit: int = 5) -> str:
  """'train.learning_rate: 0.01 -> 0.05, ...' for the fields that differ; '' if none do."""
  def short(value):
    text = json.dumps(value) if not isinstance(value, str) else value
    return f"sha256 {text[:8]}.." if len(text) == 64 and isinstance(value, str) else text
  changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
  def shown(fields, k):   # a field left out at its neutral value reads as that value
    if k in fields:
      return short(fields[k])
    return short(config_lib.NEUTRAL[k]) if k in config_lib.NEUTRAL else "(unset)"
  parts = [f"{k}: {shown(old, k)} -> {shown(new, k)}" for k in changed[:limit]]
  more = len(changed) - limit
  return ", ".join(parts) + (f" and {more} more" if more > 0 else "")


def write_fingerprint(folder: str, fields: dict) -> None:
  storage.atomic_write_json(os.path.join(folder, FINGERPRINT), fingerprint(fields))


def read_fingerprint(folder: str) -> dict | None:
  """The fields of a unit's fingerprint.json; None where it has none (an older learnjax)."""
  path = os.path.join(folder, FINGERPRINT)
  if not os.path.exists(path):
    return None
  stored = storage.read_json(path, hint=f"delete {folder} to recompute that unit")
  if not isinstance(stored, dict) or not isinstance(stored.get("fields"), dict):
    raise LearnjaxError(f"{path} is not a learnjax fingerprint; delete {folder} to recompute it")
  return stored["fields"]


def _has_content(folder: str) -> bool:
  return os.path.isdir(folder) and any(not n.startswith(".tmp-") for n in os.listdir(folder))


def _units(workdir: str):
  """(label, folder, is_checkpoint) of every stored and in-flight unit of a workdir."""
  for kind in ("n1", "cells"):
    for root, in_flight in ((os.path.join(workdir, kind), False),
                            (os.path.join(workdir, "checkpoints", kind), True)):
      if not os.path.isdir(root):
        continue
      for unit_id in sorted(os.listdir(root)):
        folder = os.path.join(root, unit_id)
        done = os.path.isfile(os.path.join(folder, "result.json"))
        if (done or in_flight and _has_content(folder)) and not unit_id.startswith(".tmp-"):
          yield f"{kind}/{unit_id}", folder, in_flight


def has_units(workdir: str) -> bool:
  return next(_units(workdir), None) is not None


class Workdir:
  """The guard of one launch on one workdir: its settings, data and planned units' fields."""

  def __init__(self, workdir: str, config=None, data_record: dict | None = None,
               planned: dict[str, dict] | None = None):
    """``config`` and ``data_record`` (either may be None: not checked) and the fingerprint fields
    of the units this launch plans ('n1/<id>', 'cells/<id>')."""
    self.workdir = workdir
    self.config = config
    self.settings = None if config is None else settings(config)
    self.data = None if data_record is None else _plain(data_record)
    self.planned = planned or {}
    self.shared = {**(self.settings or {}), **(data_fields(data_record) if self.data else {})}
    self.records_vouch = False        # both record files present and matching the launch

  # The record files.

  def check_records(self) -> bool:
    """Refuses a record of other settings or data, a damaged or foreign record; whether both
    record files exist (and so vouch for units stored without a fingerprint)."""
    present = [self._check_config(), self._check_data()]
    self.records_vouch = all(present)
    return self.records_vouch

  def _check_config(self) -> bool:
    path = os.path.join(self.workdir, CONFIG_RECORD)
    if self.config is None or not os.path.exists(path):
      return False
    stored = _read_record(path, "is not a learnjax config")
    if not isinstance(stored, dict) or not all(isinstance(stored.get(b), dict)
                                               for b in ("data", "n1", "train")):
      raise LearnjaxError(f"{path} is not a learnjax config (written by another program?); it is "
                          "left as it is: give another --workdir, or move the file away")
    changes = describe_changes(settings(stored), self.settings)
    if changes:
      self._refuse(f"with a different config ({changes})", "config")
    return True

  def _check_data(self) -> bool:
    path = os.path.join(self.workdir, DATA_RECORD)
    if self.data is None or not os.path.exists(path):
      return False
    stored = _read_record(path, "is damaged")
    missing = ([k for k in _DATA_KEYS if k not in stored] if isinstance(stored, dict)
               else ["a JSON object"])
    if missing:
      raise LearnjaxError(f"{path} is damaged (it lacks {', '.join(missing[:4])}); move it away "
                          "and run again: each stored result is then checked by its own "
                          "fingerprint")
    from learnjax.data.fingerprint import describe_changes as data_changes
    changes = data_changes(stored, self.data)
    if changes:
      self._refuse(f"on other data ({changes})", "data")
    return True

  def _refuse(self, how: str, what: str):
    units = [in_flight for _, _, in_flight in _units(self.workdir)]
    if units and not all(units):
      raise LearnjaxError(f"{self.workdir} holds results computed {how}; use a new --workdir, or "
                          f"the {what} of those results")
    if units:
      raise LearnjaxError(f"{self.workdir} holds unfinished trainings begun {how}; use a new "
                          f"--workdir, or the {what} of those trainings to resume them")
    raise LearnjaxError(f"{self.workdir} was launched {how}; use a new --workdir, or the {what} "
                        "of that launch (it holds no results yet: delete it to start over)")

  # The units.

  def check_units(self) -> None:
    """Refuses any stored or in-flight unit that this launch would use, or report beside its own
    cells, under settings or data other than its own."""
    for label, folder, in_flight in _units(self.workdir):
      self.check_unit(label, folder, in_flight)

  def check_unit(self, label: str, folder: str, in_flight: bool) -> None:
    try:
      stored = read_fingerprint(folder)
    except LearnjaxError:
      if not os.path.isdir(folder):  # finished and removed by its owner meanwhile
        return
      raise
    if stored is None and not os.path.isdir(folder):
      return
    what = f"{folder} ({'an unfinished training' if in_flight else 'a stored result'})"
    if stored is None:
      if not self.records_vouch:
        missing = [n for n in (CONFIG_RECORD, DATA_RECORD)
                   if not os.path.exists(os.path.join(self.workdir, n))]
        raise LearnjaxError(
            f"{what} was written by an older learnjax without a fingerprint, and the "
            f"{' and '.join(missing)} of the workdir, which would vouch for its settings, "
            f"{'is' if len(missing) == 1 else 'are'} missing; use a new --workdir, or restore "
            f"{'that file' if len(missing) == 1 else 'those files'}")
      return
    want = self.planned.get(label)
    changes = describe_changes(_workdir_part(stored), self.shared)
    if not changes and want is not None:
      changes = describe_changes(stored, want)
    if changes:
      todo = ("run with those settings to resume it, or delete that folder to start it over"
              if in_flight else "use a new --workdir, or the settings of that result")
      edited = [net for net in ("n1", "n2") if want is not None and stored.get(f"{net}.model") ==
                want.get(f"{net}.model") and any(stored.get(f"{net}.{k}") != want.get(f"{net}.{k}")
                                                 for k in ("model_definition", "model_params"))]
      if edited:
        names = " and ".join(f"model {want[f'{net}.model']!r}" for net in edited)
        raise LearnjaxError(f"{what} was computed by another definition of {names} (the module "
                            f"was edited under the same name: {changes}); register the edited "
                            f"model under a new name, or {todo}")
      raise LearnjaxError(f"{what} was computed with other settings ({changes}); {todo}")

  def bind_checkpoint(self, label: str, folder: str) -> None:
    """Before a unit trains: checks its in-flight state, then gives it this launch's fingerprint
    (written before the first checkpoint or snapshot, so every later state carries it)."""
    if _has_content(folder):
      self.check_unit(label, folder, in_flight=True)
    if not os.path.exists(os.path.join(folder, FINGERPRINT)):
      write_fingerprint(folder, self.planned[label])

  # The launch.

  def open(self, create: bool = True) -> None:
    """Checks the record and every unit, then creates the missing record files (``create``)."""
    self.check_records()
    self.check_units()
    if not create:
      return
    config_json = self.config.to_json_best_effort(indent=1) + "\n"
    data_json = json.dumps(self.data, indent=1) + "\n"
    for name, text in ((DATA_RECORD, data_json), (CONFIG_RECORD, config_json)):
      if not storage.create_once(os.path.join(self.workdir, name), text.encode()):
        self.check_records()  # another launch created it first: it must be the same


def _read_record(path: str, damaged: str):
  try:
    with open(path, "rb") as f:
      return json.loads(f.read().decode())
  except (OSError, ValueError) as e:
    detail = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
    raise LearnjaxError(f"{path} {damaged} ({detail}); it is left as it is: give another "
                        "--workdir, or move the file away") from None


# Units stored by earlier releases, whose fingerprints do not say everything.

def check_given_predictions(rows, store, given: dict) -> None:
  """Refuses a workdir whose N1 given as predictions was stored from a file that has changed, or
  under the id it had before given N1s dropped the batch size (it would be measured again beside
  the old cells, and both reported)."""
  for job, _ in rows:
    if job.legacy_id and store.has("n1", job.legacy_id):
      raise LearnjaxError(
          f"{store.workdir} stores the given N1 {job.n1.name} as n1/{job.legacy_id}, "
          f"the name this version gives n1/{job.id} (a given N1 has no batch size); its stored "
          f"numbers stay readable by python -m learnjax.report; to measure it with this version, "
          f"use a new --workdir")
  for job, _ in rows:
    if not job.n1.predictions or not store.has("n1", job.id):
      continue
    stored, _ = store.load("n1", job.id, with_arrays=False)
    old, new = stored.get("predictions_sha256"), given[job.n1].sha256
    if old != new:
      raise LearnjaxError(
          f"{job.n1.predictions} is not the file whose predictions {store.workdir} "
          f"measured for N1 {job.id} (sha256 {str(old)[:12]}..., now {new[:12]}...); use a new "
          f"--workdir, or --config.n1.name=NEW_NAME to measure the new file beside the old one")


def check_variant_constructions(rows, store) -> None:
  """Refuses a workdir whose stored units of a variant were computed by another construction of
  it (random_images before its D2 and D3 were noise, say)."""
  for job, cells in rows:
    expected = variants_registry.get(job.variant).construction
    units = [("n1", job.id)] + [("cells", c.id) for c in cells]
    for kind, unit in units:
      if not store.has(kind, unit):
        continue
      stored, _ = store.load(kind, unit, with_arrays=False)
      found = stored.get("variant_construction", LEGACY_CONSTRUCTION)
      if found != expected:
        raise LearnjaxError(
            f"{store.workdir} holds {kind} {unit} computed by construction {found!r} "
            f"of {job.variant}, which is now {expected!r} (docs/protocol.md section 2); use a "
            f"new --workdir, or delete {store.workdir}/{kind}/{unit} to recompute it")
