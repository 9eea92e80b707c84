"""In-flight training state on disk (orbax), and clean stops on SIGTERM.

A training of one seed group (see :func:`learnjax.execution.train_seeds`) saves its whole state,
with every seed's parameters, BatchNorm statistics, optimiser and plateau state, data-order key,
epoch and stop flags, and its per-epoch history, every ``every_epochs`` epochs, when it finishes,
and when a stop is requested (every group being trained, also in threads, saves its own). A
restarted run restores the latest one and continues; the data order of an epoch derives from
(order key, epoch), so a resumed training repeats exactly what the uninterrupted one would have
done (bitwise on the CPU).

orbax writes each checkpoint to a temporary folder and renames it when complete, so a process
killed mid-save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import re
import shutil
import signal
import threading

import jax
import numpy as np

from learnjax import failures
from learnjax.errors import LearnjaxError

_stop = threading.Event()


class Preempted(Exception):
  """Training stopped at an epoch boundary because a stop was requested; its state is saved."""


def request_stop(signum=None, frame=None):
  """The first SIGTERM asks for a stop at the end of the epoch; a second one ends the process."""
  del frame
  if _stop.is_set() and signum is not None:
    signal.signal(signum, signal.SIG_DFL)
    signal.raise_signal(signum)
  _stop.set()


def stop_requested() -> bool:
  return _stop.is_set()


def clear_stop_request() -> None:
  """Forgets a requested stop, for a process that goes on training after handling it."""
  _stop.clear()


def install_signal_handlers() -> None:
  """SIGTERM (preemption, `scancel`, `kill`) asks running trainings to save and stop."""
  signal.signal(signal.SIGTERM, request_stop)


_GROUP = re.compile(r"^seeds(\d+)-(\d+)$")


class CheckpointSet:
  """The checkpoints of one unit's trainings: a folder ``seeds{first}-{last}`` per seed group.

  The seed groups follow ``train.seed_layout`` and ``train.devices`` (all seeds vmapped in one
  group, or one seed per device at a time). A training interrupted under one grouping is resumed
  under that grouping whatever these settings say now (:meth:`resume_groups`), so that changing
  them never restarts it from epoch 1, nor deletes its checkpoint; they apply to the seeds whose
  training begins afresh.
  """

  def __init__(self, root: str, every_epochs: int, out=None, label: str = ""):
    self.root = root
    self.every_epochs = every_epochs
    self.out = out
    self.label = label

  def __call__(self, seeds) -> "TrainingCheckpoint":
    return TrainingCheckpoint(os.path.join(self.root, f"seeds{seeds[0]}-{seeds[-1]}"),
                              self.every_epochs)

  def stored_groups(self, num_seeds: int) -> list[tuple[np.ndarray, int]]:
    """(seed positions, latest epoch) of every seed group with a saved checkpoint."""
    found = []
    for name in sorted(os.listdir(self.root)) if os.path.isdir(self.root) else []:
      match = _GROUP.match(name)
      if not match:
        continue
      first, last = int(match.group(1)), int(match.group(2))
      folder = os.path.join(self.root, name)
      steps = [int(n) for n in os.listdir(folder) if n.isdigit()] if os.path.isdir(folder) else []
      if steps and first <= last < num_seeds:
        found.append((np.arange(first, last + 1), max(steps)))
    return found

  def resume_groups(self, groups: list[np.ndarray], num_seeds: int) -> list[np.ndarray]:
    """``groups`` (the seed groups the settings ask for), with every group that holds a saved
    checkpoint kept as it was saved; the seeds of no such group grouped as asked."""
    planned = {tuple(g.tolist()) for g in groups}
    kept, covered = [], set()
    # The furthest trained first, where two interrupted launches left overlapping groups.
    for group, _ in sorted(self.stored_groups(num_seeds), key=lambda item: -item[1]):
      if covered.isdisjoint(group.tolist()):
        kept.append(group)
        covered.update(group.tolist())
    if all(tuple(g.tolist()) in planned for g in kept):
      return groups
    rest = []
    for group in groups:   # the planned groups less the kept seeds, in consecutive runs
      left = [int(s) for s in group if int(s) not in covered]
      runs = np.split(np.asarray(left, int), np.flatnonzero(np.diff(left) != 1) + 1) if left else []
      rest += [r for r in runs if len(r)]
    if self.out is not None:
      names = ", ".join(f"seeds {g[0]}-{g[-1]}" for g in kept)
      self.out(f"{self.label}: resuming its interrupted training ({names}) as it was grouped "
               "when it began; train.seed_layout and train.devices apply to seeds begun afresh "
               "(the checkpoint is kept)")
    return sorted(kept + rest, key=lambda g: int(g[0]))


def _stored_fields(state) -> dict:
  """A train state as a checkpoint holds it: its fields by name, less those the model does not
  use (None: no collections of its own, no random numbers), so a plain model's checkpoint holds
  the fields it always held and resumes across learnjax releases."""
  return {f.name: getattr(state, f.name) for f in dataclasses.fields(state)
          if getattr(state, f.name) is not None}


class TrainingCheckpoint:
  """Checkpoints of one seed group's training in ``directory``."""

  def __init__(self, directory: str, every_epochs: int, keep: int = 2):
    import orbax.checkpoint as ocp
    self._ocp = ocp
    self.directory = os.path.abspath(directory)
    self.every_epochs = every_epochs
    self._manager = None
    self._keep = keep

  @property
  def manager(self):
    if self._manager is None:
      ocp = self._ocp
      # Each process checkpoints its own trainings: no cross-process barriers, itself primary.
      me = jax.process_index()
      os.makedirs(self.directory, exist_ok=True)
      options = ocp.CheckpointManagerOptions(
          max_to_keep=self._keep, create=False, enable_async_checkpointing=False,
          cleanup_tmp_directories=True,
          multiprocessing_options=ocp.options.MultiprocessingOptions(
              primary_host=me, active_processes={me}))
      self._manager = ocp.CheckpointManager(self.directory, options=options)
    return self._manager

  def restore(self, abstract_state):
    """(state, history) of the latest checkpoint, or None if there is none."""
    if not os.path.isdir(self.directory):
      return None
    step = self.manager.latest_step()
    if step is None:
      return None
    ocp = self._ocp
    path = os.path.join(self.directory, str(step))
    try:
      # Saved and restored as host (numpy) arrays: process-local, whatever the devices.
      target = jax.tree.map(lambda a: np.zeros(a.shape, a.dtype), _stored_fields(abstract_state))
      restored = self.manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(target),
          history=ocp.args.StandardRestore()))
      state = abstract_state.replace(**restored["state"])
      # Shapes must match the run being resumed (same model, seeds and data).
      for got, want in zip(jax.tree.leaves(state), jax.tree.leaves(abstract_state)):
        if got.shape != want.shape or got.dtype != want.dtype:
          raise ValueError(f"array {got.shape} {got.dtype} where {want.shape} {want.dtype} "
                           "was expected")
    except Exception as e:  # noqa: BLE001  orbax raises many types for damaged files
      raise LearnjaxError(
          f"checkpoint {path} is damaged or belongs to a different run ({type(e).__name__}: "
          f"{str(e).splitlines()[0][:300]}); delete {self.directory} to restart that training "
          "from scratch") from None
    history = {k: [np.asarray(col) for col in np.asarray(v).T]
               for k, v in restored["history"].items()}
    return state, history

  def save(self, state, history: dict) -> None:
    ocp = self._ocp
    epoch = int(np.asarray(state.epoch).max())
    if self.manager.latest_step() == epoch:
      return
    stacked = {k: (np.stack(v, axis=1) if v else np.zeros((len(state.epoch), 0), np.float32))
               for k, v in history.items()}
    host_state = jax.device_get(_stored_fields(state))
    # A failed write is a StorageError whatever orbax calls it (a full disk reads as
    # RESOURCE_EXHAUSTED there): never mistaken for the accelerator's memory.
    try:
      with failures.writing(os.path.join(self.directory, str(epoch))):
        self.manager.save(epoch, args=ocp.args.Composite(state=ocp.args.StandardSave(host_state),
                                                         history=ocp.args.StandardSave(stacked)),
                          force=True)
        self.manager.wait_until_finished()
    except BaseException:
      # The unfinished write's temporary folder goes, freeing what it took of a full disk; the
      # previous checkpoint stays whole.
      for leftover in glob.glob(os.path.join(glob.escape(self.directory),
                                             f"{epoch}.orbax-checkpoint-tmp*")):
        shutil.rmtree(leftover, ignore_errors=True)
      raise



PLAN_FILE = "seed_layout.json"


def read_plan(root: str) -> dict | None:
  """The seed layout plan recorded beside a training's checkpoints (``root``), if any."""
  try:
    with open(os.path.join(root, PLAN_FILE)) as f:
      record = json.load(f)
    return record if isinstance(record, dict) and isinstance(record.get("plan"), dict) else None
  except (OSError, ValueError):
    return None


def write_plan(root: str, record: dict) -> None:
  """Records the plan a training runs with beside its checkpoints, so a resumed training keeps
  it (written atomically; left as it is when it already holds this plan)."""
  old = read_plan(root)
  if old is not None and old.get("plan") == record.get("plan"):
    return
  os.makedirs(root, exist_ok=True)
  tmp = os.path.join(root, f".{PLAN_FILE}.{os.getpid()}.{threading.get_ident()}")
  with open(tmp, "w") as f:
    json.dump(record, f, indent=1, default=str)
  os.replace(tmp, os.path.join(root, PLAN_FILE))
