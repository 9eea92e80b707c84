"""Splits D1/D2/D3 and the data variants of protocol.md sections 1-2."""

import jax
import numpy as np
import pytest

from learnjax.data import sources, splits, variants
from learnjax.errors import LearnjaxError


def test_embedded_digits_is_a_real_pool(digits_pool):
  assert digits_pool.x_train.shape == (1500, 8, 8, 1)
  assert digits_pool.x_test.shape == (297, 8, 8, 1)
  assert digits_pool.x_train.dtype == np.uint8 and digits_pool.num_classes == 10
  assert set(np.unique(digits_pool.y_train)) == set(range(10))


@pytest.mark.parametrize("sizes", [(None, None, None), (200, 300, 100), (1500 - 700, 700, 297)])
def test_splits_are_disjoint_with_configured_sizes(digits_pool, sizes):
  s = splits.make_splits(digits_pool, *sizes)
  n1, n2, n3 = splits.split_sizes(digits_pool, *sizes)
  assert (len(s.d1), len(s.d2), len(s.d3)) == (n1, n2, n3)
  assert not set(s.d1.index) & set(s.d2.index)
  # D1 is the head of the training split, D2 its tail, D3 the head of the test split.
  np.testing.assert_array_equal(s.d1.index, np.arange(n1))
  np.testing.assert_array_equal(s.d2.index, np.arange(1500 - n2, 1500))
  np.testing.assert_array_equal(s.d3.y, digits_pool.y_test[:n3])
  np.testing.assert_array_equal(s.d2.y, digits_pool.y_train[s.d2.index])


def test_default_split_is_the_two_halves(digits_pool):
  s = splits.make_splits(digits_pool)
  assert (len(s.d1), len(s.d2), len(s.d3)) == (750, 750, 297)


def test_normalisation_uses_the_training_pool(digits_pool):
  s = splits.make_splits(digits_pool)
  train = digits_pool.x_train.astype(np.float64)
  np.testing.assert_allclose(s.mean, [train.mean()], rtol=1e-6)
  np.testing.assert_allclose(s.std, [train.std()], rtol=1e-6)
  # The training pool (D1 and D2 together here) has mean 0 and std 1 after normalisation.
  both = np.concatenate([s.d1.x, s.d2.x])
  assert abs(both.mean()) < 1e-4 and abs(both.std() - 1) < 1e-4


@pytest.mark.parametrize("sizes, message", [((1000, 1000, None), "training images"),
                                            ((None, None, 1000), "test images"),
                                            ((0, None, None), "positive")])
def test_impossible_split_sizes_are_refused(digits_pool, sizes, message):
  with pytest.raises(LearnjaxError, match=message):
    splits.make_splits(digits_pool, *sizes)


def _keys(n):
  return jax.random.split(jax.random.PRNGKey(7), n)


def test_true_variant_keeps_the_labels(small_splits):
  d1 = small_splits.d1
  x, y = variants.n1_training_data(d1.x, d1.y, "true", _keys(3), 10)
  np.testing.assert_array_equal(np.asarray(x), d1.x)
  assert y.shape == (3, len(d1))
  np.testing.assert_array_equal(np.asarray(y), np.broadcast_to(d1.y, (3, len(d1))))


def test_random_labels_keep_images_and_draw_uniform_labels(small_splits):
  d1 = small_splits.d1
  x, y = variants.n1_training_data(d1.x, d1.y, "random_labels", _keys(3), 10)
  y = np.asarray(y)
  np.testing.assert_array_equal(np.asarray(x), d1.x)
  assert y.min() >= 0 and y.max() <= 9
  assert (y == d1.y).mean() < 0.25            # chance is 10%
  assert not np.array_equal(y[0], y[1])       # each seed its own labels
  counts = np.bincount(y.ravel(), minlength=10)
  assert counts.min() > 0.5 * counts.mean()   # roughly uniform
  again = np.asarray(variants.n1_training_data(d1.x, d1.y, "random_labels", _keys(3), 10)[1])
  np.testing.assert_array_equal(y, again)     # deterministic per key


def test_random_images_are_uniform_in_normalised_units(small_splits):
  d1 = small_splits.d1
  keys = _keys(2)
  x, y = variants.n1_training_data(d1.x, d1.y, "random_images", keys, 10)
  x, y = np.asarray(x), np.asarray(y)
  assert x.shape == (2,) + d1.x.shape
  assert x.min() >= -1 and x.max() <= 1 and abs(x.mean()) < 0.05
  assert abs(x.std() - np.sqrt(1 / 3)) < 0.02  # std of U(-1, 1)
  assert not np.array_equal(x[0], x[1])
  assert (y == d1.y).mean() < 0.25
  # A seed's variant does not depend on the other seeds computed beside it.
  alone = np.asarray(variants.n1_training_data(d1.x, d1.y, "random_images", keys[1:], 10)[0])
  np.testing.assert_array_equal(alone[0], x[1])


def test_unknown_variant_is_refused(small_splits):
  with pytest.raises(LearnjaxError, match="unknown data variant"):
    variants.n1_training_data(small_splits.d1.x, small_splits.d1.y, "shuffled", _keys(1), 10)


def test_npz_source_round_trip_and_errors(tmp_path):
  rng = np.random.default_rng(0)
  path = tmp_path / "data.npz"
  np.savez(path, x_train=rng.integers(0, 256, (20, 4, 4, 3), dtype=np.uint8),
           y_train=rng.integers(0, 3, 20), x_test=rng.integers(0, 256, (6, 4, 4, 3), dtype=np.uint8),
           y_test=np.array([0, 1, 2, 0, 1, 2]))
  pool = sources.load_npz(str(path))
  assert pool.num_classes == 3 and pool.image_shape == (4, 4, 3)
  np.savez(tmp_path / "bad.npz", y_train=np.zeros(3))
  with pytest.raises(LearnjaxError, match="lacks x_train"):
    sources.load_npz(str(tmp_path / "bad.npz"))
  with pytest.raises(LearnjaxError, match="no such"):
    sources.load_npz(str(tmp_path / "missing.npz"))
  (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04 truncated")
  with pytest.raises(LearnjaxError, match="cannot read"):
    sources.load_npz(str(tmp_path / "corrupt.npz"))


def test_pool_and_sources_form_no_import_cycle():
  import ast
  import learnjax.data.tfds_source as tfds_source
  tree = ast.parse(open(tfds_source.__file__).read())
  imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
  assert "learnjax.data.sources" not in imported and "learnjax.data.pool" in imported


def test_npz_class_count_comes_from_num_classes_or_class_names(tmp_path):
  x = np.zeros((6, 4, 4, 1), np.uint8)
  y = np.array([0, 1, 2, 0, 1, 2])
  np.savez(tmp_path / "n.npz", x_train=x, y_train=y, x_test=x, y_test=y, num_classes=5)
  assert sources.load_npz(str(tmp_path / "n.npz")).num_classes == 5
  np.savez(tmp_path / "c.npz", x_train=x, y_train=y, x_test=x, y_test=y,
           class_names=np.array(["cat", "dog", "owl", "yak"]))
  pool = sources.load_npz(str(tmp_path / "c.npz"))
  assert pool.num_classes == 4 and pool.class_names == ("cat", "dog", "owl", "yak")
  big = np.array([0, 1, 2, 0, 1, 2**32 + 3])  # would wrap to 3 through an int32 cast
  np.savez(tmp_path / "w.npz", x_train=x, y_train=big, x_test=x, y_test=y, num_classes=10)
  with pytest.raises(LearnjaxError, match="outside 0..9"):
    sources.load_npz(str(tmp_path / "w.npz"))


def test_the_data_record_names_what_changed(digits_pool):
  from learnjax.data import fingerprint, pool as pool_lib
  base = fingerprint.fingerprint(digits_pool, splits.make_splits(digits_pool, 200, 200, 100))
  assert base == fingerprint.fingerprint(digits_pool, splits.make_splits(digits_pool, 200, 200, 100))
  y = digits_pool.y_train.copy()
  y[-1] = (y[-1] + 1) % 10  # one label of D2
  other = pool_lib.Pool(digits_pool.name, digits_pool.x_train, y, digits_pool.x_test,
                        digits_pool.y_test, digits_pool.num_classes)
  changed = fingerprint.describe_changes(base, fingerprint.fingerprint(
      other, splits.make_splits(other, 200, 200, 100)))
  assert changed.startswith("training labels: sha256") and "images" not in changed
  moved = fingerprint.fingerprint(digits_pool, splits.make_splits(digits_pool, 200, 300, 100))
  assert "D2 positions: train[1300:1500] -> train[1200:1500]" in fingerprint.describe_changes(
      base, moved)


def test_a_local_npz_is_identified_by_its_content_not_its_file_name():
  from learnjax.data import fingerprint
  record = {"dataset": "e.npz", "num_classes": 10, "train_images": "a" * 64}
  renamed = {**record, "dataset": "renamed.npz"}
  assert fingerprint.describe_changes(record, renamed) == ""
  assert "training images" in fingerprint.describe_changes(record, {**renamed, "train_images": "b" * 64})
  assert fingerprint.describe_changes({**record, "dataset": "digits"}, record) != ""
