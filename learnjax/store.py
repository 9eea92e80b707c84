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

Every file is written whole or not at all (:mod:`learnjax.storage`); result.json is written
last, so its presence marks the unit as finished.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
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

  def results(self, kind: str = "cells") -> list[dict]:
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
    rank = {cell_id: i for i, cell_id in enumerate(order)}
    cells = sorted(self.results("cells"), key=lambda r: (rank.get(r["cell"], len(rank)), r["cell"]))
    path = os.path.join(self.workdir, "results.json")
    atomic_write_json(path, {"cells": cells})
    return path


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
