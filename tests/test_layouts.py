"""train.seed_layout=auto: candidate plans timed on the machine at hand, the fastest kept and
cached; explicit layouts used as given; a checkpoint's plan kept on resume; a seed's numbers the
same under every plan (to float rounding) and bitwise under one."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import learnjax
from learnjax import checkpoint, engine, execution, layouts, models


@pytest.fixture
def cache(tmp_path, monkeypatch):
  folder = tmp_path / "cache"
  monkeypatch.setenv("LEARNJAX_CACHE_DIR", str(folder))
  return folder


def data(splits, seeds):
  x = jnp.asarray(splits.d1.x)
  return x, jnp.broadcast_to(jnp.asarray(splits.d1.y), (seeds, len(x)))


def keys(seeds):
  k = jax.random.split(jax.random.PRNGKey(3), 2 * seeds)
  return k[:seeds], k[seeds:]


def test_candidates_cover_every_layout_loop_and_thread_count():
  cnn = models.build("shallow_cnn_16", 10)
  names = [p.name for p in layouts.candidates(cnn, 5, "auto", 0)]
  assert names == ["vmap/step", "vmap_grouped/step", "sequentialx1/step", "sequentialx2/step",
                   "vmap/scan", "vmap_grouped/scan", "sequentialx1/scan", "sequentialx2/scan"]
  mlp = models.build("mlp_1", 10)
  assert [p.name for p in layouts.candidates(mlp, 5, "scan", 2)] == ["vmap/scan",
                                                                      "sequentialx2/scan"]
  assert [p.name for p in layouts.candidates(cnn, 1, "auto", 0)] == ["sequentialx1/step",
                                                                      "sequentialx1/scan"]
  assert layouts.model_for(cnn, "vmap_grouped").seed_batched is False
  assert layouts.model_for(cnn, "vmap") is cnn
  assert layouts.model_for(mlp, "vmap_grouped") is mlp


@pytest.mark.slow
def test_auto_measures_once_keeps_the_fastest_and_caches_it(small_splits, cache, monkeypatch):
  seeds = 3
  x, y = data(small_splits, seeds)
  trainer = engine.Trainer(models.build("mlp_1", 10), engine.TrainConfig(batch_size=32,
                                                                         max_epochs=10**9))
  lines = []
  plan, record = execution.choose_plan(trainer, *keys(seeds), x, y, per_seed_x=False,
                                       seed_layout="auto", concurrent_seeds=0, log=lines.append)
  assert record["source"] == "measured" and record["complete"]
  timings = record["timings"]
  assert set(timings) == {p.name for p in layouts.candidates(trainer.model, seeds, "auto", 0)}
  rates = {name: t["samples_per_s"] for name, t in timings.items() if "samples_per_s" in t}
  assert plan.name == max(rates, key=rates.get)
  assert len(lines) == 1 and plan.name in lines[0]
  stored = json.loads((cache / layouts.CACHE_FILE).read_text())
  assert [e["plan"] for e in stored.values()] == [plan.as_dict()]

  def no_measuring(*args, **kwargs):
    raise AssertionError("measured again")

  monkeypatch.setattr(layouts, "measure", no_measuring)
  again, record = execution.choose_plan(trainer, *keys(seeds), x, y, per_seed_x=False,
                                        seed_layout="auto", concurrent_seeds=0, log=lines.append)
  assert again == plan and record["source"] == "cache" and len(lines) == 1
  # Another batch size is another key: measured anew.
  other = engine.Trainer(trainer.model, engine.TrainConfig(batch_size=16, max_epochs=10**9))
  with pytest.raises(AssertionError, match="measured again"):
    execution.choose_plan(other, *keys(seeds), x, y, per_seed_x=False, seed_layout="auto",
                          concurrent_seeds=0)


@pytest.mark.slow
def test_a_slow_in_scan_convolution_spares_its_siblings(small_splits, cache, monkeypatch):
  # Once one scan candidate running the convolution as a convolution is found too slow (any, with
  # the factor at 0), the other such candidates are not timed; the seed-batched vmap/scan, whose
  # convolution is a matrix product, still is.
  monkeypatch.setattr(layouts, "CPU_SCAN_CONV_SLOWER", 0.0)
  seeds = 2
  x, y = data(small_splits, seeds)
  trainer = engine.Trainer(models.build("shallow_cnn_16", 10),
                           engine.TrainConfig(batch_size=32, max_epochs=10**9))
  plans = layouts.candidates(trainer.model, seeds, "scan", 0)
  timings, complete = layouts.measure(trainer, plans, *keys(seeds), x, y, False, True, 1e12)
  assert complete
  conv_scans = [p.name for p in plans if layouts.convolves_in_scan(trainer.model, p)]
  assert conv_scans == ["vmap_grouped/scan", "sequentialx1/scan", "sequentialx2/scan"]
  timed = {name for name, t in timings.items() if "samples_per_s" in t}
  assert timed == {p.name for p in plans} - set(conv_scans[1:])
  for name in conv_scans[1:]:
    assert "same in-scan convolution" in timings[name]["skipped"]


@pytest.mark.slow
def test_a_short_training_spends_at_most_its_share_on_measuring(small_splits, cache):
  # Two epochs: measuring every plan would cost more than the training; the static rule's plan,
  # timed first, is kept.
  seeds = 2
  x, y = data(small_splits, seeds)
  trainer = engine.Trainer(models.build("shallow_cnn_16", 10),
                           engine.TrainConfig(batch_size=32, max_epochs=2))
  plan, record = execution.choose_plan(trainer, *keys(seeds), x, y, per_seed_x=False,
                                       seed_layout="auto", concurrent_seeds=0)
  assert record["source"] == "measured" and not record["complete"]
  assert plan == layouts.Plan("sequential", "step", 2)   # the rule's on a CPU
  assert sum("skipped" in t for t in record["timings"].values()) >= 1


def test_an_explicit_layout_is_used_as_given_without_measuring(small_splits, cache, monkeypatch):
  monkeypatch.setattr(layouts, "measure", lambda *a, **k: pytest.fail("measured"))
  x, y = data(small_splits, 2)
  trainer = engine.Trainer(models.build("shallow_cnn_16", 10), engine.TrainConfig(batch_size=32))
  for layout in ("vmap", "vmap_grouped", "sequential"):
    plan, record = execution.choose_plan(trainer, *keys(2), x, y, per_seed_x=False,
                                         seed_layout=layout, concurrent_seeds=0)
    assert plan.seed_layout == layout and record["source"] == "given"
  assert not cache.exists()


def test_a_resumed_training_keeps_the_plan_of_its_checkpoints(small_splits, cache, tmp_path,
                                                               monkeypatch):
  x, y = data(small_splits, 2)
  trainer = engine.Trainer(models.build("mlp_1", 10), engine.TrainConfig(batch_size=32))
  root = tmp_path / "ckpt"
  checkpoints = lambda seeds: checkpoint.TrainingCheckpoint(
      os.path.join(root, f"seeds{seeds[0]}-{seeds[-1]}"), 1)
  given, _ = execution.choose_plan(trainer, *keys(2), x, y, per_seed_x=False,
                                   seed_layout="vmap_grouped", concurrent_seeds=0,
                                   checkpoints=checkpoints)
  assert checkpoint.read_plan(str(root))["plan"] == given.as_dict()
  monkeypatch.setattr(layouts, "measure", lambda *a, **k: pytest.fail("measured"))
  plan, record = execution.choose_plan(trainer, *keys(2), x, y, per_seed_x=False,
                                       seed_layout="auto", concurrent_seeds=0,
                                       checkpoints=checkpoints)
  assert plan == given and record["source"] == "checkpoint"


def test_an_unwritable_cache_only_warns(small_splits, tmp_path, monkeypatch, capsys):
  blocker = tmp_path / "file"
  blocker.write_text("")
  monkeypatch.setenv("LEARNJAX_CACHE_DIR", str(blocker / "cache"))
  x, y = data(small_splits, 2)
  trainer = engine.Trainer(models.build("mlp_1", 10), engine.TrainConfig(batch_size=32,
                                                                         max_epochs=2))
  plan, _ = execution.choose_plan(trainer, *keys(2), x, y, per_seed_x=False, seed_layout="auto",
                                  concurrent_seeds=0)
  assert plan is not None
  assert "could not cache the seed layout" in capsys.readouterr().err


@pytest.mark.slow
def test_a_seed_trains_alike_under_every_plan_and_bitwise_under_one(small_splits, cache):
  seeds = 3
  x, y = data(small_splits, seeds)
  trainer = engine.Trainer(models.build("shallow_cnn_16", 10),
                           engine.TrainConfig(batch_size=32, max_epochs=2))
  results = {}
  for layout in ("vmap", "vmap_grouped", "sequential"):
    results[layout] = execution.train_seeds(trainer, *keys(seeds), x, y, seed_layout=layout)
    assert results[layout].layout["plan"]["seed_layout"] == layout
  again = execution.train_seeds(trainer, *keys(seeds), x, y, seed_layout="vmap")
  for a, b in zip(jax.tree.leaves(results["vmap"].variables), jax.tree.leaves(again.variables)):
    np.testing.assert_array_equal(a, b)
  for layout in ("vmap_grouped", "sequential"):
    for a, b in zip(jax.tree.leaves(results["vmap"].variables),
                    jax.tree.leaves(results[layout].variables)):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_vmapped_and_sequential_shallow_cnn_seeds_measure_alike(cache):
  # Shallow CNN 16, 5 seeds, 2 epochs on the digits: every seed's learnability and N1 test
  # accuracy under seed_layout=vmap (the seed-batched convolution) within one D3 example of
  # seed_layout=sequential.
  results = {}
  for layout in ("vmap", "sequential"):
    results[layout] = learnjax.learnability(
        "shallow_cnn_16", "digits", n2="same", seeds=5, progress=None,
        config={"train.max_epochs": 2, "train.seed_layout": layout})
  one_example = 100.0 / len(results["vmap"].y_d3)
  for metric in ("learnability", "n1_test_accuracy"):
    a, b = results["vmap"].metrics[metric], results["sequential"].metrics[metric]
    assert a.shape == (5,)
    np.testing.assert_array_less(np.abs(a - b), one_example + 1e-9)


def test_the_measured_layout_line_follows_the_apis_progress(cache, capsys):
  # A measured layout is announced where progress lines go: nowhere under progress=None, to the
  # given function otherwise; never to stdout behind the caller's back.
  config = {"train.max_epochs": 1, "data.n1_size": 40, "data.n2_size": 40, "data.test_size": 40}
  learnjax.learnability("mlp_1", "digits", n2="mlp_1", seeds=2, progress=None, config=config)
  assert capsys.readouterr().out == ""
  assert (cache / layouts.CACHE_FILE).exists()   # it did measure
  os.remove(cache / layouts.CACHE_FILE)
  lines = []
  learnjax.learnability("mlp_1", "digits", n2="mlp_1", seeds=2, progress=lines.append,
                        config=config)
  assert capsys.readouterr().out == ""
  assert any(line.startswith("seed layout of MLP") for line in lines), lines


def test_a_failed_cache_write_leaves_no_partial_file(cache, monkeypatch, capsys):
  # A full disk mid-write: the choice is only warned about, and no temporary file is left behind.
  def full_disk(*args, **kwargs):
    raise OSError(28, "No space left on device")

  monkeypatch.setattr(layouts.json, "dump", full_disk)
  layouts.store({"model": "m"}, {"plan": layouts.Plan("vmap", "step", 1).as_dict()})
  assert "could not cache the seed layout" in capsys.readouterr().err
  assert [p.name for p in cache.iterdir() if not p.name.endswith(".lock")] == []
