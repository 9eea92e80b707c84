"""The training engine and its execution plans: plateau schedule, per-seed stopping, the two
loops, own and shared orders, the accelerator program on the CPU, seed groups in threads and
SIGTERM."""

import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from learnjax import checkpoint, engine, execution, models


def reference_learning_rates(errors, lr=0.01, factor=0.75, patience=10):
  """The protocol's rule (docs/protocol.md), written plainly: after each epoch, if the training
  error has not set a new minimum for `patience` epochs in a row, multiply the rate by `factor`
  (and count again)."""
  best, bad, rates = np.inf, 0, []
  for e in errors:
    if e < best:
      best, bad = e, 0
    else:
      bad += 1
      if bad == patience:
        lr, bad = lr * factor, 0
    rates.append(lr)
  return np.array(rates)


def plateau_rates(errors, cfg=engine.TrainConfig()):
  tx = engine._plateau(cfg)
  state = tx.init(jnp.zeros(()))
  rates = []
  for e in errors:
    _, state = tx.update(jnp.zeros(()), state, value=jnp.float32(e))
    rates.append(cfg.learning_rate * float(state.scale))
  return np.array(rates)


def test_plateau_lowers_the_rate_exactly_after_ten_epochs_without_decrease():
  errors = [0.5, 0.4] + [0.4] * 9          # 9 epochs without a decrease: no change yet
  np.testing.assert_allclose(plateau_rates(errors), 0.01)
  errors = errors + [0.45]                   # the 10th: the rate drops from the next epoch on
  rates = plateau_rates(errors)
  np.testing.assert_allclose(rates[:-1], 0.01)
  np.testing.assert_allclose(rates[-1], 0.0075, rtol=1e-6)


def test_plateau_counts_again_after_a_decrease_and_after_a_drop():
  # A decrease at epoch 8 resets the count; equal errors are not decreases.
  errors = [0.3] + [0.3] * 6 + [0.29] + [0.29] * 25 + [0.1] + [0.2] * 3
  got = plateau_rates(errors)
  np.testing.assert_allclose(got, reference_learning_rates(errors), rtol=1e-6)
  drops = np.flatnonzero(np.diff(got) < 0) + 1
  np.testing.assert_array_equal(drops, [17, 27])  # 10 and 20 epochs after the last decrease
  # The smallest decrease the error can make (1/N for N = 10^6) still counts.
  tiny = [0.5, 0.5 - 1e-6] + [0.5 - 1e-6] * 9
  np.testing.assert_allclose(plateau_rates(tiny), 0.01)


def test_training_history_follows_the_plateau_rule(small_splits):
  trainer = engine.Trainer(models.build("mlp_1", 10),
                           engine.TrainConfig(max_epochs=60, stop_error=0.0))
  keys = jax.random.split(jax.random.PRNGKey(0), 3)
  # Random labels make the error stall, so the schedule has plateaus to act on.
  y = np.random.default_rng(0).integers(0, 10, (3, len(small_splits.d1)))
  result = trainer.train(keys, keys, small_splits.d1.x, y)
  history = result.history
  assert history["train_error"].shape == (3, 60)
  lowered = False
  for s in range(3):
    errors = history["train_error"][s]
    ref = reference_learning_rates(errors[np.isfinite(errors)])
    got = history["learning_rate"][s][np.isfinite(errors)]
    np.testing.assert_allclose(got, ref, rtol=1e-6)
    lowered |= ref[-1] < 0.01
  assert lowered, "the schedule should have lowered some seed's rate in 60 epochs"


def test_a_stopped_seed_is_frozen_while_the_others_train(small_splits):
  cfg = engine.TrainConfig(learning_rate=0.1, stop_error=0.08, max_epochs=40)
  trainer = engine.Trainer(models.build("mlp_1", 10), cfg)
  keys = jax.random.split(jax.random.PRNGKey(1), 4)
  y = np.broadcast_to(small_splits.d1.y, (4, len(small_splits.d1)))
  snapshots = []
  trainer.train(keys, keys, small_splits.d1.x, y,
                on_epoch=lambda log, state: snapshots.append(
                    (log, jax.tree.map(np.array, state.params))))
  stop_epochs = []
  for s in range(4):
    done = [log.done[s] for log, _ in snapshots]
    stop_epochs.append(done.index(True) + 1 if True in done else None)
  stopped = [s for s in range(4) if stop_epochs[s] is not None]
  assert stopped, "some seed should reach the stop error"
  assert len(set(stop_epochs)) > 1, "seeds should stop at different epochs"
  for s in stopped:
    frozen = snapshots[stop_epochs[s] - 1][1]
    for _, params in snapshots[stop_epochs[s]:]:
      jax.tree.map(lambda a, b: np.testing.assert_array_equal(a[s], b[s]), frozen, params)
    assert snapshots[stop_epochs[s] - 1][0].train_error[s] < 0.08
  # A seed still training changed its parameters after the first seed stopped.
  first = min(e for e in stop_epochs if e is not None)
  running = [s for s in range(4) if stop_epochs[s] is None or stop_epochs[s] > first + 1]
  assert running
  s = running[0]
  before, after = snapshots[first - 1][1], snapshots[first][1]
  assert any(not np.array_equal(a[s], b[s])
             for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after)))


@pytest.mark.parametrize("model", ["mlp_2", "shallow_cnn_16"])
def test_scan_and_step_loops_agree(small_splits, model):
  keys = jax.random.split(jax.random.PRNGKey(2), 2)
  y = np.broadcast_to(small_splits.d1.y, (2, len(small_splits.d1)))
  results = {}
  for loop in ("scan", "step"):
    trainer = engine.Trainer(models.build(model, 10), engine.TrainConfig(max_epochs=3, loop=loop))
    results[loop] = trainer.train(keys, keys, small_splits.d1.x, y)
  np.testing.assert_allclose(results["scan"].history["train_error"],
                             results["step"].history["train_error"])
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               results["scan"].variables, results["step"].variables)


@pytest.mark.parametrize("loop", ["scan", "step"])
def test_partial_last_batch_is_trained_on(small_splits, loop):
  # 200 examples at batch 64: 3 full batches and one of 8. After one epoch the engine's parameters
  # are those of a plain loop over all four batches, not of the first three.
  cfg = engine.TrainConfig(max_epochs=1, loop=loop, learning_rate=0.5)
  model = models.build("mlp_1", 10)
  trainer = engine.Trainer(model, cfg)
  keys = jax.random.split(jax.random.PRNGKey(3), 1)
  x, y = np.asarray(small_splits.d1.x), np.asarray(small_splits.d1.y)
  result = trainer.train(keys, keys, x, y[None])

  def sgd_step(params, idx):
    loss = lambda p: -jnp.mean(jax.nn.log_softmax(model.apply({"params": p}, x[idx]))[
        jnp.arange(len(idx)), y[idx]])
    return jax.tree.map(lambda p, g: p - cfg.learning_rate * g, params, jax.grad(loss)(params))

  order = np.asarray(jax.random.permutation(jax.random.fold_in(keys[0], 0), len(y)))
  params = model.init(keys[0], x[:1], train=False)["params"]
  for begin in range(0, 192, 64):
    params = sgd_step(params, order[begin:begin + 64])
  with_tail = sgd_step(params, order[192:])
  got = jax.tree.map(lambda a: a[0], result.variables["params"])
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), got, with_tail)
  moved = max(float(np.abs(a - b).max()) for a, b in zip(jax.tree.leaves(with_tail),
                                                          jax.tree.leaves(params)))
  assert moved > 1e-3, "the tail batch's update should be visible"


def test_diverging_seed_is_marked_and_keeps_finite_parameters(small_splits):
  # A huge learning rate makes the loss overflow; every seed diverges and is reported as such.
  trainer = engine.Trainer(models.build("mlp_1", 10),
                           engine.TrainConfig(learning_rate=1e12, max_epochs=5))
  keys = jax.random.split(jax.random.PRNGKey(4), 2)
  y = np.broadcast_to(small_splits.d1.y, (2, len(small_splits.d1)))
  result = trainer.train(keys, keys, small_splits.d1.x * 1e3, y)
  assert result.diverged.all()
  assert (result.diverged_epoch >= 1).all() and (result.diverged_epoch <= 5).all()
  assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(result.variables))


def _train_seeds(splits, model, num_seeds=3, **kwargs):
  trainer = engine.Trainer(models.build(model, 10), engine.TrainConfig(max_epochs=3))
  keys = jax.random.split(jax.random.PRNGKey(5), num_seeds)
  y = np.broadcast_to(splits.d1.y, (num_seeds, len(splits.d1)))
  return execution.train_seeds(trainer, keys, keys[::-1], splits.d1.x, y, **kwargs)


@pytest.mark.parametrize("model", ["mlp_1", "shallow_cnn_16"])
def test_concurrent_seeds_give_the_same_results(small_splits, model):
  calls = []
  one = _train_seeds(small_splits, model, seed_layout="sequential", concurrent_seeds=1)
  two = _train_seeds(small_splits, model, seed_layout="sequential", concurrent_seeds=2,
                     on_epoch=lambda log, state, seeds: calls.append((tuple(seeds), log.epoch)))
  np.testing.assert_array_equal(one.history["train_error"], two.history["train_error"])
  jax.tree.map(np.testing.assert_array_equal, one.variables, two.variables)
  assert sorted(calls) == [((s,), e) for s in range(3) for e in (1, 2, 3)]


class _PausingCheckpoint:
  """A checkpoint that saves nothing; its save after epoch 1 waits for ``event`` (outside the
  engine's on_epoch lock, so the other groups' callbacks run meanwhile)."""
  every_epochs = 1
  directory = "nowhere"

  def __init__(self, event):
    self.event = event

  def restore(self, abstract_state):
    return None

  def save(self, state, history):
    if int(np.asarray(state.epoch).max()) == 1:
      assert self.event.wait(timeout=30)
      time.sleep(0.5)   # the failing group's thread has long marked the others abandoned


def test_a_failing_concurrent_seed_stops_the_others_and_raises(small_splits):
  epochs = {}
  failed = threading.Event()

  def on_epoch(log, state, seeds):
    epochs[int(seeds[0])] = log.epoch
    if int(seeds[0]) == 0:
      failed.set()
      raise RuntimeError("seed 0 failed")

  with pytest.raises(RuntimeError, match="seed 0 failed"):
    _train_seeds(small_splits, "mlp_1", seed_layout="sequential", concurrent_seeds=2,
                 on_epoch=on_epoch,
                 checkpoints=lambda seeds: None if seeds[0] == 0 else _PausingCheckpoint(failed))
  # Seed 1 ran beside seed 0 and stopped at its first epoch end after the failure: at epoch 1 if
  # that came later (no callback), else at epoch 2, having waited after epoch 1 for the failure.
  # Seed 2 never started.
  assert epochs[0] == 1 and epochs.get(1, 1) == 1 and 2 not in epochs


def test_concurrency_is_chosen_per_backend_and_layout():
  assert execution.choose_concurrency(0, "sequential", 5, 1) == execution.CPU_CONCURRENT_SEEDS
  assert execution.choose_concurrency(0, "vmap", 1, 1) == 1
  assert execution.choose_concurrency(0, "sequential", 5, 4) == 1   # groups already span devices
  assert execution.choose_concurrency(8, "sequential", 3, 1) == 3   # never more threads than groups


def test_cpu_seed_layout_depends_on_model_size():
  cifar = jnp.zeros((1, 32, 32, 3))
  digits = jnp.zeros((1, 8, 8, 1))
  assert execution.choose_seed_layout("auto", models.build("mlp_3", 10), cifar) == "sequential"
  assert execution.choose_seed_layout("auto", models.build("mlp_1", 10), digits) == "vmap"
  assert execution.choose_seed_layout("auto", models.build("shallow_cnn_16", 10), digits) == \
      "sequential"
  assert execution.choose_seed_layout("vmap", models.build("mlp_3", 10), cifar) == "vmap"


@pytest.mark.parametrize("model,loop", [("mlp_1", "scan"), ("shallow_cnn_16", "step"),
                                        ("shallow_cnn_16", "scan")])
def test_shared_order_gathers_once_and_trains_as_equal_order_keys_do(small_splits, model, loop):
  # shared_order's own compiled path (one batch for all seeds) must train exactly what the
  # per-seed path does when every seed is given the same order key.
  init_keys = jax.random.split(jax.random.PRNGKey(6), 3)
  order_keys = jnp.broadcast_to(jax.random.PRNGKey(7), (3, 2))
  y = np.stack([small_splits.d1.y, small_splits.d1.y, (small_splits.d1.y + 1) % 10])
  results = {}
  for shared in (False, True):
    trainer = engine.Trainer(models.build(model, 10),
                             engine.TrainConfig(max_epochs=3, loop=loop, shared_order=shared))
    results[shared] = trainer.train(init_keys, order_keys, small_splits.d1.x, y)
  np.testing.assert_allclose(results[True].history["train_error"],
                             results[False].history["train_error"])
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               results[True].variables, results[False].variables)


class _GuardedTrainer(engine.Trainer):
  """A Trainer whose epochs run under ``jax.transfer_guard('disallow')``: an implicit transfer
  from the host inside an epoch (a NumPy or Python value reaching a compiled call) raises."""

  def scan_epoch_fn(self, per_seed_x):
    epoch = super().scan_epoch_fn(per_seed_x)

    def guarded(*args):
      with jax.transfer_guard("disallow"):
        return epoch(*args)

    return guarded

  def step_epoch(self, *args, **kwargs):
    with jax.transfer_guard("disallow"):
      return super().step_epoch(*args, **kwargs)


@pytest.mark.parametrize("layout,shared", [("vmap", True), ("sequential", False)])
def test_the_accelerator_program_runs_on_the_cpu_as_the_cpu_forms_do(small_splits, layout,
                                                                     shared):
  # The program a GPU runs: plain forms, one lax.scan per epoch, vmapped or in turn (two groups
  # in threads), own or shared order; against the CPU's: CPU forms, one call per step. 40
  # examples in batches of 16: two full batches and a partial one per epoch.
  init_keys = jax.random.split(jax.random.PRNGKey(8), 2)
  order_keys = jax.random.split(jax.random.PRNGKey(9), 2)
  x = small_splits.d1.x[:40]
  y = np.stack([small_splits.d1.y[:40], (small_splits.d1.y[:40] + 3) % 10])
  results = {}
  for forms, loop in (("accelerator", "scan"), ("cpu", "auto")):
    model = models.build("shallow_cnn_16", 10, forms=forms)
    cfg = engine.TrainConfig(batch_size=16, max_epochs=3, loop=loop, shared_order=shared)
    results[forms] = execution.train_seeds(_GuardedTrainer(model, cfg), init_keys, order_keys,
                                           x, y, seed_layout=layout, concurrent_seeds=2)
  accel, cpu = results["accelerator"], results["cpu"]
  assert accel.history["train_error"].shape == (2, 3)
  # Running errors count whole examples: allow one flipped prediction.
  np.testing.assert_allclose(accel.history["train_error"], cpu.history["train_error"],
                             atol=1 / 40 + 1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
               accel.variables, cpu.variables)


def test_sigterm_saves_every_seed_group_in_threads_and_resumes_to_the_same_result(
    small_splits, tmp_path):
  # Two seed groups (sequential layout) in two threads. The stop request (what SIGTERM does)
  # arrives after group 1's first epoch end; group 0 reaches its next epoch end first, saves and
  # raises; only then does group 1 reach its next epoch end, where it must save too.
  trainer = engine.Trainer(models.build("mlp_1", 10), engine.TrainConfig(max_epochs=4))
  keys = jax.random.split(jax.random.PRNGKey(10), 2)
  y = np.stack([small_splits.d1.y, (small_splits.d1.y + 1) % 10])
  epochs_run = []

  def run(checkpoints):
    return execution.train_seeds(
        trainer, keys, keys[::-1], small_splits.d1.x, y, seed_layout="sequential",
        concurrent_seeds=2, checkpoints=checkpoints,
        on_epoch=lambda log, state, seeds: epochs_run.append((int(seeds[0]), log.epoch)))

  reference = run(None)
  assert (reference.epochs == 4).all()
  del epochs_run[:]
  stop_arrived, group0_stopped = threading.Event(), threading.Event()

  class Orchestrated(checkpoint.TrainingCheckpoint):
    def save(self, state, history):
      super().save(state, history)
      epoch = int(np.asarray(state.epoch).max())
      if self.group == 0:
        if checkpoint.stop_requested():
          group0_stopped.set()            # saved on the stop; raises Preempted right after
        elif epoch == 1:
          assert stop_arrived.wait(30)    # group 0 is mid-way when the stop arrives
      elif epoch == 1:
        checkpoint.request_stop()
        stop_arrived.set()
        assert group0_stopped.wait(30)
        time.sleep(0.5)                   # group 0's thread has long raised and marked the others

  def orchestrated(seeds):
    ckpt = Orchestrated(str(tmp_path / f"group{seeds[0]}"), every_epochs=1)
    ckpt.group = int(seeds[0])
    return ckpt

  try:
    with pytest.raises(checkpoint.Preempted):
      run(orchestrated)
  finally:
    checkpoint.clear_stop_request()
  saved = {g: checkpoint.TrainingCheckpoint(str(tmp_path / f"group{g}"), 1).manager.latest_step()
           for g in (0, 1)}
  trained = {g: max(e for s, e in epochs_run if s == g) for g in (0, 1)}
  assert saved == trained and saved[1] == 2, (saved, trained)   # every group saved its last epoch

  del epochs_run[:]
  resumed = run(lambda seeds: checkpoint.TrainingCheckpoint(str(tmp_path / f"group{seeds[0]}"), 1))
  assert sorted(epochs_run) == [(g, e) for g in (0, 1) for e in range(saved[g] + 1, 5)]
  np.testing.assert_array_equal(resumed.history["train_error"], reference.history["train_error"])
  np.testing.assert_array_equal(resumed.epochs, reference.epochs)
  jax.tree.map(np.testing.assert_array_equal, resumed.variables, reference.variables)
