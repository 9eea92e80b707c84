"""tensorflow-datasets image sets (MNIST, CIFAR, Fashion-MNIST, SVHN, CMATERdb...): CPU only, no
network, no TensorFlow.

The prepared folders here are real tfds folders written by tfds's own builders and writer (real
dataset_info.json, array_record files, tfds's hash-ordered storage); only the builders' example
generators are replaced by a few tiny PNG images, and the download manager by nothing, so
preparing them needs neither TensorFlow nor the internet. Example i of a split is an image whose
pixels encode i and a label computed from i, so the tests can see that :func:`tfds_source.load`
puts every example back at its original position.

(``tfds.testing.mock_data`` is not used: it swaps the builder's data_dir for a folder that does not
exist, replaces ``as_data_source`` and the decoding with random examples, and gives CIFAR random
ids, so it would test the mock rather than the reading.)
"""

import json
import os
import re
import subprocess
import sys
import time
from unittest import mock

import numpy as np
import pytest

from learnjax.errors import LearnjaxError

SIZES = {"train": 40, "test": 12}
SHAPES = {"mnist": (28, 28, 1), "cifar10": (32, 32, 3), "cifar100": (32, 32, 3),
          "fashion_mnist": (28, 28, 1), "svhn_cropped": (32, 32, 3), "cmaterdb": (32, 32, 3)}
CLASSES = {"mnist": 10, "cifar10": 10, "cifar100": 100, "fashion_mnist": 10, "svhn_cropped": 10,
           "cmaterdb": 10}
ORIGINAL_ORDER = ("mnist", "cifar10", "cifar100", "fashion_mnist", "svhn_cropped")


def _image(name, i):
  """Example i's image: a gradient offset by i, so every example differs."""
  shape = SHAPES[name]
  return ((np.arange(np.prod(shape)).reshape(shape) + 3 * i) % 256).astype(np.uint8)


def _label(name, i):
  return (7 * i + 3) % CLASSES[name]


def _png(pixels):
  import io
  from PIL import Image
  buf = io.BytesIO()
  Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(buf, format="PNG")
  return buf.getvalue()


def _prepare_tiny(tfds, name, data_dir):
  """A real prepared tfds folder (array_record) of SIZES examples, made without TF or network."""
  from tensorflow_datasets.core import dataset_builder

  builder_cls = tfds.builder_cls(name)
  features = tfds.builder(name, data_dir=data_dir).info.features

  def examples(split):
    for i in range(SIZES[split]):
      ex = {"image": _png(_image(name, i)), "label": _label(name, i)}
      if "id" in features:              # what the CIFAR and SVHN builders write
        ex["id"] = f"{split}_{i:06d}" if name == "svhn_cropped" else f"{split}_{i:05d}"
      if name == "cifar100":
        ex["coarse_label"] = _label(name, i) % 20
      yield i, ex                       # the real builders' keys: the position in the archive

  class NoDownloads:
    downloaded_size = 0

  with mock.patch.object(builder_cls, "_split_generators",
                         lambda self, dl_manager: {s: examples(s) for s in SIZES}), \
       mock.patch.object(dataset_builder.DatasetBuilder, "_make_download_manager",
                         lambda self, **kwargs: NoDownloads()):
    builder = tfds.builder(name, data_dir=data_dir)
    builder.download_and_prepare(file_format="array_record")
  return builder.data_path


def _to_tfrecord(tfds, name, data_dir):
  """Rewrites a prepared folder in the tfrecord format (what `tfds build` writes by default)."""
  from learnjax.data.tfds_source import masked_crc32c

  builder = tfds.builder(name, data_dir=data_dir)
  path = os.fspath(builder.data_path)
  for split in SIZES:
    source = builder.as_data_source(split=split,
                                    deserialize_method=tfds.decode.DeserializeMethod.RAW_BYTES)
    with open(os.path.join(path, f"{name}-{split}.tfrecord-00000-of-00001"), "wb") as f:
      for record in source.__getitems__(list(range(len(source)))):
        header = len(record).to_bytes(8, "little")
        f.write(header + masked_crc32c(header).to_bytes(4, "little") + record
                + masked_crc32c(record).to_bytes(4, "little"))
    os.remove(os.path.join(path, f"{name}-{split}.array_record-00000-of-00001"))
  info_path = os.path.join(path, "dataset_info.json")
  with open(info_path) as f:
    info = json.load(f)
  info["fileFormat"] = "tfrecord"
  with open(info_path, "w") as f:
    json.dump(info, f)
  return path


@pytest.fixture(scope="module")
def tfds():
  return pytest.importorskip("tensorflow_datasets")


@pytest.fixture(scope="module")
def prepared(tfds, tmp_path_factory):
  """data_dir with tiny versions of every data set of SHAPES prepared as array_record."""
  root = tmp_path_factory.mktemp("tfds")
  for name in SHAPES:
    _prepare_tiny(tfds, name, str(root))
  return str(root)


@pytest.mark.parametrize("name", ORIGINAL_ORDER)
def test_load_restores_the_original_order_and_trains(prepared, name):
  import jax
  from learnjax import engine, models
  from learnjax.data import splits, tfds_source, variants

  pool = tfds_source.load(name, data_dir=prepared)
  assert pool.name == name and pool.num_classes == CLASSES[name]
  assert len(pool.class_names) == CLASSES[name]
  for split, n in SIZES.items():
    x, y = getattr(pool, f"x_{split}"), getattr(pool, f"y_{split}")
    assert x.shape == (n, *SHAPES[name]) and x.dtype == np.uint8
    assert y.shape == (n,) and y.dtype == np.int32
    # Example i of the original split is at position i (tfds stores them hash-ordered).
    np.testing.assert_array_equal(x, np.stack([_image(name, i) for i in range(n)]))
    np.testing.assert_array_equal(y, [_label(name, i) for i in range(n)])

  s = splits.make_splits(pool, 20, 20, 12)
  np.testing.assert_array_equal(s.d1.y, pool.y_train[:20])
  keys = jax.random.split(jax.random.PRNGKey(0), 2)
  x, y = variants.n1_training_data(s.d1.x, s.d1.y, "true", keys, pool.num_classes)
  trainer = engine.Trainer(models.build("mlp_1", pool.num_classes),
                           engine.TrainConfig(max_epochs=1))
  res = trainer.train(keys, keys, x, y, per_seed_x=False)
  assert list(res.epochs) == [1, 1] and np.isfinite(res.train_error).all()


@pytest.mark.parametrize("name", ["mnist", "cifar100"])
def test_a_tfrecord_folder_reads_the_same_without_tensorflow(tfds, prepared, tmp_path, name):
  from learnjax.data import tfds_source

  _prepare_tiny(tfds, name, str(tmp_path))
  _to_tfrecord(tfds, name, str(tmp_path))
  assert tfds.builder(name, data_dir=str(tmp_path)).info.file_format.value == "tfrecord"
  got, want = tfds_source.load(name, str(tmp_path)), tfds_source.load(name, prepared)
  for key in ("x_train", "y_train", "x_test", "y_test"):
    np.testing.assert_array_equal(getattr(got, key), getattr(want, key))


def test_a_damaged_tfrecord_file_is_one_clear_error(tfds, tmp_path):
  from learnjax.data import tfds_source

  _prepare_tiny(tfds, "cifar10", str(tmp_path))
  path = _to_tfrecord(tfds, "cifar10", str(tmp_path))
  shard = os.path.join(path, "cifar10-test.tfrecord-00000-of-00001")
  with open(shard, "r+b") as f:
    f.write(b"\xff")   # the first record's length
  with pytest.raises(LearnjaxError, match="cannot read the test split of cifar10.*corrupt"):
    tfds_source.load("cifar10", str(tmp_path))


@pytest.mark.parametrize("name", ["mnist", "cifar10", "cifar100"])
def test_missing_data_fails_fast_with_both_remedies(tfds, tmp_path, name):
  from learnjax.data import tfds_source

  start = time.time()
  with pytest.raises(LearnjaxError) as e:
    tfds_source.load(name, data_dir=str(tmp_path))
  assert time.time() - start < 5      # no download, no network wait
  assert os.listdir(tmp_path) == []   # and nothing written
  msg = str(e.value)
  assert "\n" not in msg
  assert name in msg and os.path.join(str(tmp_path), name) in msg
  assert f"python -m learnjax.data.tfds_source --prepare --name {name}" in msg
  assert "--config.data.data_dir=" in msg
  assert "--config.data.name=npz --config.data.npz_path=" in msg


def test_missing_data_names_the_default_folder_and_what_is_there(tfds, tmp_path, monkeypatch):
  from learnjax.data import tfds_source

  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
  os.makedirs(tmp_path / "cifar10" / "3.0.0")
  where = re.escape(os.path.join(str(tmp_path), "cifar10", "3.0.2"))
  with pytest.raises(LearnjaxError, match=f"{where}.*holds version 3.0.0"):
    tfds_source.load("cifar10")
  # data_dir pointing at the data set folder instead of the folder that holds it
  with pytest.raises(LearnjaxError, match="must be the folder that contains cifar10/"):
    tfds_source.load("cifar10", data_dir=str(tmp_path / "cifar10"))


def test_without_tensorflow_datasets_the_module_imports_and_says_what_to_install():
  code = ("import sys; sys.modules['tensorflow_datasets'] = None\n"
          "from learnjax.data import tfds_source\n"
          "try:\n  tfds_source.load('cifar10')\n"
          "except Exception as e:\n  print(type(e).__name__, e)\n")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert out.returncode == 0, out.stderr
  assert out.stdout.startswith("LearnjaxError") and "pip install tensorflow-datasets" in out.stdout


def test_preparing_without_tensorflow_says_what_to_install(tfds, tmp_path, monkeypatch):
  from learnjax.data import tfds_source

  monkeypatch.setitem(sys.modules, "tensorflow", None)
  with pytest.raises(LearnjaxError, match=r"needs TensorFlow: pip install -e '\.\[tfds\]' in the"):
    tfds_source.prepare("mnist", data_dir=str(tmp_path))
  assert os.listdir(tmp_path) == []


def test_class_names_come_from_the_metadata(prepared):
  from learnjax.data import tfds_source

  assert tfds_source.load("fashion_mnist", prepared).class_names[:2] == ("T-shirt/top", "Trouser")
  assert tfds_source.load("mnist", prepared).class_names == tuple(str(i) for i in range(10))


def test_a_set_of_unknown_archive_order_keeps_the_stored_order(tfds, prepared):
  """cmaterdb's builder keys are not positions: learnjax keeps tfds's (deterministic) order."""
  from learnjax.data import tfds_source

  pool = tfds_source.load("cmaterdb", prepared)
  builder = tfds.builder("cmaterdb", data_dir=prepared)
  for split, n in SIZES.items():
    source = builder.as_data_source(split=split)
    stored = [source[i] for i in range(n)]
    np.testing.assert_array_equal(getattr(pool, f"x_{split}"), [ex["image"] for ex in stored])
    np.testing.assert_array_equal(getattr(pool, f"y_{split}"), [ex["label"] for ex in stored])
    # the same examples as the original, in another order
    want = sorted((_label("cmaterdb", i), _image("cmaterdb", i).tobytes()) for i in range(n))
    got = sorted((int(y), x.tobytes()) for x, y in zip(getattr(pool, f"x_{split}"),
                                                      getattr(pool, f"y_{split}")))
    assert got == want


def test_a_set_without_one_image_and_one_class_label_is_refused(tfds):
  from learnjax.data import tfds_source

  info = lambda features: mock.Mock(features=tfds.features.FeaturesDict(features))
  image = tfds.features.Image(shape=(8, 8, 3))
  assert tfds_source.find_features(tfds, info({"image": image, "label": tfds.features.ClassLabel(
      num_classes=3), "coarse": tfds.features.ClassLabel(num_classes=2)}), "x") == ("image",
                                                                                  "label")
  assert tfds_source.find_features(tfds, info({"picture": image, "digit": tfds.features.ClassLabel(
      num_classes=3)}), "x") == ("picture", "digit")
  with pytest.raises(LearnjaxError, match="needs one image and one class-label feature"):
    tfds_source.find_features(tfds, info({"image": image, "text": tfds.features.Text()}), "x")
  with pytest.raises(LearnjaxError, match="images vary in size"):
    tfds_source.find_features(tfds, tfds.builder("oxford_flowers102", data_dir="/nonexistent").info,
                              "oxford_flowers102")


def test_unknown_name_is_refused(tfds, tmp_path):
  from learnjax.data import tfds_source

  with pytest.raises(LearnjaxError, match="unknown data set 'no_such_set'") as e:
    tfds_source.load("no_such_set", str(tmp_path))
  assert "\n" not in str(e.value) and "npz_path" in str(e.value)
  # a real tfds name that is not prepared: the missing-data message
  with pytest.raises(LearnjaxError, match="svhn_cropped is not prepared"):
    tfds_source.load("svhn_cropped", str(tmp_path))


def test_tfrecord_framing_matches_tensorflow(tmp_path):
  from learnjax.data.tfds_source import _tfrecords, masked_crc32c

  # The bytes tf.io.TFRecordWriter (TensorFlow 2.21) writes for the record b"abc".
  written = bytes.fromhex("0300000000000000" "b099490e" "616263" "6e57f121")
  assert masked_crc32c(written[:8]) == int.from_bytes(written[8:12], "little")
  assert masked_crc32c(b"abc") == int.from_bytes(written[15:], "little")
  path = tmp_path / "x.tfrecord"
  path.write_bytes(written * 2)
  assert _tfrecords(str(path)) == [b"abc", b"abc"]
  path.write_bytes(written[:-1])
  with pytest.raises(ValueError, match="ends inside a record"):
    _tfrecords(str(path))
