"""An experiment as a grid of cells, each finished cell stored, finished work never redone.

The grid (:mod:`learnjax.grid`) is data variant x N1 model x N1 batch size x N2 model.
N1 is trained once per (variant, N1 model, N1 batch size) over all seeds, stored, and reused by
every N2 of that row: a T2-style grid of 7 N1 x 7 N2 trains 7 N1s, not 49.

A restarted experiment skips every stored N1 and cell. ``num_tasks`` processes (or machines) can
share one experiment: task ``i`` takes the N1 rows ``i, i + num_tasks, ...`` with all their cells,
so no N1 is trained twice, and they may write into one shared workdir.
"""

from __future__ import annotations

import contextlib
import os
import time

import numpy as np

from learnjax import (checkpoint, engine, failures, fields, guard, measurement, metrics, models,
                      plugins, predictions, prequential, training, stored_nets, train_sizes,
                      validation)
from learnjax.data import fingerprint as fingerprint_lib, sources, splits as splits_lib
from learnjax.grid import Cell, ModelChoice, N1Job, plan, snapshot_epochs
from learnjax.models import identity as model_identity
from learnjax.errors import LearnjaxError
from learnjax.failures import Outcome
from learnjax import progress
from learnjax.progress import EpochPrinter
from learnjax import storage
from learnjax.store import Store




PRECISIONS = validation.PRECISIONS


def apply_precision(config) -> None:
  """Sets the process-wide matmul precision that ``train.precision`` asks for."""
  import jax
  name = validation.check_choice("train.precision", config.train.get("precision", "default"))
  jax.config.update("jax_default_matmul_precision", PRECISIONS[name][0])


def train_config(config, batch_size: int) -> engine.TrainConfig:
  """The engine's settings for one batch size (every field checked by validation.check_config)."""
  validation.check_config(config)
  flat = validation.flatten(config)
  return engine.TrainConfig(batch_size=batch_size, **{
      name.rsplit(".", 1)[-1]: flat[name] for name in fields.engine_fields()})


class Experiment:
  """The state shared by the cells of one launch: data, compiled trainers, the store."""

  def __init__(self, config, workdir: str, out=print, pool=None, n1_extras=None):
    """``pool``: the data of ``config.data`` when the caller has loaded it already (the command
    line checks it before JAX is imported); loaded here otherwise. ``n1_extras(job, trainer,
    splits, net)``: called once each N1 is trained, with its variables kept in ``net``; the
    arrays it returns are stored with the N1 (its parameters, for measures of them)."""
    self.n1_extras = n1_extras
    # Every check comes before the workdir is created or anything is compiled or trained.
    self.config = config
    self.plugins = plugins.load(config.get("plugins", ""))   # imported once, before any check
    validation.check_workdir(workdir)
    self.rows = plan(config)
    self.out = progress.tolerant(out)   # a console that cannot show a line never stops the run
    self.pool = sources.load_pool(config.data) if pool is None else pool
    self.splits = splits_lib.make_splits(self.pool, config.data.n1_size,
                                         train_sizes.d2_size(config.data.n2_size),
                                         config.data.test_size)
    self.data_fingerprint = fingerprint_lib.fingerprint(self.pool, self.splits)
    self.store = Store(workdir)
    validation.check_devices(config)
    apply_precision(config)
    self.seed_indices = np.arange(config.seeds)
    self.cell_ids = [c.id for _, cells in self.rows for c in cells]
    self._trainers = {}
    self._identities = {}
    # Build every model once now, so a bad model choice stops the run before any training.
    # N1s given as predictions: read and checked now, before any training.
    part_sizes = {k: len(getattr(self.splits, k)) for k in predictions.PARTS}
    self.given = {job.n1: predictions.load(job.n1.predictions, part_sizes, self.splits.num_classes,
                                           int(config.seeds))
                  for job, _ in self.rows if job.n1.predictions}
    guard.check_given_predictions(self.rows, self.store, self.given)
    self.guard = guard.Workdir(workdir, config, self.data_fingerprint, self._planned_fields())
    self.guard.check_records()
    self.guard.check_units()
    for kind in ("n1", "cells"):   # every finished record readable, before anything trains
      self.store.finished(kind)
    for job, cells in self.rows:
      if not job.n1.predictions:
        self.trainer(job.n1, job.batch_size)
      for cell in cells:
        self.trainer(cell.n2, cell.n2_batch_size)

  def _planned_fields(self) -> dict[str, dict]:
    """The fingerprint fields of every N1 and cell this launch plans ('n1/<id>', 'cells/<id>')."""
    protocol_settings = guard.settings(self.config)
    planned = {}
    for job, cells in self.rows:
      given = job.n1.predictions
      n1 = guard.n1_fields(protocol_settings, self.data_fingerprint, job.variant, job.n1.name,
                           job.batch_size, () if given else snapshot_epochs(self.config),
                           self.given[job.n1].sha256 if given else None,
                           corrupt_fraction=job.corrupt_fraction,
                           construction=job.variant_record["variant_construction"],
                           model_identity=self._identity(job.n1))
      planned[f"n1/{job.id}"] = n1
      for cell in cells:
        planned[f"cells/{cell.id}"] = guard.cell_fields(n1, cell.n2.name, cell.n2_batch_size,
                                                        cell.n1_epoch, cell.n2_size,
                                                        self._identity(cell.n2))
    return planned

  def _identity(self, choice: ModelChoice) -> dict | None:
    """A user's model's parameter shapes and definition digest (None for learnjax's own models
    and for an N1 given as predictions): part of its units' fingerprints."""
    if choice.predictions or models.is_native(choice.model):
      return None
    if choice not in self._identities:
      self._identities[choice] = model_identity.identity(choice.build(self.splits.num_classes),
                                                   self.pool.image_shape)
    return self._identities[choice]

  def _bind(self, kind: str, unit_id: str) -> dict:
    """Before a unit trains: its in-flight state checked and fingerprinted; its fingerprint."""
    label = f"{kind}/{unit_id}"
    self.guard.bind_checkpoint(label, self.store.checkpoint_dir(kind, unit_id))
    return self.guard.planned[label]

  def _load(self, kind: str, unit_id: str, with_arrays: bool = True):
    """A stored unit, once its fingerprint is checked against this launch's."""
    self.guard.check_unit(f"{kind}/{unit_id}", self.store._unit(kind, unit_id), in_flight=False)
    return self.store.load(kind, unit_id, with_arrays)

  def trainer(self, choice: ModelChoice, batch_size: int) -> engine.Trainer:
    key = (choice, batch_size)
    if key not in self._trainers:
      dtype = PRECISIONS[self.config.train.get("precision", "default")][1]
      self._trainers[key] = engine.Trainer(choice.build(self.splits.num_classes, dtype),
                                           train_config(self.config, batch_size))
    return self._trainers[key]

  def _checkpoints(self, kind: str, unit_id: str):
    every = self.config.get("checkpoint_every_epochs", 0)
    if not every:
      return None
    return checkpoint.CheckpointSet(self.store.checkpoint_dir(kind, unit_id), every, out=self.out,
                                    label=f"{'N1' if kind == 'n1' else 'N2'} {unit_id}")

  def _printer(self, label: str, n: int, batch_size: int):
    return EpochPrinter(label, n, self.config.seeds, self.config.train.max_epochs,
                        interval=self.config.progress_seconds)

  def n1(self, job: N1Job) -> training.TrainedNet:
    if self.store.has("n1", job.id):
      return stored_nets.net_from_store(*self._load("n1", job.id), prefix="n1")
    if job.n1.predictions:
      return self._given_n1(job)
    fingerprint = self._bind("n1", job.id)
    self.out(f"N1 {job.id}: training {job.n1.name} on D1 ({job.variant_id}), "
             f"{len(self.splits.d1)} examples, {self.config.seeds} seeds")
    net = training.train_n1(self.splits, self.trainer(job.n1, job.batch_size), job.variant,
                            self.config.seed, self.seed_indices,
                            seed_layout=self.config.train.seed_layout,
                            on_epoch=self._printer(f"N1 {job.n1.name} {job.variant_id}",
                                                   len(self.splits.d1), job.batch_size),
                            snapshot_epochs=snapshot_epochs(self.config),
                            snapshot_cache=stored_nets.SnapshotCache(os.path.join(
                                self.store.checkpoint_dir("n1", job.id), "snapshots")),
                            checkpoints=self._checkpoints("n1", job.id),
                            devices=self.config.train.get("devices", 0),
                            concurrent_seeds=self.config.train.get("concurrent_seeds", 0),
                            corrupt_fraction=job.corrupt_fraction,
                            keep_variables=self.n1_extras is not None)
    size = models.size(self.trainer(job.n1, job.batch_size).model, self.pool.image_shape)
    extras = {}
    if self.n1_extras is not None:
      extras = self.n1_extras(job, self.trainer(job.n1, job.batch_size), self.splits, net)
      net.variables = None
    self._save_n1(job, net, {"params": size.params, "param_tensors": size.tensors,
                             "snapshot_epochs": sorted(net.snapshots)}, fingerprint, extras)
    return net

  def _given_n1(self, job: N1Job) -> training.TrainedNet:
    """The N1 record of an N1 given as predictions: its labels for every seed, no training."""
    given = self.given[job.n1]
    self.out(f"N1 {job.id}: given as predictions ({job.n1.predictions})")
    net = stored_nets.given_net(given, self.config.seeds, self.splits.d1.y)
    self._save_n1(job, net, {
        "snapshot_epochs": [], "source": predictions.MODEL,
        "predictions_file": job.n1.predictions, "predictions_sha256": given.sha256,
        "predictions_d1": given.d1 is not None, "predictions_per_seed": given.per_seed},
        self.guard.planned[f"n1/{job.id}"])
    return net

  def _save_n1(self, job: N1Job, net: training.TrainedNet, own: dict, fingerprint: dict,
               extras: dict | None = None) -> None:
    """Stores an N1, trained or given: the one N1 record, with ``own`` (what only its kind has)."""
    names = getattr(self.pool, "class_names", None)
    result = {"n1": job.id, "dataset": self.pool.name, **job.variant_record,
              "model": job.n1.name, "batch_size": job.batch_size, "seeds": int(self.config.seeds),
              "num_classes": self.splits.num_classes, "d1": len(self.splits.d1),
              "d2": len(self.splits.d2), "d3": len(self.splits.d3), **own,
              **stored_nets.net_summary(net), **({"class_names": list(names)} if names else {})}
    arrays = {**stored_nets.net_arrays("n1", net), "y_d2": self.splits.d2.y, "y_d3": self.splits.d3.y,
              **(extras or {})}
    self.store.save("n1", job.id, result, arrays, fingerprint=fingerprint)

  def cell(self, cell: Cell, n1: training.TrainedNet) -> dict:
    job = cell.n1_job
    if cell.n1_epoch is not None and cell.n1_epoch not in n1.snapshots:
      raise LearnjaxError(
          f"the stored N1 {job.id} kept no snapshot after epoch {cell.n1_epoch} (it has "
          f"{sorted(n1.snapshots) or 'none'}); delete {self.store.workdir}/n1/{job.id} to "
          "retrain it with the new n1.snapshot_epochs")
    when = "" if cell.n1_epoch is None else f" after epoch {cell.n1_epoch}"
    first = "" if cell.n2_size is None else f" (its first {cell.n2_size} examples)"
    self.out(f"N2 {cell.id}: training {cell.n2.name} on N1's labels of D2{first}{when}")
    fingerprint = self._bind("cells", cell.id)
    n2, arrays = measurement.measure(
        self.splits, self.trainer(cell.n2, cell.n2_batch_size),
        measurement.n1_labels(n1, cell.n1_epoch), self.config.seed, self.seed_indices,
        variant=job.variant, n2_size=cell.n2_size, seed_layout=self.config.train.seed_layout,
        on_epoch=self._printer(f"N2 {cell.n2.name} <- {job.n1.name} {job.variant_id}",
                               cell.n2_size or len(self.splits.d2), cell.n2_batch_size),
        code_on_epoch=self._printer(
            f"code model {cell.n2.name} <- {job.n1.name} {job.variant_id}",
            prequential.fitted_size(cell.n2_size or 1), cell.n2_batch_size),
        checkpoints=self._checkpoints("cells", cell.id),
        devices=self.config.train.get("devices", 0),
        concurrent_seeds=self.config.train.get("concurrent_seeds", 0))
    n1_result, _ = self._load("n1", job.id, with_arrays=False)
    result = {
        **self._cell_record(cell), "d1": len(self.splits.d1), "d2": len(self.splits.d2),
        "d3": len(self.splits.d3), "num_classes": self.splits.num_classes,
        **({"n1_params": n1_result["params"], "n1_param_tensors": n1_result["param_tensors"]}
           if "params" in n1_result else {}),
        **measurement.metric_record(n1_result.get("source"),
                                    bool(n1_result.get("predictions_per_seed"))),
        "n1": stored_nets.net_summary(n1), "n2": stored_nets.net_summary(n2),
        **({"code_model": n2.code.record()} if n2.code is not None else {}),
        "status": "diverged" if (n1.diverged.any() or n2.diverged.any()) else "ok",
    }
    result.update(metrics.compute(arrays, result))
    self.store.save("cells", cell.id, result, arrays, fingerprint=fingerprint)
    return result

  def _cell_record(self, cell: Cell) -> dict:
    """The fields naming a cell, of its stored record whether it was measured or failed."""
    job = cell.n1_job
    return {"cell": cell.id, "dataset": self.pool.name, **job.variant_record,
            "n1_model": job.n1.name, "n1_batch_size": job.batch_size, "n2_model": cell.n2.name,
            "n2_batch_size": cell.n2_batch_size, "n1_epoch": cell.n1_epoch,
            **({"n2_size": cell.n2_size} if cell.n2_size is not None else {}),
            "seeds": int(self.config.seeds)}

  def _record_failure(self, kind: str, unit_id: str, failure: str, error: BaseException,
                      cell: Cell | None = None, job: N1Job | None = None) -> None:
    """Records a machine failure of an unfinished unit as an attempt (never as a result)."""
    if cell is not None:
      record = self._cell_record(cell)
    else:
      record = {"n1": unit_id, "dataset": self.pool.name, **job.variant_record,
                "n1_model": job.n1.name, "n1_batch_size": job.batch_size,
                "seeds": int(self.config.seeds)}
    record.update({"failure": failure, "status": failure, "error": failures.message(failure, error),
                   "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    self.store.record_attempt(kind, unit_id, record)

  def _machine_failure(self, e: BaseException, label: str, units: list[tuple[str, str, Cell]],
                       job: N1Job) -> str:
    """Records ``units`` as attempts where the machine stopped them; re-raises anything else,
    and, after recording, a failure that ends the launch (a failed write, a lost device)."""
    failure = failures.classify(e)
    if failure is None:
      raise e
    for kind, unit_id, cell in units:
      self._record_failure(kind, unit_id, failure, e, cell=cell, job=job)
    cells = sum(kind == "cells" for kind, _, _ in units)
    text = failures.message(failure, e)
    self.failed.append((label, failure, text, cells))
    retry = "the next launch retries " + ("them" if cells != 1 else "it")
    self.out(f"{label}: {text}; {cells} cell{'s' if cells != 1 else ''} recorded as an attempt, "
             f"not a result: {retry}")
    if failure != failures.OUT_OF_MEMORY:   # the disk or device would fail the next unit too
      raise failures.MachineFailure(failure, f"{label}: {text}") from e
    return failure

  def _run_row(self, job: N1Job, todo: list[Cell], done: int, total: int, start: float) -> int:
    """Trains (or loads) one N1 and its unfinished cells; returns how many cells it finished."""
    todo = [c for c in todo if not self.store.has("cells", c.id)]  # another worker may have
    if not todo and self.store.has("n1", job.id):
      return 0
    finished = 0
    try:
      n1 = self.n1(job)
    except Exception as e:  # noqa: BLE001  the machine's failures recorded, the sweep goes on
      self._machine_failure(e, f"N1 {job.id}", [("n1", job.id, None)]
                            + [("cells", c.id, c) for c in todo], job)
      return 0
    for cell in todo:
      try:
        result = self.cell(cell, n1)
      except Exception as e:  # noqa: BLE001
        self._machine_failure(e, f"N2 {cell.id}", [("cells", cell.id, cell)], job)
        continue
      finished += 1
      shown = ", ".join(f"{metrics.REGISTRY[k].title} {metrics.fmt_metric(k, result.get(k))}"
                        for k in metrics.console_names())
      self.out(f"cell {done + finished}/{total} {cell.id}: {shown} "
               f"({time.time() - start:.0f}s so far)")
    return finished

  def _not_retried(self, job: N1Job, cells: list[Cell]) -> list[Cell]:
    """The cells that ran out of memory before, left as they are (``retry_out_of_memory=False``)."""
    n1_failed = (self.store.attempt("n1", job.id) or {}).get("failure") == failures.OUT_OF_MEMORY
    return [c for c in cells if not self.store.has("cells", c.id) and (
        n1_failed and not self.store.has("n1", job.id)
        or (self.store.attempt("cells", c.id) or {}).get("failure") == failures.OUT_OF_MEMORY)]

  def _announce_retries(self, mine, retry_out_of_memory: bool) -> None:
    released = self.store.release_out_of_memory_cells()
    if released:
      self.out(f"{len(released)} cell{'s' if len(released) != 1 else ''} stored as 'out of "
               "memory' by an earlier learnjax: a machine failure, not a result; moved to "
               f"{self.store.workdir}/attempts/ and "
               + ("trained again" if retry_out_of_memory else "left untrained "
                  "(--noretry_out_of_memory)"))
    counts = {}
    for job, cells in mine:
      for c in cells:
        attempt = None if self.store.has("cells", c.id) else self.store.attempt("cells", c.id)
        if attempt and c.id not in released:
          counts[attempt.get("failure", "?")] = counts.get(attempt.get("failure", "?"), 0) + 1
    if counts:
      what = ", ".join(f"{n} {failures.DESCRIPTIONS.get(k, k)}" for k, n in sorted(counts.items()))
      oom = counts.get(failures.OUT_OF_MEMORY, 0)
      note = ("retried" if retry_out_of_memory or not oom else
              "retried but those out of memory (--noretry_out_of_memory)")
      self.out(f"cells the machine stopped in an earlier launch ({what}): {note}")

  def _wait_and_run(self, job: N1Job, cells: list[Cell], done: int, total: int,
                    start: float) -> int:
    """Waits for the process training N1 row ``job`` to release it, then trains the cells of it
    that are still unfinished (this launch's own N2s, say); returns how many it finished."""
    waited_from, shown = time.time(), -float("inf")
    every = max(float(self.config.get("progress_seconds", 5.0)), self.WAIT_LINE_SECONDS)
    while True:
      with self.store.claim(job.id) as mine_now:
        if mine_now:
          todo = [c for c in cells if not self.store.has("cells", c.id)]
          return self._run_row(job, todo, done, total, start) if todo else 0
      if checkpoint.stop_requested():
        raise checkpoint.Preempted(f"while waiting for N1 row {job.id}")
      now = time.time()
      if now - shown >= every:
        left = sum(not self.store.has("cells", c.id) for c in cells)
        self.out(f"N1 {job.id}: another process is training this row; waiting for it "
                 f"({now - waited_from:.0f}s so far, {left} of its {len(cells)} cells here "
                 "unfinished)")
        shown = now
      time.sleep(self.WAIT_POLL_SECONDS)

  WAIT_POLL_SECONDS = 2.0     # how often a waiting launch tries the row's lock
  WAIT_LINE_SECONDS = 60.0    # at most one waiting line per this many seconds

  def run(self, task_index: int = 0, num_tasks: int = 1, lock_rows: bool = True,
          wait_for_rows: bool = True, retry_out_of_memory: bool = True) -> list[dict]:
    """Trains this task's rows; each row under its lock (``lock_rows``), so that processes sharing
    the workdir split them. Without locks (a file system without them), each row must have one
    owner by construction: distinct task indices (``--distributed``'s process indices).

    A row another process holds is waited for, once every free row is done, and its cells still
    unfinished are then trained here (``wait_for_rows``); without waiting they are left, listed
    in ``self.rows_elsewhere``. Units the machine stopped (out of memory, a failed write, a lost
    device) are recorded as attempts and listed in ``self.failed``; a cell that ran out of memory
    in an earlier launch is retried unless ``retry_out_of_memory`` is False."""
    if not (isinstance(num_tasks, int) and num_tasks >= 1 and 0 <= task_index < num_tasks):
      raise LearnjaxError(f"task_index must be in 0..num_tasks-1, got {task_index} of {num_tasks}")
    mine = self.rows[task_index::num_tasks]
    self._announce_retries(mine, retry_out_of_memory)
    total = sum(len(cells) for _, cells in mine)
    done = sum(self.store.has("cells", c.id) for _, cells in mine for c in cells)
    if is_n1_only(self.config):
      done_n1 = sum(self.store.has("n1", job.id) for job, _ in mine)
      what = (f"N1 only (n2.model = none): {len(mine)} N1 trainings in this task, "
              f"{done_n1} already done")
    else:
      given = sum(bool(job.n1.predictions) for job, _ in mine)
      n1s = f"{len(mine) - given} N1 trainings" + (f", {given} N1s given as predictions"
                                                    if given else "")
      what = f"{total} cells in this task ({n1s}), {done} already done"
    self.out(f"{what}; data {self.pool.name}: |D1|={len(self.splits.d1)} |D2|={len(self.splits.d2)} "
             f"|D3|={len(self.splits.d3)}, {self.config.seeds} seeds")
    start = time.time()
    held_elsewhere = []
    self.failed, self.rows_elsewhere, self.not_retried = [], [], []
    for job, cells in mine:
      if not retry_out_of_memory:
        skipped = self._not_retried(job, cells)
        self.not_retried += [c.id for c in skipped]
        if skipped and len(skipped) == len(cells) and not self.store.has("n1", job.id):
          continue
        cells = [c for c in cells if c not in skipped]
      todo = [c for c in cells if not self.store.has("cells", c.id)]
      if not todo and (cells or self.store.has("n1", job.id)):
        continue
      with self.store.claim(job.id) if lock_rows else contextlib.nullcontext(True) as mine_now:
        if not mine_now:
          held_elsewhere.append((job, cells))
          continue
        done += self._run_row(job, todo, done, total, start)
      self.store.write_summary(self.cell_ids)
    for job, cells in held_elsewhere:
      if wait_for_rows:
        done += self._wait_and_run(job, cells, done, total, start)
        self.store.write_summary(self.cell_ids)
      elif any(not self.store.has("cells", c.id) for c in cells) or not cells and \
          not self.store.has("n1", job.id):
        self.rows_elsewhere.append(job.id)
    if self.rows_elsewhere:
      self.out(f"N1 rows left to the other process training them: "
               f"{', '.join(self.rows_elsewhere)}; their cells are not trained by this launch")
    self.store.write_summary(self.cell_ids)
    by_id = {r["cell"]: r for r in self.store.summary_cells(self.cell_ids)}
    return [by_id[c.id] for _, cells in mine for c in cells if c.id in by_id]


def is_n1_only(config) -> bool:
  """Whether the experiment trains N1 only (``n2.model = none``): it has no cells."""
  return validation.grid_list(config.n2.model, "n2.model") == ["none"]


def is_out_of_memory(error: BaseException) -> bool:
  """Whether an exception is the accelerator or the host running out of memory (by its cause:
  a failed write is never one, whatever its library calls it; see learnjax.failures)."""
  return failures.is_out_of_memory(error)


def check_workdir_config(store: Store, config) -> None:
  """Refuses a workdir launched with other protocol settings (its config.json, see guard)."""
  guard.Workdir(store.workdir, config).check_records()


def launch(config, workdir: str, task_index: int = 0, num_tasks: int = 1, out=print,
           distributed: bool = False, pool=None, wait_for_rows: bool = True,
           retry_out_of_memory: bool = True, n1_extras=None) -> Outcome:
  """Runs (or resumes) the experiment of ``config`` in ``workdir``; what it did.

  The workdir's record of the settings and data is created (or matched) before anything trains.
  ``distributed``: the processes of one ``jax.distributed`` job, task = process index; process 0
  creates the record while the others wait, and the rows go unlocked (each has one owner), so a
  shared file system without locks (gcsfuse) serves. ``pool``: the data of ``config.data``, if
  the caller has loaded it already. ``wait_for_rows`` and ``retry_out_of_memory``: see
  :meth:`Experiment.run`. A failed write or a lost device raises
  :class:`learnjax.failures.MachineFailure`; memory running out does not stop the launch.
  ``n1_extras``: see :class:`Experiment`.
  """
  experiment = Experiment(config, workdir, out=out, pool=pool, n1_extras=n1_extras)
  # Units stored before variant constructions were fingerprinted.
  guard.check_variant_constructions(experiment.rows, experiment.store)
  if distributed:
    import jax
    from jax.experimental import multihost_utils
    if jax.process_index() == 0:
      experiment.guard.open()
    multihost_utils.sync_global_devices("learnjax: the workdir's record")
    if jax.process_index() != 0:
      experiment.guard.open()
  else:
    experiment.guard.open()
  plugins.record(workdir, experiment.plugins)   # the report imports them again
  storage.atomic_write_json(os.path.join(workdir, "plan.json"), {
      "n1": [job.id for job, _ in experiment.rows], "cells": experiment.cell_ids})
  cells = experiment.run(task_index, num_tasks, lock_rows=not distributed,
                         wait_for_rows=wait_for_rows, retry_out_of_memory=retry_out_of_memory)
  mine = experiment.rows[task_index::num_tasks]
  return Outcome(cells, experiment.failed, experiment.rows_elsewhere, experiment.not_retried,
                 [c.id for _, row in mine for c in row])


def train_and_evaluate(config, workdir: str, task_index: int = 0, num_tasks: int = 1,
                       out=print, distributed: bool = False, pool=None, **kwargs) -> list[dict]:
  """Runs (or resumes) the experiment of ``config`` in ``workdir``; returns this task's finished
  cells (see :func:`launch`, which also says what was left unfinished and why)."""
  return launch(config, workdir, task_index, num_tasks, out=out, distributed=distributed,
                pool=pool, **kwargs).cells
