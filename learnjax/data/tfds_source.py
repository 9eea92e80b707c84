"""Image classification sets of tensorflow-datasets, read offline, without TensorFlow.

Any prepared tfds data set with a ``train`` and a ``test`` split, one fixed-size image feature and
one class-label feature is read by name (``mnist``, ``cifar10``, ``fashion_mnist``,
``svhn_cropped``, ``emnist/balanced``, ``stl10``...): the features are found from its features
dict (``image`` and ``label`` where a set has several), its number of classes and class names come
from its metadata.

Reading (:func:`load`) needs tensorflow-datasets and Pillow, never TensorFlow and never the network:
it reads a data set already *prepared* under ``data_dir`` (``--config.data.data_dir``, else
``$TFDS_DATA_DIR``, else ``~/tensorflow_datasets``) and stops with one :class:`LearnjaxError` that
says how to provide the data when it is not there. It never starts a download.

- A folder prepared in the ``array_record`` (or ``parquet``) format is read through tfds's random
  access data source, in batches, with image decoding left to Pillow.
- A folder prepared in tfds's default ``tfrecord`` format (``tfds build``, ``tfds.load``) is read
  too: TFRecord framing is simple (length, CRC of the length, bytes, CRC of the bytes), so its
  records are read here and parsed by tfds's own TensorFlow-free example parser. Record counts
  are checked against the data set's metadata and every length CRC is checked.

Preparing needs TensorFlow (tfds encodes the images with ``tf.image`` and opens the archives with
``tf.io.gfile``) and, in tensorflow-datasets 4.9.10, ``importlib_resources``, which tfds uses but
does not declare (tensorflow/datasets#11212). ``pip install -e '.[tfds]'`` in the learnjax checkout
brings both; then ::

    python -m learnjax.data.tfds_source --prepare --name cifar10 --data_dir DIR

downloads the original archives and writes ``DIR/cifar10/3.0.2/`` in the ``array_record`` format.
``--manual_dir FOLDER`` takes the original archives from a folder instead of the internet (their
checksums are still checked). Copy ``DIR/<name>`` to an offline machine and pass
``--config.data.data_dir=<the folder that holds it>``.

Order. tfds does not store examples in the order of the original archives: its writer sorts them
by ``md5(split name + str(key))``. The protocol's D1 is the *first* half of the training split, as
in the original archives (and in torchvision or Keras). :func:`load` therefore puts every example
back at its original position where the builder's keys allow it:

- CIFAR-10 / CIFAR-100 from their ``id`` feature (``train_00042`` is the 43rd image of the archive);
- the builders whose key is the example's position in the original file (:data:`POSITION_KEYED`:
  MNIST, Fashion-MNIST, KMNIST, EMNIST, SVHN (cropped), STL-10) by recomputing the writer's hash
  order; for MNIST this is checked on the real data set against the first ten labels of the
  original files.

Every other data set keeps the order of its prepared files: tfds's deterministic hash order, the
same for every copy prepared by the same tensorflow-datasets version (it is a fixed shuffle of the
original order, so D1 and D2 are still disjoint samples of the training split).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import socket
import struct
import sys
import urllib.parse
import urllib.request

import numpy as np

from learnjax.data.pool import TFDS_NAMES, Pool, pool_from_arrays
from learnjax.errors import LearnjaxError

SPLITS = ("train", "test")
PREPARE_COMMAND = "python -m learnjax.data.tfds_source --prepare --name {name} --data_dir DIR"
NPZ_HINT = ("--config.data.name=npz --config.data.npz_path=FILE (an .npz with x_train, y_train, "
            "x_test, y_test: uint8 images N,H,W,C and integer labels)")
_CHUNK = 4096  # records per batched read
_RANDOM_ACCESS_FORMATS = ("array_record", "parquet")
# Builders (tfds 4.9) whose example key is the example's position in the original archive.
POSITION_KEYED = ("mnist", "fashion_mnist", "kmnist", "emnist", "svhn_cropped", "stl10")
ID_KEYED = ("cifar10", "cifar100")  # an 'id' feature '<split>_<position>'

# The first labels of the original MNIST files (train-labels-idx1-ubyte, t10k-labels-idx1-ubyte):
# a check that the hash order below really is the order the prepared folder was written in.
_MNIST_HEAD = {"train": (60000, (5, 0, 4, 1, 9, 2, 1, 3, 1, 4)),
               "test": (10000, (7, 2, 1, 0, 4, 1, 4, 9, 5, 9))}


def resolve_data_dir(data_dir: str | None = None) -> str:
  """The tfds data folder: ``data_dir``, else ``$TFDS_DATA_DIR``, else ``~/tensorflow_datasets``."""
  data_dir = data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
  return os.path.abspath(os.path.expanduser(os.fspath(data_dir)))


def load(name: str, data_dir: str | None = None) -> Pool:
  """The train and test splits of a prepared tfds data set, in the original archives' order
  where it is known (see the module's docstring), else in the prepared files' order.

  Images come back as uint8 (N, H, W, C) arrays (MNIST 28x28x1, CIFAR 32x32x3), labels as int32
  ('label' where a set has several: CIFAR-100's 100 fine classes), ``num_classes`` and
  ``class_names`` from the data set's metadata.
  """
  tfds = _import_tfds(name)
  root = resolve_data_dir(data_dir)
  builder = _builder(tfds, name, root)
  if not _is_prepared(builder):
    raise LearnjaxError(missing_message(name, root, builder))
  info = builder.info
  image_key, label_key = find_features(tfds, info, name)
  lacking = [s for s in SPLITS if s not in info.splits]
  if lacking:
    raise LearnjaxError(f"{name} has no {' or '.join(lacking)} split (it has "
                        f"{', '.join(info.splits) or 'none'}); learnjax cuts D1 and D2 from 'train' "
                        f"and D3 from 'test': convert it to arrays and pass {NPZ_HINT}")
  arrays = {}
  for split in SPLITS:
    try:
      arrays[f"x_{split}"], arrays[f"y_{split}"] = _read_split(tfds, builder, name, split,
                                                               image_key, label_key)
    except (OSError, ValueError, RuntimeError, SyntaxError, struct.error) as e:
      raise LearnjaxError(f"cannot read the {split} split of {name} in {builder.data_path}: {e} "
                          f"(a damaged or partial copy? prepare it again with "
                          f"{PREPARE_COMMAND.format(name=name)})") from e
  source = f"tensorflow-datasets {name} {info.version} in {builder.data_path}"
  label = info.features[label_key]
  return pool_from_arrays(name, arrays, source=source, num_classes=int(label.num_classes),
                          class_names=tuple(label.names) if label.names else None)


def find_features(tfds, info, name: str) -> tuple[str, str]:
  """(image feature, class-label feature) of a data set: the only one of each kind, or the ones
  named 'image' and 'label'; one error when there is no such pair or the images vary in size."""
  features = dict(info.features.items())
  images = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
  labels = [k for k, f in features.items() if isinstance(f, tfds.features.ClassLabel)]
  pick = lambda keys, preferred: preferred if preferred in keys else (
      keys[0] if len(keys) == 1 else None)
  image, label = pick(images, "image"), pick(labels, "label")
  if image is None or label is None:
    raise LearnjaxError(
        f"{name} is not an image classification set learnjax can read: it needs one image and one "
        f"class-label feature, and has {', '.join(f'{k} ({type(f).__name__})' for k, f in features.items())}; "
        f"convert it to arrays and pass {NPZ_HINT}")
  shape = tuple(features[image].shape)
  if None in shape or len(shape) != 3:
    raise LearnjaxError(f"{name}'s images vary in size ({shape}); learnjax needs images of one "
                        f"size: resize them and pass {NPZ_HINT}")
  return image, label


def _builder(tfds, name: str, root: str):
  from tensorflow_datasets.core import registered
  try:
    return tfds.builder(name, data_dir=root, try_gcs=False)
  except registered.DatasetNotFoundError:
    raise LearnjaxError(
        f"unknown data set '{name}': neither digits, npz nor a tensorflow-datasets name (see "
        f"tfds.list_builders(); a configuration is named like emnist/balanced); or convert your "
        f"copy of the data to arrays and pass {NPZ_HINT}") from None


def missing_message(name: str, root: str, builder=None) -> str:
  """One line: the missing data set, where it was looked for, and the two ways to provide it."""
  where = os.fspath(builder.data_path) if builder is not None else os.path.join(root, name)
  hints = []
  dataset_dir = os.path.join(root, name)
  found = sorted(v for v in _listdir(dataset_dir) if _is_version(v))
  if found and builder is not None:
    hints.append(f"{dataset_dir} holds version {', '.join(found)}, but this tensorflow-datasets "
                 f"reads version {builder.version}")
  if os.path.isfile(os.path.join(root, "dataset_info.json")) or any(map(_is_version,
                                                                       _listdir(root))):
    hints.append(f"data_dir must be the folder that contains {name}/, not the data set folder "
                 "itself")
  hint = f" ({'; '.join(hints)})" if hints else ""
  return (f"{name} is not prepared in {where}{hint}; learnjax reads a prepared "
          f"tensorflow-datasets folder and never downloads (data_dir: --config.data.data_dir, "
          f"else $TFDS_DATA_DIR, else ~/tensorflow_datasets). Either prepare it on a machine with "
          f"internet access: pip install -e '.[tfds]' (in the learnjax checkout) && "
          f"{PREPARE_COMMAND.format(name=name)}, copy DIR/{name} to this "
          f"machine and pass --config.data.data_dir=<the folder that holds {name}/>; or convert "
          f"your copy of the data to arrays and pass {NPZ_HINT}")


def prepare(name: str, data_dir: str | None = None, manual_dir: str | None = None) -> str:
  """Downloads (or takes from ``manual_dir``) and prepares ``name`` as array_record; its folder."""
  tfds = _import_tfds(name)
  try:
    import tensorflow  # noqa: F401  (tfds prepares these data sets with tf.image and tf.io.gfile)
  except ImportError:
    raise LearnjaxError(f"preparing {name} needs TensorFlow: pip install -e '.[tfds]' in the "
                        "learnjax checkout (or tensorflow-cpu); reading the prepared folder "
                        "afterwards does not") from None
  try:
    import importlib_resources  # noqa: F401
  except ImportError:
    raise LearnjaxError("tensorflow-datasets needs importlib_resources to prepare a data set but "
                        "does not declare it (tensorflow/datasets#11212): pip install "
                        "importlib_resources") from None
  from tensorflow_datasets.core.download.download_manager import NonMatchingChecksumError

  root = resolve_data_dir(data_dir)
  builder = _builder(tfds, name, root)
  if _is_prepared(builder):
    return os.fspath(builder.data_path)
  manual_dir = os.path.abspath(os.path.expanduser(manual_dir)) if manual_dir else None
  urls = {url: info.filename for url, info in (type(builder).url_infos or {}).items()}
  files = sorted(f for f in urls.values() if f)
  manual_hint = (f"without internet access, put the original files ({', '.join(files)}) in a "
                 f"folder and add --manual_dir FOLDER")
  # tfds retries a failing download for about 3.5 minutes; find out at once that there is no way
  # (unless a proxy is configured, which a direct connection would not use).
  needed = {_host_port(url) for url, f in urls.items()
            if not (manual_dir and f and os.path.isfile(os.path.join(manual_dir, f)))}
  proxied = urllib.request.getproxies()
  unreachable = [] if proxied else sorted(h for h, port in needed if not _reachable(h, port))
  if unreachable:
    raise LearnjaxError(f"cannot prepare {name}: {', '.join(unreachable)} is not reachable; "
                        f"{manual_hint}")
  config = tfds.download.DownloadConfig(manual_dir=manual_dir)
  try:
    builder.download_and_prepare(file_format="array_record", download_config=config)
  except NonMatchingChecksumError as e:
    raise LearnjaxError(f"could not prepare {name}: a file is not the original ("
                        f"{' '.join(str(e).split())}); use the unmodified files") from e
  except OSError as e:
    raise LearnjaxError(f"could not prepare {name} in {root}: {' '.join(str(e).split())}; "
                        f"{manual_hint}") from e
  return os.fspath(builder.data_path)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(
      prog="python -m learnjax.data.tfds_source",
      description="Prepare a tensorflow-datasets image classification set (mnist, cifar10, "
                  "fashion_mnist, svhn_cropped...) for learnjax (needs TensorFlow and, without "
                  "--manual_dir, internet access), or check a prepared folder.")
  parser.add_argument("--prepare", action="store_true",
                      help="download and prepare the data set (array_record format)")
  parser.add_argument("--name", required=True, help=f"a tfds name, e.g. {', '.join(TFDS_NAMES)}")
  parser.add_argument("--data_dir", default=None,
                      help="tfds data folder (default $TFDS_DATA_DIR, else ~/tensorflow_datasets)")
  parser.add_argument("--manual_dir", default=None,
                      help="folder with the original archives, used instead of downloading them")
  args = parser.parse_args(argv)
  try:
    if args.prepare:
      print(f"prepared {args.name} in {prepare(args.name, args.data_dir, args.manual_dir)}")
    pool = load(args.name, args.data_dir)
  except LearnjaxError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(f"{pool.name}: train {pool.x_train.shape}, test {pool.x_test.shape}, "
        f"{pool.num_classes} classes, read from {resolve_data_dir(args.data_dir)}")
  return 0


def _host_port(url: str) -> tuple[str, int]:
  parts = urllib.parse.urlsplit(url)
  return parts.hostname or url, parts.port or (80 if parts.scheme == "http" else 443)


def _reachable(host: str, port: int, timeout: float = 10.0) -> bool:
  try:
    socket.create_connection((host, port), timeout=timeout).close()
    return True
  except OSError:
    return False


# ---- reading ---------------------------------------------------------------------------------

def _import_tfds(name: str = ""):
  try:
    import tensorflow_datasets as tfds
  except ImportError as e:
    what = (f"the {name} source needs" if name in TFDS_NAMES else
            f"unknown data set '{name}': not digits or npz, and the tensorflow-datasets sets need")
    raise LearnjaxError(f"{what} tensorflow-datasets ({e}): "
                        f"pip install tensorflow-datasets (or use --config.data.name=digits, or "
                        f"{NPZ_HINT})") from None
  try:  # tfds < 4.9.10 may look for prepared data on gs://tfds-data; learnjax reads local folders
    from tensorflow_datasets.core.utils import gcs_utils
    gcs_utils._is_gcs_disabled = True  # pylint: disable=protected-access
  except (ImportError, AttributeError):
    pass
  return tfds


def _listdir(path: str) -> list[str]:
  try:
    return os.listdir(path)
  except OSError:
    return []


def _is_version(s: str) -> bool:
  parts = s.split(".")
  return len(parts) == 3 and all(p.isdigit() for p in parts)


def _is_prepared(builder) -> bool:
  # Checking the file first keeps tfds from logging a warning for a folder that is not there.
  return (os.path.isfile(os.path.join(os.fspath(builder.data_path), "dataset_info.json"))
          and builder.is_prepared())


def _read_split(tfds, builder, name: str, split: str, image_key: str = "image",
                label_key: str = "label") -> tuple[np.ndarray, np.ndarray]:
  """(images, labels) of one split, each example at its position in the original archive where
  the builder's keys tell it, else in stored order."""
  info = builder.info
  n = int(info.splits[split].num_examples)
  shape = tuple(info.features[image_key].shape)
  has_id = builder.name in ID_KEYED and "id" in info.features
  position = (None if has_id else _hash_positions(split, n) if builder.name in POSITION_KEYED
              else np.arange(n))
  x = np.empty((n, *shape), np.uint8)
  y = np.empty((n,), np.int64)
  filled = np.zeros((n,), bool)
  for start, examples in _record_chunks(tfds, builder, split, n, image_key):
    for k, ex in enumerate(examples):
      i = _id_position(ex["id"], split, n) if has_id else position[start + k]
      if filled[i]:
        raise ValueError(f"two examples claim position {i}")
      x[i] = _decode_image(ex[image_key], shape)
      y[i] = ex[label_key]
      filled[i] = True
  if not filled.all():
    raise ValueError(f"{int((~filled).sum())} of {n} examples are missing")
  if name == "mnist":
    size, head = _MNIST_HEAD[split]
    if n == size and tuple(y[:len(head)]) != head:
      raise ValueError("the examples are not stored in the order this tensorflow-datasets writes, "
                       "so their original order cannot be restored")
  return x, y


def _record_chunks(tfds, builder, split: str, n: int, image_key: str = "image"):
  """Yields (start, examples) with the examples in stored order, images left encoded."""
  info = builder.info
  decoders = {image_key: tfds.decode.SkipDecoding()}
  formats = {f.value for f in info.available_file_formats()}
  if formats & set(_RANDOM_ACCESS_FORMATS):
    source = builder.as_data_source(split=split, decoders=decoders)
    if len(source) != n:
      raise ValueError(f"{len(source)} records, the metadata says {n}")
    for start in range(0, n, _CHUNK):
      yield start, source.__getitems__(list(range(start, min(n, start + _CHUNK))))
  elif "tfrecord" in formats:
    split_info = info.splits[split]
    start, chunk = 0, []
    for path, length in zip(split_info.filepaths, split_info.shard_lengths):
      records = _tfrecords(os.fspath(path))
      if len(records) != length:
        raise ValueError(f"{path} holds {len(records)} records, the metadata says {length}")
      for record in records:
        chunk.append(info.features.deserialize_example_np(record, decoders=decoders))
        if len(chunk) == _CHUNK:
          yield start, chunk
          start, chunk = start + len(chunk), []
    if chunk:
      yield start, chunk
  else:
    raise ValueError(f"unsupported file format {', '.join(sorted(formats)) or 'none'}")


def _hash_positions(split: str, n: int) -> np.ndarray:
  """Original position of each stored example: tfds's writer sorts keys by md5(split + str(key))."""
  salted = hashlib.md5(split.encode())

  def digest(key: int) -> str:
    h = salted.copy()
    h.update(str(key).encode())
    return h.hexdigest()

  return np.array(sorted(range(n), key=digest), dtype=np.int64)


def _id_position(example_id, split: str, n: int) -> int:
  """CIFAR's ids are '<split>_<position in the archive, 5 digits>'."""
  text = example_id.decode() if isinstance(example_id, bytes) else str(example_id)
  prefix, _, number = text.rpartition("_")
  if prefix != split or not number.isdigit() or int(number) >= n:
    raise ValueError(f"unexpected example id {text!r} in the {split} split")
  return int(number)


def _decode_image(data: bytes, shape: tuple[int, ...]) -> np.ndarray:
  try:
    from PIL import Image
  except ImportError:
    raise LearnjaxError("reading tensorflow-datasets images needs Pillow: "
                        "pip install pillow") from None
  with Image.open(io.BytesIO(data), formats=("PNG", "JPEG")) as image:
    pixels = np.asarray(image)
  if pixels.dtype != np.uint8 or pixels.size != np.prod(shape):
    raise ValueError(f"an image decoded to {pixels.dtype} {pixels.shape}, expected uint8 {shape}")
  return pixels.reshape(shape)


# ---- TFRecord files, without TensorFlow -------------------------------------------------------

def _tfrecords(path: str) -> list[bytes]:
  """The records of an uncompressed TFRecord file; each record's length CRC is checked."""
  with open(path, "rb") as f:
    data = f.read()
  records, offset = [], 0
  while offset < len(data):
    if offset + 12 > len(data):
      raise ValueError(f"{path} ends inside a record header")
    header = data[offset:offset + 8]
    (length,) = struct.unpack("<Q", header)
    (length_crc,) = struct.unpack_from("<I", data, offset + 8)
    if length_crc != masked_crc32c(header):
      raise ValueError(f"{path}: corrupt record header at byte {offset}")
    start = offset + 12
    if start + length + 4 > len(data):
      raise ValueError(f"{path} ends inside a record")
    records.append(data[start:start + length])
    offset = start + length + 4
  return records


def _crc32c_table() -> list[int]:
  table = []
  for i in range(256):
    c = i
    for _ in range(8):
      c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    table.append(c)
  return table


_CRC32C_TABLE = _crc32c_table()


def masked_crc32c(data: bytes) -> int:
  """TFRecord's masked CRC-32C (Castagnoli) of ``data``."""
  crc = 0xFFFFFFFF
  for b in data:
    crc = _CRC32C_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
  crc ^= 0xFFFFFFFF
  return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


if __name__ == "__main__":
  sys.exit(main())
