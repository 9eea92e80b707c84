"""The learnability measurement: metrics, seed independence, vmap against one seed at a time."""

import jax
import numpy as np
import pytest

from learnjax import engine, metrics, models, training


def test_metrics_from_hand_made_predictions():
  n1 = np.array([[0, 1, 2, 3, 4], [1, 1, 1, 1, 1]])
  n2 = np.array([[0, 1, 2, 0, 0], [1, 1, 1, 1, 1]])
  labels = np.array([0, 1, 1, 3, 2])
  out = metrics.compute({"n1_preds_d3": n1, "n2_preds_d3": n2, "y_d3": labels})
  assert out["learnability"]["per_seed"] == [60.0, 100.0]
  assert (out["learnability"]["mean"], out["learnability"]["std"]) == (80.0, 20.0)
  assert out["n1_test_accuracy"]["per_seed"] == [60.0, 40.0]
  assert out["n2_test_accuracy"]["per_seed"] == [40.0, 40.0]


def test_seed_keys_depend_only_on_seed_and_purpose():
  a = training.seed_keys(0, [0, 1, 2], training.Purpose.N1_INIT)
  b = training.seed_keys(0, [2], training.Purpose.N1_INIT)
  np.testing.assert_array_equal(a[2], b[0])
  c = training.seed_keys(0, [2], training.Purpose.N2_INIT)
  assert not np.array_equal(b, c)
  d = training.seed_keys(1, [2], training.Purpose.N1_INIT)
  assert not np.array_equal(b, d)


@pytest.mark.parametrize("model, variant", [("mlp_1", "random_labels"),
                                            ("shallow_cnn_16", "random_images")])
def test_seeds_in_parallel_equal_seeds_one_at_a_time(small_splits, model, variant):
  cfg = engine.TrainConfig(max_epochs=4)
  seeds = np.arange(3)
  out = {}
  for layout in ("vmap", "sequential"):
    n1_trainer = engine.Trainer(models.build(model, 10), cfg)
    n2_trainer = engine.Trainer(models.build("mlp_1", 10), cfg)
    n1 = training.train_n1(small_splits, n1_trainer, variant, 0, seeds, seed_layout=layout)
    n2 = training.train_n2(small_splits, n2_trainer, n1.preds_d2, 0, seeds, seed_layout=layout,
                           variant=variant)
    out[layout] = (n1, n2, 100.0 * (n1.preds_d3 == n2.preds_d3).mean(-1))
  (n1v, n2v, lv), (n1s, n2s, ls) = out["vmap"], out["sequential"]
  np.testing.assert_array_equal(n1v.preds_d2, n1s.preds_d2)
  np.testing.assert_array_equal(n1v.preds_d3, n1s.preds_d3)
  np.testing.assert_array_equal(n2v.preds_d3, n2s.preds_d3)
  np.testing.assert_array_equal(lv, ls)
  np.testing.assert_allclose(n1v.history["train_error"], n1s.history["train_error"])


def test_a_seed_alone_equals_the_same_seed_among_others(small_splits):
  cfg = engine.TrainConfig(max_epochs=3)
  trainer = engine.Trainer(models.build("mlp_1", 10), cfg)
  many = training.train_n1(small_splits, trainer, "random_labels", 5, np.arange(3))
  one = training.train_n1(small_splits, trainer, "random_labels", 5, np.array([2]))
  np.testing.assert_array_equal(many.preds_d3[2], one.preds_d3[0])


def test_batchnorm_net_through_the_protocol_vmap_equals_sequential(small_splits):
  """VGG11 (BatchNorm, per-seed running statistics) on 8x8 digits: both seed layouts agree."""
  from learnjax.data import splits as splits_lib
  tiny = splits_lib.Splits(*(splits_lib.Split(s.x[:64], s.y[:64], s.index[:64])
                             for s in (small_splits.d1, small_splits.d2, small_splits.d3)),
                           small_splits.num_classes, small_splits.mean, small_splits.std)
  cfg = engine.TrainConfig(max_epochs=2, batch_size=16)
  out = {}
  for layout in ("vmap", "sequential"):
    trainer = engine.Trainer(models.build("vgg11", 10), cfg)
    out[layout] = training.train_n1(tiny, trainer, "true", 0, np.arange(2), seed_layout=layout,
                                    keep_variables=True)
  np.testing.assert_array_equal(out["vmap"].preds_d3, out["sequential"].preds_d3)
  stats = out["vmap"].variables["batch_stats"]
  means = [leaf for path, leaf in jax.tree_util.tree_leaves_with_path(stats)
           if "mean" in jax.tree_util.keystr(path)]
  assert all(np.abs(np.asarray(m)).max() > 0 for m in means)      # running means moved
  assert not np.array_equal(np.asarray(means[0][0]), np.asarray(means[0][1]))  # per seed
