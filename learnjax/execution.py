"""How a model's seeds share the machine: the execution plan around :class:`engine.Trainer`.

:func:`train_seeds` trains all seeds vmapped in one group, or one seed at a time per device
(``seed_layout``; ``auto``: measured on this machine, :mod:`learnjax.layouts`), several such groups at once in threads (``concurrent_seeds``), each group
spread over local devices with ``jax.sharding``, and joins the groups' results along the seed axis.
Each seed's numbers depend only on its own keys and data, whatever the plan.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import os
import threading

import jax
import jax.numpy as jnp
import numpy as np

from learnjax import checkpoint as ckpt
from learnjax import layouts, models, validation
from learnjax.engine import Trainer, TrainResult, choose_loop
from learnjax.errors import LearnjaxError

# On the CPU, conv-free nets with at least this many parameters train faster one seed at a time
# (two at once in threads) than vmapped; small ones train faster vmapped (benchmarks/RESULTS.md,
# "MLP layout").
CPU_SEQUENTIAL_MIN_PARAMS = 50_000

# Seed groups trained at the same time by concurrent_seeds='auto' on a one-device CPU: XLA runs
# part of a small network's step on one core, so two trainings in threads keep both cores busy; a
# third thread is slower again (benchmarks/RESULTS.md, "Threads").
CPU_CONCURRENT_SEEDS = 2


def choose_seed_layout(layout: str, model, x_example) -> str:
  """'vmap' (all seeds in one computation), 'vmap_grouped' (the same without the seed-batched
  convolution) or 'sequential' (one seed at a time, per device): as given, or for ``auto`` the
  static rule, used where no plan is measured (several devices) and timed first otherwise.

  The rule for ``auto``: vmapping a convolution over seeds (each with its own batches) turns it into a grouped
  convolution, which runs slower than the seeds in turn on GPUs; on the CPU, where vmapped
  convolutions run seed by seed inside one program, the seeds in turn two at a time are still
  faster (benchmarks/RESULTS.md). So every conv net and every BatchNorm net trains its seeds in
  turn. On the CPU larger conv-free nets do too, several at once in threads
  (``CPU_SEQUENTIAL_MIN_PARAMS``); everything else is vmapped.
  """
  validation.check_choice("train.seed_layout", layout)
  if layout != "auto":
    return layout
  init = functools.partial(model.init, train=False)
  variables = jax.eval_shape(init, jax.random.PRNGKey(0), x_example)
  if "batch_stats" in variables or models.uses_convolution(model, variables, x_example):
    return "sequential"
  if jax.default_backend() == "cpu":
    params = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(variables["params"]))
    if params >= CPU_SEQUENTIAL_MIN_PARAMS:
      return "sequential"
  return "vmap"


def seed_groups(num_seeds: int, layout: str, num_devices: int,
                explicit_devices: bool = False) -> list[np.ndarray]:
  """The seed groups trained one after another, each spread over ``len(group)`` devices at most.

  vmap: all seeds in one group, over the largest device count that divides them (exactly
  ``num_devices`` when the user asked for it). sequential: one seed per device at a time, so no
  device ever runs a vmapped (grouped) convolution. Groups are runs of consecutive seeds.
  """
  if layout in ("vmap", "vmap_grouped"):
    if explicit_devices and num_seeds % num_devices:
      raise LearnjaxError(f"{num_seeds} seeds cannot be split evenly over {num_devices} devices; "
                          f"use a multiple of {num_devices} seeds or set --config.train.devices")
    return [np.arange(num_seeds)]
  return [np.arange(i, min(i + num_devices, num_seeds)) for i in range(0, num_seeds, num_devices)]


def _devices_for(group_size: int, devices: list) -> list:
  count = max(d for d in range(1, len(devices) + 1) if group_size % d == 0)
  return devices[:count]


def choose_concurrency(concurrent_seeds: int, layout: str, num_groups: int,
                       group_devices: int) -> int:
  """How many seed groups to train at once, each in its own thread.

  0 (auto): ``CPU_CONCURRENT_SEEDS`` for one-seed-at-a-time training on a single CPU device,
  else 1. Results do not depend on it: every group's computation is its own.
  """
  if concurrent_seeds < 0:
    raise LearnjaxError(f"train.concurrent_seeds must be 0 (auto) or positive, "
                        f"got {concurrent_seeds}")
  if concurrent_seeds == 0:
    auto = (jax.default_backend() == "cpu" and layout == "sequential" and group_devices == 1)
    concurrent_seeds = CPU_CONCURRENT_SEEDS if auto else 1
  return max(1, min(concurrent_seeds, num_groups))


def concat_results(results: list[TrainResult]) -> TrainResult:
  """Joins the results of seed groups trained one after another along the seed axis."""
  if len(results) == 1:
    return results[0]
  width = max(r.history["train_error"].shape[1] for r in results)

  def pad(a):
    return np.pad(a, ((0, 0), (0, width - a.shape[1])), constant_values=np.nan)

  cat = lambda name: np.concatenate([getattr(r, name) for r in results])
  return TrainResult(
      variables=jax.tree.map(lambda *a: jnp.concatenate(a), *[r.variables for r in results]),
      epochs=cat("epochs"), train_error=cat("train_error"), learning_rate=cat("learning_rate"),
      diverged=cat("diverged"), diverged_epoch=cat("diverged_epoch"),
      history={k: np.concatenate([pad(r.history[k]) for r in results])
               for k in results[0].history},
      seconds=sum(r.seconds for r in results))


def train_seeds(trainer: Trainer, init_keys, order_keys, x, y, *, per_seed_x: bool = False,
                seed_layout: str = "auto", on_epoch=None, checkpoints=None,
                devices: int = 0, concurrent_seeds: int = 0, log=print) -> TrainResult:
  """Trains one seed per key, all together or one after another as ``seed_layout`` says.

  Either way each seed's numbers depend only on its own keys and data. ``devices``: how many
  local devices to spread seeds over (0: all of them, as many as divide the seed group).
  ``concurrent_seeds``: seed groups trained at once in threads (see :func:`choose_concurrency`).
  ``on_epoch(log, state, seeds)`` also receives the positions of the seeds being trained (calls
  from concurrent groups never overlap) and may return which of them to stop (see
  :meth:`learnjax.engine.Trainer.train`); ``checkpoints(seeds)`` gives the checkpoint of a seed
  group (or None). On a requested stop (SIGTERM) every group being trained saves its checkpoint
  at its next epoch end, and :class:`learnjax.checkpoint.Preempted` is raised. ``log``: where
  the line saying a measured seed layout goes (None: nowhere).
  """
  num_seeds = len(init_keys)
  local = validation.check_device_count(devices)
  local = local[:devices] if devices else local
  validation.check_choice("train.seed_layout", seed_layout)
  plan, record = choose_plan(trainer, init_keys, order_keys, x, y, per_seed_x=per_seed_x,
                             seed_layout=seed_layout, concurrent_seeds=concurrent_seeds,
                             checkpoints=checkpoints, local=local,
                             explicit_devices=bool(devices), log=log)
  groups = _groups(num_seeds, plan.seed_layout, local, bool(devices))
  if hasattr(checkpoints, "resume_groups"):   # an interrupted training keeps its own grouping
    resumed = checkpoints.resume_groups(groups, num_seeds)
    if resumed is not groups:
      groups = resumed
      if len(resumed) == 1 and plan.seed_layout == "sequential":
        plan = dataclasses.replace(plan, seed_layout="vmap", concurrent_seeds=1)
      elif len(resumed) > 1 and plan.seed_layout != "sequential":
        workers = choose_concurrency(concurrent_seeds, "sequential", len(groups),
                                     len(_devices_for(len(groups[0]), local)))
        plan = dataclasses.replace(plan, seed_layout="sequential", concurrent_seeds=workers)
      record = {**record, "plan": plan.as_dict(), "source": f"{record['source']}; resumed as "
                                                            "its checkpoints were grouped"}
  runner = trainer.with_model(layouts.model_for(trainer.model, plan.seed_layout))

  def train_group(seeds, callback):
    group = slice(int(seeds[0]), int(seeds[-1]) + 1)   # consecutive seeds: no index array
    return runner.train(init_keys[group], order_keys[group], x[group] if per_seed_x else x,
                        y[group], per_seed_x=per_seed_x, on_epoch=callback,
                        checkpoint=checkpoints(seeds) if checkpoints else None,
                        devices=_devices_for(len(seeds), local), loop=plan.loop)

  if plan.concurrent_seeds == 1:
    result = concat_results([
        train_group(seeds, None if on_epoch is None else functools.partial(_with_seeds, on_epoch,
                                                                           seeds))
        for seeds in groups])
  else:
    result = concat_results(_train_concurrently(train_group, groups, plan.concurrent_seeds,
                                                on_epoch))
  result.layout = record
  return result


def _groups(num_seeds: int, layout: str, local: list, explicit_devices: bool):
  return seed_groups(num_seeds, "sequential" if layout == "sequential" else "vmap", len(local),
                     explicit_devices=explicit_devices)


def choose_plan(trainer: Trainer, init_keys, order_keys, x, y, *, per_seed_x: bool,
                seed_layout: str, concurrent_seeds: int, checkpoints=None, local=None,
                explicit_devices: bool = False, log=print) -> tuple[layouts.Plan, dict]:
  """The plan (seed layout, loop, seed groups at once) these seeds train with, and its record.

  A layout given explicitly is used as given (the loop and concurrency then follow their own
  settings and rules). ``auto`` keeps the plan of the training's checkpoints where they have
  one, so a resumed training continues as it began; else, on one device, the measured plan
  (:func:`learnjax.layouts.choose`: cached per model, shape and machine); with several devices
  the static rule (:func:`choose_seed_layout`). A training with checkpoints records its plan
  beside them.
  """
  local = jax.local_devices() if local is None else local
  num_seeds = len(init_keys)
  x_example = x[0, :1] if per_seed_x else x[:1]
  cfg = trainer.cfg
  root = checkpoint_root(checkpoints)
  stored = ckpt.read_plan(root) if root else None
  if seed_layout == "auto" and stored is not None:
    plan, record = layouts.Plan(**stored["plan"]), {**stored, "source": "checkpoint"}
  else:
    layout = choose_seed_layout(seed_layout, trainer.model, x_example)
    model = layouts.model_for(trainer.model, layout)
    variables = jax.tree.map(
        lambda s: jnp.zeros(s.shape, s.dtype),
        jax.eval_shape(functools.partial(model.init, train=False), jax.random.PRNGKey(0),
                       x_example))
    groups = _groups(num_seeds, layout, local, explicit_devices)
    rule = layouts.Plan(
        layout, choose_loop(cfg, model, variables, x_example),
        choose_concurrency(concurrent_seeds, layout, len(groups),
                           len(_devices_for(len(groups[0]), local))))
    if seed_layout != "auto":
      plan, record = rule, {"plan": rule.as_dict(), "source": "given"}
    elif len(_devices_for(num_seeds, local)) > 1:
      plan, record = rule, {"plan": rule.as_dict(), "source": "rule (several devices)"}
    else:
      plan, record = layouts.choose(trainer, init_keys, order_keys, x, y, per_seed_x=per_seed_x,
                                    loop=cfg.loop, concurrent_seeds=concurrent_seeds, first=rule,
                                    log=log)
  if root:
    ckpt.write_plan(root, record)
  return plan, record


def checkpoint_root(checkpoints) -> str | None:
  """The folder holding a training's seed-group checkpoints (None without checkpoints)."""
  if not checkpoints:
    return None
  if getattr(checkpoints, "root", None):
    return checkpoints.root
  directory = getattr(checkpoints(np.arange(1)), "directory", None)
  return os.path.dirname(directory) if directory else None


class _Abandoned(Exception):
  """Raised in a seed group's training when a concurrent group failed."""


def _train_concurrently(train_group, groups, workers: int, on_epoch) -> list[TrainResult]:
  """Runs ``train_group`` for each group in ``workers`` threads; results in group order.

  A failure (or Ctrl-C) in one group stops the others at their next epoch end (their last
  checkpoints stay), and the first real error is raised once every thread has finished. A
  requested stop is no failure: every running group reaches its own epoch end, saves and raises
  ``Preempted``; groups not yet started do not start.
  """
  lock = threading.Lock()
  abandon = threading.Event()

  def callback(seeds, log, state):
    if abandon.is_set() and not ckpt.stop_requested():
      raise _Abandoned()
    if on_epoch is not None:
      with lock:
        return _with_seeds(on_epoch, seeds, log, state)

  def run(seeds):
    if abandon.is_set():
      raise _Abandoned()
    if ckpt.stop_requested():
      raise ckpt.Preempted(f"stopped before seeds {seeds.tolist()} started")
    try:
      return train_group(seeds, functools.partial(callback, seeds))
    except BaseException:
      abandon.set()
      raise

  pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="learnjax-seeds")
  futures = [pool.submit(run, seeds) for seeds in groups]
  try:
    concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_EXCEPTION)
  except BaseException:  # Ctrl-C while waiting
    abandon.set()
    raise
  finally:
    pool.shutdown(wait=True, cancel_futures=True)
  errors = [f.exception() for f in futures if not f.cancelled() and f.exception() is not None]
  real = [e for e in errors if not isinstance(e, _Abandoned)]
  if real:
    # A failure outranks the stops it caused elsewhere.
    raise min(real, key=lambda e: isinstance(e, ckpt.Preempted))
  return [f.result() for f in futures]


def _with_seeds(on_epoch, seeds, log, state):
  return on_epoch(log, state, seeds)
