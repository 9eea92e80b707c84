"""What stopped a training: the machine, or the settings and data.

Only what the settings and data determine is a result: a diverged training is stored as one (its
cell's status says so). What the machine determines is not: running out of memory (the
accelerator's or the host's), a write to the workdir that failed (a full disk, a quota, an I/O
error) and a lost device are recorded as an *attempt* (``attempts/<kind>/<id>.json`` in the
workdir), reported, and retried by the next launch, where a larger machine or a freed disk may
succeed.

A failure is told by its cause, not by its message: every write learnjax makes to the workdir
goes through :func:`writing`, so a failed write is a :class:`StorageError` whatever its library
calls it (a checkpoint library that reports a full disk as ``RESOURCE_EXHAUSTED`` included), and
an ``OSError`` anywhere in an exception's cause chain is a storage failure too. Only the
accelerator runtime's own ``RESOURCE_EXHAUSTED`` (or Python's ``MemoryError``) is out of memory.

This module imports no JAX.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import sys

OUT_OF_MEMORY = "out_of_memory"
STORAGE = "storage"
DEVICE = "device"

# The exit code of a launch that ends on each kind of failure (documented in the README's
# cluster section). 75 (EX_TEMPFAIL): cells left to another process, which is still training them.
EXIT_CODES = {OUT_OF_MEMORY: 3, STORAGE: 4, DEVICE: 5}
EXIT_ROWS_ELSEWHERE = 75
EXIT_INTERRUPTED = 130

DESCRIPTIONS = {OUT_OF_MEMORY: "out of memory", STORAGE: "cannot write to the workdir",
                DEVICE: "accelerator failure"}

# The accelerator runtime's status words of a device that failed or went away.
_DEVICE_STATUSES = ("UNAVAILABLE", "DATA_LOSS", "ABORTED", "DEADLINE_EXCEEDED")
_DEVICE_INTERNAL = re.compile(r"CUDA|cuDNN|NCCL|ECC|device (was )?lost|TPU|driver", re.I)
_STATUS = re.compile(r"^\s*([A-Z_]{4,}):")
_OS_ERROR_CODE = re.compile(r"os_error_code='?(\d+)")
# Programming errors inside a write keep their traceback: they are bugs, not a failing disk.
_BUGS = (TypeError, AttributeError, NameError, AssertionError, KeyError, IndexError)


class MachineFailure(Exception):
  """A launch stopped, or left units unfinished, because of the machine: ``kind`` says which
  (its exit code is ``EXIT_CODES[kind]``). The units are recorded as attempts, not results."""

  def __init__(self, kind: str, message: str):
    self.kind = kind
    self.exit_code = EXIT_CODES[kind]
    super().__init__(message)


class MachineFailureWarning(UserWarning):
  """Cells of a finished ``learnjax.run`` that the machine left unmeasured (out of memory)."""


class StorageError(Exception):
  """A write to the workdir failed: a full disk, a quota, a read-only or failing file system."""

  def __init__(self, path: str, cause: BaseException):
    self.path = path
    self.cause = cause
    self.errno = _errno_of(cause)
    super().__init__(f"{path}: {describe_cause(cause)}")


@contextlib.contextmanager
def writing(path: str):
  """Runs a write to ``path``; any failure of it (but a bug or an interruption) is re-raised as a
  :class:`StorageError` caused by it."""
  try:
    yield
  except StorageError:
    raise
  except _BUGS:
    raise
  except Exception as e:  # noqa: BLE001  each storage library raises its own types
    raise StorageError(path, e) from e


def _chain(error: BaseException):
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    yield error
    error = error.__cause__ or error.__context__


def _errno_of(error: BaseException) -> int | None:
  for e in _chain(error):
    if isinstance(e, OSError) and e.errno:
      return e.errno
    match = _OS_ERROR_CODE.search(str(e))   # tensorstore: [os_error_code='28']
    if match:
      return int(match.group(1))
  return None


def describe_cause(error: BaseException) -> str:
  """'No space left on device' where an errno is known, else the error's first line."""
  code = _errno_of(error)
  if code:
    return os.strerror(code)
  text = str(error).strip().splitlines()
  return f"{type(error).__name__}: {text[0][:300]}" if text else type(error).__name__


def _is_accelerator_error(error: BaseException) -> bool:
  jax_errors = sys.modules.get("jax.errors")
  runtime = getattr(jax_errors, "JaxRuntimeError", None)
  if runtime is not None and isinstance(error, runtime):
    return True
  return type(error).__name__ in ("XlaRuntimeError", "JaxRuntimeError")


def classify(error: BaseException) -> str | None:
  """The machine failure behind ``error`` (:data:`OUT_OF_MEMORY`, :data:`STORAGE`,
  :data:`DEVICE`), or None: a bad input, a bug, or anything else the settings determine."""
  chain = list(_chain(error))
  for e in chain:   # a failed write first: it is never out of memory, whatever it says
    if isinstance(e, StorageError) or isinstance(e, OSError) and e.errno is not None:
      return STORAGE
  for e in chain:
    if isinstance(e, MemoryError):   # the host's memory
      return OUT_OF_MEMORY
    if _is_accelerator_error(e):
      match = _STATUS.match(str(e))
      status = match.group(1) if match else ""
      if status == "RESOURCE_EXHAUSTED":
        return OUT_OF_MEMORY
      if status in _DEVICE_STATUSES or status == "INTERNAL" and _DEVICE_INTERNAL.search(str(e)):
        return DEVICE
  return None


def message(kind: str, error: BaseException) -> str:
  """One line for a failure of ``kind``."""
  if kind == STORAGE:
    storage = next((e for e in _chain(error) if isinstance(e, StorageError)), None)
    if storage is not None:
      return f"{DESCRIPTIONS[kind]}: {storage}"
    os_error = next((e for e in _chain(error) if isinstance(e, OSError)), error)
    where = f": {os_error.filename}" if getattr(os_error, "filename", None) else ""
    return f"{DESCRIPTIONS[kind]}: {describe_cause(os_error)}{where}"
  first = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
  return f"{DESCRIPTIONS[kind]}: {first}"


def free_space(path: str) -> int | None:
  """Free bytes on the file system of ``path`` (or of its nearest existing parent); None where
  it cannot be read."""
  path = os.path.abspath(path)
  while not os.path.exists(path) and os.path.dirname(path) != path:
    path = os.path.dirname(path)
  try:
    return shutil.disk_usage(path).free
  except OSError:
    return None


def is_out_of_memory(error: BaseException) -> bool:
  return classify(error) == OUT_OF_MEMORY


@dataclasses.dataclass
class Outcome:
  """What a launch did: its finished cells, and the cells it did not finish and why."""
  cells: list[dict]
  failed: list[tuple[str, str, str, int]]   # (unit, failure kind, message, cells it held)
  rows_elsewhere: list[str]                # N1 rows left to another process (no waiting)
  not_retried: list[str]                   # cells out of memory before, left (no retrying)
  planned: list[str] = dataclasses.field(default_factory=list)   # this task's cell ids

  @property
  def exit_code(self) -> int:
    """0 when every cell of this launch is measured (or left out on purpose); else the code of
    its failure (:data:`learnjax.EXIT_CODES`) or ``EXIT_ROWS_ELSEWHERE``."""
    if self.failed:
      return EXIT_CODES[self.failed[0][1]]
    return EXIT_ROWS_ELSEWHERE if self.rows_elsewhere else 0

  def last_line(self) -> str | None:
    """The line that says why the launch is not complete; None when it is."""
    if self.failed:
      cells = sum(n for *_, n in self.failed)
      kinds = sorted({DESCRIPTIONS[k] for _, k, _, _ in self.failed})
      return (f"{cells} cell{'s' if cells != 1 else ''} not measured ({', '.join(kinds)}: "
              f"{'; '.join(u for u, *_ in self.failed[:3])}"
              f"{' ...' if len(self.failed) > 3 else ''}); recorded as attempts, not results: "
              "the same command retries them (--noretry_out_of_memory leaves those out of "
              "memory)")
    if self.rows_elsewhere:
      rows = len(self.rows_elsewhere)
      return (f"{rows} N1 row{'s are' if rows != 1 else ' is'} being trained by another process "
              f"({', '.join(self.rows_elsewhere[:3])}); its cells of this launch are not "
              "trained yet: run the same command again once it finishes (or without "
              "--nowait_for_rows to wait for it)")
    return None
