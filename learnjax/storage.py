"""Files written whole or not at all: the storage primitives every record of a workdir uses.

Every file is written to a temporary name in its folder and renamed into place
(:func:`atomic_write_bytes`), or created once by exactly one of several racing processes
(:func:`create_once`), so a killed run leaves at most a stray ``.tmp-*`` file, never a
half-written one. Files get the mode the umask gives new files (as ``open`` does), so colleagues
sharing a workdir can read them.
"""

from __future__ import annotations

import errno
import io
import json
import os
import tempfile
from typing import Any

import numpy as np

from learnjax.errors import LearnjaxError


def _file_mode() -> int:
  """0666 less the process's umask: the mode ``open`` gives a new file (mkstemp gives 0600)."""
  umask = os.umask(0o022)
  os.umask(umask)
  return 0o666 & ~umask


FILE_MODE = _file_mode()


def atomic_write_bytes(path: str, data: bytes) -> None:
  folder = os.path.dirname(path) or "."
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-" + os.path.basename(path))
  try:
    os.fchmod(fd, FILE_MODE)
    with os.fdopen(fd, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def atomic_write_json(path: str, obj: Any) -> None:
  atomic_write_bytes(path, (json.dumps(obj, indent=1, default=_json_default) + "\n").encode())


def atomic_write_npz(path: str, arrays: dict[str, np.ndarray]) -> None:
  buffer = io.BytesIO()
  np.savez_compressed(buffer, **arrays)
  atomic_write_bytes(path, buffer.getvalue())


def _json_default(value):
  if isinstance(value, np.ndarray):
    return value.tolist()
  if isinstance(value, np.generic):
    return value.item()
  raise TypeError(f"cannot store {type(value).__name__} as JSON")


def read_json(path: str, hint: str = "") -> Any:
  """A JSON file; a LearnjaxError naming it (and ``hint``, what to do) if it cannot be read."""
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError) as e:
    raise LearnjaxError(f"cannot read {path}: {e}{'; ' + hint if hint else ''}") from None


def read_npz(path: str) -> dict[str, np.ndarray]:
  try:
    with np.load(path) as data:
      return {k: data[k] for k in data.files}
  except Exception as e:  # truncated or foreign file
    raise LearnjaxError(f"cannot read {path}: {e}; delete its folder to recompute it") from None


def create_once(path: str, data: bytes) -> bool:
  """Creates ``path`` holding ``data`` unless it exists; whether this call created it.

  The content is written to a temporary file and hard-linked into place, so the file appears
  complete or not at all, and only one of several racing processes creates it. File systems
  without hard links (gcsfuse) get an exclusive create (``O_EXCL``) instead.
  """
  folder = os.path.dirname(path) or "."
  fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-" + os.path.basename(path))
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.chmod(tmp, FILE_MODE)
    try:
      os.link(tmp, path)
      return True
    except FileExistsError:
      return False
    except OSError as e:
      if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EXDEV):
        raise
    try:
      out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
      return False
    with os.fdopen(out, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    return True
  finally:
    os.remove(tmp)
