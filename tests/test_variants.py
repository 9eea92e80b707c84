"""The data-variant registry and its entries (docs/protocol.md section 2): what each variant
gives N1, N2 and the measurement, per seed, reproducibly."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from learnjax import config as config_lib, engine, execution, models, training, sweep, validation
from learnjax.data import variants
from learnjax.data.splits import Split, Splits
from learnjax.data.variants import zhang
from learnjax.errors import LearnjaxError
from learnjax.report import formatting

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _keys(n, seed=3):
  return training.seed_keys(seed, np.arange(n), training.Purpose.VARIANT)


def _splits(x1, x2, x3, y1=None, classes=10):
  part = lambda x, y: Split(np.asarray(x, np.float32),
                            np.zeros(len(x), np.int32) if y is None else np.asarray(y, np.int32),
                            np.arange(len(x)))
  return Splits(part(x1, y1), part(x2, None), part(x3, None), classes, np.zeros(1), np.ones(1))


def test_the_registry_is_read_without_jax_and_validation_asks_it():
  code = ("import sys, learnjax.validation as v, learnjax.data.variants as d; "
          "print(sorted(d.names()), 'jax' in sys.modules)")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       check=True).stdout
  assert out.strip().endswith("False")
  for name in ("true", "random_labels", "random_images", "random_images_real_eval",
               "partial_labels", "shuffled_pixels", "gaussian"):
    assert name in out
  config = config_lib.base_config()
  config.data.variant = "true,shuffled"
  with pytest.raises(LearnjaxError, match="unknown data variant 'shuffled'; choose one of"):
    validation.check_config(config)


@pytest.mark.parametrize("fractions, variant, message", [
    (None, "partial_labels", "needs data.corrupt_fraction"),
    ("", "partial_labels", "needs data.corrupt_fraction"),
    ("0.5", "true", "read only by partial_labels"),
    (0.5, "random_labels", "read only by partial_labels"),
    ((0.5, True), "partial_labels", r"fractions in \[0, 1\]"),
    ("0.5,1.5", "partial_labels", r"fractions in \[0, 1\]"),
    ("0.5,x", "partial_labels", r"fractions in \[0, 1\]"),
    ("0.5,0.50", "partial_labels", "one fraction twice"),
])
def test_corrupt_fraction_is_checked(fractions, variant, message):
  config = config_lib.base_config()
  config.data.variant, config.data.corrupt_fraction = variant, fractions
  with pytest.raises(LearnjaxError, match=message):
    validation.check_config(config)


def test_corrupt_fraction_is_a_grid_axis_of_the_variants_that_read_it():
  config = config_lib.base_config()
  config.data.variant = "true,partial_labels"
  config.data.corrupt_fraction = "0,0.25,1"
  config.n1.model = "mlp_1"
  rows = sweep.plan(config)
  config.data.corrupt_fraction = (0, 0.25, 1.0)   # what --config.data.corrupt_fraction=0,0.25,1 gives
  assert [job.id for job, _ in sweep.plan(config)] == [job.id for job, _ in rows]
  assert [job.id for job, _ in rows] == [
      "true__mlp_1__b64", "partial_labels_f0.0__mlp_1__b64", "partial_labels_f0.25__mlp_1__b64",
      "partial_labels_f1.0__mlp_1__b64"]
  assert rows[2][1][0].id == "partial_labels_f0.25__mlp_1__b64__mlp_1__b64"
  assert rows[2][0].variant_record == {"variant": "partial_labels", "corrupt_fraction": 0.25,
                                       "variant_construction": "1"}
  assert "corrupt_fraction" not in rows[0][0].variant_record


def test_partial_labels_replace_exactly_round_f_n_labels_per_seed(small_splits):
  d1 = small_splits.d1
  n, keys = len(d1), _keys(3)
  true = variants.n1_training_data(d1.x, d1.y, "true", keys, 10)[1]
  random = np.asarray(variants.n1_training_data(d1.x, d1.y, "random_labels", keys, 10)[1])
  x0, y0 = variants.n1_training_data(d1.x, d1.y, "partial_labels", keys, 10, 0.0)
  np.testing.assert_array_equal(np.asarray(y0), np.asarray(true))   # f = 0 is true
  np.testing.assert_array_equal(np.asarray(x0), d1.x)
  y1 = np.asarray(variants.n1_training_data(d1.x, d1.y, "partial_labels", keys, 10, 1.0)[1])
  np.testing.assert_array_equal(y1, random)                         # f = 1 is random_labels
  # Labels outside the classes show which positions were replaced: exactly round(f * N).
  marked = np.full(n, -1)
  for f in (0.3, 0.5, 0.123):
    y = np.asarray(variants.n1_training_data(d1.x, marked, "partial_labels", keys, 10, f)[1])
    replaced = y != -1
    assert (replaced.sum(1) == zhang.corrupted_count(f, n)).all() and zhang.corrupted_count(
        f, n) == round(f * n)
    np.testing.assert_array_equal(y[replaced], random[replaced])  # by uniform labels
    assert not np.array_equal(replaced[0], replaced[1])           # positions per seed
    again = np.asarray(variants.n1_training_data(d1.x, marked, "partial_labels", keys, 10, f)[1])
    np.testing.assert_array_equal(y, again)
  # Half the labels corrupted: about half + half / classes still true.
  y = np.asarray(variants.n1_training_data(d1.x, d1.y, "partial_labels", keys, 10, 0.5)[1])
  assert abs((y == d1.y).mean() - (0.5 + 0.5 / 10)) < 0.08
  with pytest.raises(LearnjaxError, match="needs data.corrupt_fraction"):
    variants.n1_training_data(d1.x, d1.y, "partial_labels", keys, 10)


def _pixel_ids(n, h=4, w=5, c=2, offset=0):
  """Images whose every pixel position holds its own value (and each image its own offset)."""
  base = np.arange(h * w, dtype=np.float32).reshape(1, h, w, 1)
  return base + 1000 * (np.arange(n, dtype=np.float32).reshape(n, 1, 1, 1) + offset) + 0.5 * np.arange(c)


def test_shuffled_pixels_permute_pixel_positions_the_same_way_in_d1_d2_d3_per_seed():
  x1, x2, x3 = _pixel_ids(6), _pixel_ids(5, offset=10), _pixel_ids(4, offset=20)
  s, keys = _splits(x1, x2, x3, y1=np.arange(6) % 3), _keys(3)
  entry = variants.get("shuffled_pixels")
  images, labels = entry.n1_data(s.d1.x, s.d1.y, keys, 10, None)
  e2, e3 = entry.eval_images(s, keys)
  images, e2, e3 = (np.asarray(a) for a in (images, e2, e3))
  assert images.shape == (3,) + x1.shape and e2.shape == (3,) + x2.shape
  np.testing.assert_array_equal(np.asarray(labels), np.broadcast_to(s.d1.y, (3, 6)))
  perms = []
  for seed in range(3):
    perm = images[seed, 0, :, :, 0].ravel().astype(int) % 1000   # where each position came from
    assert sorted(perm) == list(range(20))                       # a permutation of positions
    for original, shuffled in ((x1, images[seed]), (x2, e2[seed]), (x3, e3[seed])):
      np.testing.assert_array_equal(shuffled, zhang.permute(original, perm))  # channels together
    perms.append(tuple(perm))
  assert len(set(perms)) == 3                                    # one permutation per seed
  assert entry.per_seed_images and not entry.real_test_accuracy


def test_random_pixels_permute_each_image_on_its_own():
  x1, x2, x3 = _pixel_ids(6), _pixel_ids(5, offset=10), _pixel_ids(4, offset=20)
  s, keys = _splits(x1, x2, x3, y1=np.arange(6) % 3), _keys(2)
  entry = variants.get("random_pixels")
  images, labels = (np.asarray(a) for a in entry.n1_data(s.d1.x, s.d1.y, keys, 10, None))
  np.testing.assert_array_equal(labels, np.broadcast_to(s.d1.y, (2, 6)))
  e2, e3 = (np.asarray(a) for a in entry.eval_images(s, keys))
  for original, permuted in ((x1, images), (x2, e2), (x3, e3)):
    assert permuted.shape == (2,) + original.shape
    for seed in range(2):
      perms = set()
      for i in range(len(original)):
        perm = permuted[seed, i, :, :, 0].ravel().astype(int) % 1000
        assert sorted(perm) == list(range(20))
        np.testing.assert_array_equal(permuted[seed, i], zhang.permute(original[i:i + 1], perm)[0])
        perms.add(tuple(perm))
      assert len(perms) == len(original)        # each image its own permutation
  assert not np.array_equal(images[0], images[1])


def test_gaussian_images_match_d1s_channel_statistics_and_keep_its_labels():
  rng = np.random.default_rng(0)
  x1 = rng.normal([2.0, -1.0, 0.0], [0.5, 3.0, 1.0], size=(400, 6, 6, 3))
  real2, real3 = rng.uniform(size=(300, 6, 6, 3)), rng.uniform(size=(200, 6, 6, 3))
  y1 = rng.integers(0, 10, 400)
  s, keys = _splits(x1, real2, real3, y1=y1), _keys(2)
  entry = variants.get("gaussian")
  images, labels = (np.asarray(a) for a in entry.n1_data(s.d1.x, s.d1.y, keys, 10, None))
  np.testing.assert_array_equal(labels, np.broadcast_to(y1, (2, 400)))   # as Zhang et al.
  mean, std = zhang.channel_stats(s.d1.x)
  e2, e3 = (np.asarray(a) for a in entry.eval_images(s, keys))
  for drawn in (images[0], images[1], e2[0], e3[1]):
    got_mean, got_std = zhang.channel_stats(drawn)
    np.testing.assert_allclose(got_mean, mean, atol=0.05 * std.max())
    np.testing.assert_allclose(got_std, std, rtol=0.03)
  assert not np.array_equal(images[0], images[1]) and not np.array_equal(e2[0, :200], e3[0])
  # D2 and D3 depend on D1's statistics only, not on the real D2/D3 images.
  other = _splits(x1, real2 + 5, real3 - 5, y1=y1)
  np.testing.assert_array_equal(np.asarray(entry.eval_images(other, keys)[0]), e2)


def test_random_images_d2_d3_are_noise_independent_of_the_data_per_seed_and_reproducible(small_splits):
  entry = variants.get("random_images")
  keys = _keys(3)
  e2, e3 = (np.asarray(a) for a in entry.eval_images(small_splits, keys))
  assert e2.shape == (3,) + small_splits.d2.x.shape and e3.shape == (3,) + small_splits.d3.x.shape
  for noise in (e2, e3):
    assert noise.min() >= -1 and noise.max() <= 1 and abs(noise.std() - np.sqrt(1 / 3)) < 0.01
    assert not np.array_equal(noise[0], noise[1])              # per seed
  d1_noise = np.asarray(entry.n1_data(small_splits.d1.x, small_splits.d1.y, keys, 10, None)[0])
  assert not np.array_equal(d1_noise[0, :100], e3[0]) and not np.array_equal(e2[0, :100], e3[0])
  # Independent of the real images: other data of the same shapes gives the same noise.
  scrambled = _splits(small_splits.d1.x[::-1] * 3, small_splits.d2.x + 1, small_splits.d3.x * 0)
  np.testing.assert_array_equal(np.asarray(entry.eval_images(scrambled, keys)[1]), e3)
  # Reproducible from the seed alone: seed 2 computed alone is seed 2 among others.
  alone = np.asarray(entry.eval_images(small_splits, keys[2:])[0])
  np.testing.assert_array_equal(alone[0], e2[2])
  assert entry.per_seed_images and entry.real_test_accuracy and entry.expects_chance()
  old = variants.get("random_images_real_eval")
  assert old.eval_images is None and old.construction != entry.construction


def test_n2_never_sees_a_real_image_under_random_images(small_splits, monkeypatch):
  seen = []
  real_train = execution.train_seeds

  def spy(trainer, init_keys, order_keys, x, y, **kw):
    seen.append((np.asarray(x), kw.get("per_seed_x", False)))
    return real_train(trainer, init_keys, order_keys, x, y, **kw)

  monkeypatch.setattr(execution, "train_seeds", spy)
  cfg = engine.TrainConfig(max_epochs=2)
  seeds = np.arange(2)
  trainer = engine.Trainer(models.build("mlp_1", 10), cfg)
  n1 = training.train_n1(small_splits, trainer, "random_images", 0, seeds, keep_variables=True)
  n2 = training.train_n2(small_splits, trainer, n1.preds_d2, 0, seeds, variant="random_images")
  data = training.eval_data(small_splits, "random_images", 0, seeds)
  (x_n1, per_seed_n1), (x_n2, per_seed_n2) = seen
  assert per_seed_n1 and per_seed_n2 and x_n2.shape == (2,) + small_splits.d2.x.shape
  np.testing.assert_array_equal(x_n2, np.asarray(data.x2))       # N2 learns the noise D2
  real = np.concatenate([small_splits.d1.x, small_splits.d2.x, small_splits.d3.x])
  real_rows = {r.tobytes() for r in real}
  for x in (x_n1, x_n2):
    assert not any(img.tobytes() in real_rows for img in x.reshape((-1,) + real.shape[1:]))
  # Learnability on the noise D3; N1's test accuracy on the real test images.
  np.testing.assert_array_equal(n1.preds_d3, training.predict(trainer, n1.variables, data.x3, True))
  np.testing.assert_array_equal(n1.preds_test, training.predict(
      trainer, n1.variables, np.asarray(small_splits.d3.x), False))
  assert n2.preds_test is not None
  # The same N1 (noise D1, its labels) as the real-D2/D3 construction, evaluated elsewhere.
  old = training.train_n1(small_splits, trainer, "random_images_real_eval", 0, seeds)
  np.testing.assert_array_equal(old.preds_d3, n1.preds_test)
  assert old.preds_test is None


def test_a_workdir_of_another_construction_is_refused(tmp_path):
  config = config_lib.make_smoke(config_lib.base_config(), max_epochs=1, seeds=1,
                                 sizes=(60, 60, 40))
  config.data.variant = "random_images"
  config.n1.model = "mlp_1"
  workdir = str(tmp_path / "run")
  cells = sweep.train_and_evaluate(config, workdir, out=lambda _: None)
  assert cells[0]["variant_construction"] == variants.get("random_images").construction
  assert sweep.train_and_evaluate(config, workdir, out=lambda _: None) == cells   # resumes
  # A cell stored before the construction was recorded (noise D1 only, real D2 and D3).
  path = os.path.join(workdir, "cells", cells[0]["cell"], "result.json")
  record = json.load(open(path))
  del record["variant_construction"]
  json.dump(record, open(path, "w"))
  with pytest.raises(LearnjaxError, match="construction '1' of random_images"):
    sweep.train_and_evaluate(config, workdir, out=lambda _: None)


def test_reports_ask_the_registry_for_titles_order_and_chance():
  cell = lambda v, f=None: {"variant": v, **({} if f is None else {"corrupt_fraction": f})}
  keys = [formatting.variant_of(c) for c in (cell("true"), cell("partial_labels", 0.5),
                                             cell("partial_labels", 0.25), cell("random_labels"),
                                             cell("mine"))]
  assert formatting.sort_variants(keys) == ["random_labels", "partial_labels_f0.25",
                                            "partial_labels_f0.5", "true", "mine"]
  assert formatting.variant_title("partial_labels_f0.25") == "partial labels 0.25"
  assert formatting.variant_title("gaussian") == "Gaussian images"
  assert formatting.reference_variant(["random_labels", "true"]) == "true"
  from learnjax.report import degenerate
  at_chance = dict(preds=np.tile(np.arange(10), (2, 10)), y=np.repeat(np.arange(10), 10))
  assert "at chance" in degenerate.reason("true", 10, **at_chance)
  assert "at chance" in degenerate.reason("partial_labels", 10, fraction=0.5, **at_chance)
  assert degenerate.reason("partial_labels", 10, fraction=1.0, **at_chance) is None
  assert degenerate.reason("gaussian", 10, **at_chance) is None


def test_a_variant_registered_outside_learnjax_runs_through_the_protocol(small_splits):
  def first_class_only(x, y, keys, num_classes, fraction=None):
    import jax.numpy as jnp
    return jnp.asarray(x), jnp.zeros((len(keys), len(y)), jnp.int32)

  variants.register(variants.Variant(
      name="test_one_label", title="one label", n1_data=first_class_only, per_seed_images=False,
      construction="1", description="every D1 label 0", chance=lambda fraction: True))
  config = config_lib.base_config()
  config.data.variant = "true,test_one_label"
  validation.check_config(config)
  assert formatting.variant_title("test_one_label") == "one label"
  trainer = engine.Trainer(models.build("mlp_1", 10), engine.TrainConfig(max_epochs=2))
  n1 = training.train_n1(small_splits, trainer, "test_one_label", 0, np.arange(2))
  assert (n1.preds_d2 == 0).all() and n1.preds_test is None
