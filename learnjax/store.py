"""Results on disk: one folder per finished unit of work, written atomically.

Layout of a workdir::

  config.json                 the resolved config of the first launch, created once (learnjax.guard)
  plan.json                   the ids of every N1 and cell the last launch planned
  data.json                   hashes of the data the results were computed on (see data/fingerprint)
  n1/<n1_id>/fingerprint.json the fields that determined that N1 (learnjax.guard), written first
  n1/<n1_id>/result.json      a trained N1 (all seeds): its numbers, the library versions ...
  n1/<n1_id>/arrays.npz       ... and its predictions on D2 and D3, and its history
  cells/<cell_id>/result.json one learnability measurement (all seeds) ...
  cells/<cell_id>/arrays.npz  ... with N1's and N2's predictions on D3
  results.json                every finished cell's result.json, gathered
  plugins.json                the plugins the launches imported (learnjax.plugins)
  checkpoints/<kind>/<id>/    in-flight training state of an unfinished unit (orbax), with the
                              fingerprint.json of the unit it belongs to, written before it
  locks/<n1_id>.lock          held by the process working on that N1 row
  attempts/<kind>/<id>.json   the last attempt at an unfinished unit that the machine stopped (out
                              of memory, a failed write, a lost device): not a result, retried by
                              the next launch (learnjax.failures)

Every file is written whole or not at all (:mod:`learnjax.storage`); result.json is written
last, so its presence marks the unit as finished.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil

import numpy as np

from learnjax import guard, provenance
from learnjax.errors import LearnjaxError
from learnjax.storage import atomic_write_bytes, atomic_write_json, atomic_write_npz, read_json, read_npz


class Store:
  """The results of one workdir."""

  def __init__(self, workdir: str):
    self.workdir = workdir
    try:
      os.makedirs(workdir, exist_ok=True)
    except OSError as e:
      raise LearnjaxError(f"cannot create --workdir {workdir}: {e.strerror}") from None

  def _unit(self, kind: str, unit_id: str) -> str:
    return os.path.join(self.workdir, kind, unit_id)

  def has(self, kind: str, unit_id: str) -> bool:
    return os.path.exists(os.path.join(self._unit(kind, unit_id), "result.json"))

  def save(self, kind: str, unit_id: str, result: dict, arrays: dict[str, np.ndarray],
           fingerprint: dict | None = None) -> None:
    """Stores a finished unit (with the versions that computed it, :mod:`learnjax.provenance`,
    and ``fingerprint``, the fields that determined it: :mod:`learnjax.guard`) and drops its
    in-flight checkpoints."""
    folder = self._unit(kind, unit_id)
    result = {**result, "versions": result.get("versions") or provenance.versions()}
    if fingerprint is not None:
      guard.write_fingerprint(folder, fingerprint)
    atomic_write_npz(os.path.join(folder, "arrays.npz"), arrays)
    atomic_write_json(os.path.join(folder, "result.json"), result)
    shutil.rmtree(self.checkpoint_dir(kind, unit_id), ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
      os.remove(self._attempt_path(kind, unit_id))

  # Attempts: what the machine stopped (learnjax.failures). Never a result.

  def _attempt_path(self, kind: str, unit_id: str) -> str:
    return os.path.join(self.workdir, "attempts", kind, unit_id + ".json")

  def record_attempt(self, kind: str, unit_id: str, record: dict) -> bool:
    """Records the machine failure of an unfinished unit (``record`` holds ``failure``, its
    kind, and ``error``); whether it could be written (a full disk may refuse it too)."""
    path = self._attempt_path(kind, unit_id)
    previous = self.attempt(kind, unit_id) or {}
    record = {**record, "attempts": int(previous.get("attempts", 0)) + 1,
              "host": os.uname().nodename}
    try:
      atomic_write_json(path, record)
      return True
    except OSError:
      return False

  def attempt(self, kind: str, unit_id: str) -> dict | None:
    """The recorded machine failure of an unfinished unit, or None."""
    path = self._attempt_path(kind, unit_id)
    try:
      with open(path) as f:
        record = json.load(f)
    except (OSError, ValueError):
      return None
    return record if isinstance(record, dict) and not self.has(kind, unit_id) else None

  def attempts(self, kind: str = "cells") -> list[dict]:
    """The recorded machine failures of every unfinished unit of a kind, sorted by id."""
    root = os.path.join(self.workdir, "attempts", kind)
    names = sorted(n[:-len(".json")] for n in os.listdir(root)
                   if n.endswith(".json") and not n.startswith(".tmp-")) \
        if os.path.isdir(root) else []
    return [a for a in (self.attempt(kind, n) for n in names) if a is not None]

  def release_out_of_memory_cells(self) -> list[str]:
    """Moves the cells an older learnjax stored as results with status 'out_of_memory' (a
    machine failure, not a result) to attempts/, so that this launch trains them; their ids."""
    root = os.path.join(self.workdir, "cells")
    moved = []
    for unit_id in sorted(os.listdir(root)) if os.path.isdir(root) else []:
      folder = os.path.join(root, unit_id)
      try:
        with open(os.path.join(folder, "result.json")) as f:
          result = json.load(f)
      except (OSError, ValueError):
        continue
      if not isinstance(result, dict) or result.get("status") != "out_of_memory":
        continue
      atomic_write_json(self._attempt_path("cells", unit_id),
                        {**result, "failure": "out_of_memory", "attempts": 1,
                         "stored_as_result_by": result.get("versions", {}).get("learnjax")})
      gone = os.path.join(root, f".tmp-released-{unit_id}-{os.getpid()}")
      try:
        os.rename(folder, gone)   # atomic: a concurrent launch sees it stored or not at all
      except FileNotFoundError:
        continue
      shutil.rmtree(gone, ignore_errors=True)
      moved.append(unit_id)
    return moved

  def load(self, kind: str, unit_id: str, with_arrays: bool = True):
    folder = self._unit(kind, unit_id)
    result = read_json(os.path.join(folder, "result.json"),
                       hint=f"delete {folder} to recompute that result")
    key = "cell" if kind == "cells" else kind
    if not isinstance(result, dict) or result.get(key) != unit_id:
      raise LearnjaxError(f"{folder}/result.json is not the learnjax result of {kind} {unit_id} "
                          f"(no matching '{key}' field); delete {folder} to recompute that result")
    arrays = read_npz(os.path.join(folder, "arrays.npz")) if with_arrays else None
    return result, arrays

  def finished(self, kind: str = "cells") -> list[dict]:
    """Every finished unit's result.json of a kind, sorted by id."""
    root = os.path.join(self.workdir, kind)
    if not os.path.isdir(root):
      return []
    return [self.load(kind, unit_id, with_arrays=False)[0] for unit_id in sorted(os.listdir(root))
            if self.has(kind, unit_id)]

  @contextlib.contextmanager
  def claim(self, unit_id: str):
    """Yields True if this process holds ``unit_id``'s lock, False if another process does.

    The lock is an ``flock`` on ``locks/<unit_id>.lock``: the operating system releases it when
    its process ends, however it ends, so a killed worker never leaves a unit locked. File systems
    without ``flock`` (some NFS and Lustre mounts) get a POSIX record lock (``lockf``, which NFS
    forwards to its lock manager) instead; with neither, a LearnjaxError says what to do.
    """
    folder = os.path.join(self.workdir, "locks")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, unit_id + ".lock")
    with open(path, "a") as f:
      lock = _lock(f, path)
      if lock is None:
        yield False
        return
      try:
        yield True
      finally:
        lock(f, fcntl.LOCK_UN)

  def checkpoint_dir(self, kind: str, unit_id: str) -> str:
    return os.path.join(self.workdir, "checkpoints", kind, unit_id)

  def write_config(self, config_json: str) -> None:
    atomic_write_bytes(os.path.join(self.workdir, "config.json"), config_json.encode())

  def write_summary(self, order: list[str] = ()) -> str:
    """Gathers every finished cell into results.json, those named in ``order`` first, in order."""
    path = os.path.join(self.workdir, "results.json")
    atomic_write_json(path, {"cells": self.summary_cells(order)})
    return path

  def summary_cells(self, order: list[str] = ()) -> list[dict]:
    """Every finished cell's result, each with every metric its stored arrays allow (a cell
    stored before a metric existed gains it, as a fresh one has it), in ``order`` first."""
    rank = {cell_id: i for i, cell_id in enumerate(order)}
    cells = sorted(self.finished("cells"), key=lambda r: (rank.get(r["cell"], len(rank)), r["cell"]))
    return [self._completed(c) for c in cells]

  def _completed(self, cell: dict) -> dict:
    from learnjax import metrics
    if cell.get("status") not in ("ok", "diverged"):
      return cell
    missing = set(metrics.names()) - set(cell)
    if not missing:
      return cell
    key = (cell["cell"], json.dumps(cell, sort_keys=True, default=str))
    cache = self.__dict__.setdefault("_completed_cache", {})
    if key not in cache:
      try:
        arrays = read_npz(os.path.join(self._unit("cells", cell["cell"]), "arrays.npz"))
      except LearnjaxError:
        return cell   # arrays unreadable: its stored numbers only
      cache[key] = metrics.complete(cell, arrays)[0]
    return cache[key]

def _lock(f, path: str):
  """Locks ``f`` without waiting: the function that unlocks it, or None if another holds it."""
  failures = []
  for lock in (fcntl.flock, fcntl.lockf):
    try:
      lock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
      return lock
    except BlockingIOError:
      return None
    except OSError as e:
      if e.errno in (errno.EACCES, errno.EAGAIN):  # lockf's answer when another process holds it
        return None
      failures.append(f"{lock.__name__}: {e.strerror or e}")
  raise LearnjaxError(
      f"cannot lock {path}: this file system supports neither flock nor lockf "
      f"({'; '.join(failures)}); put the workdir on a file system with locks (a local disk, or "
      "mount NFS with locking / Lustre with -o flock)")
