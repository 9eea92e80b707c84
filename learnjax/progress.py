"""Progress lines for long trainings: epoch, per-seed training error, seeds done, rate.

Seeds are numbered from 0, as in the store (``per_seed`` lists, checkpoint folders) and the report.
"""

from __future__ import annotations

import sys
import time

import numpy as np


class EpochPrinter:
  """An ``on_epoch`` callback that prints at most one line per ``interval`` seconds.

  A line is always printed when a seed group finishes, so every training ends with its final
  epoch and errors on screen.
  """

  def __init__(self, label: str, num_examples: int, num_seeds: int, max_epochs: int,
               interval: float = 5.0, stream=None):
    self.label = label
    self.num_examples = num_examples
    self.num_seeds = num_seeds
    self.max_epochs = max_epochs
    self.interval = interval
    self.stream = stream or sys.stdout
    self._start = time.time()
    self._last = 0.0
    self._samples = 0

  def __call__(self, log, state, seeds):
    del state
    self._samples += int(log.trained.sum()) * self.num_examples
    now = time.time()
    finished = bool(log.done.all()) or log.epoch >= self.max_epochs
    if not finished and now - self._last < self.interval:
      return
    self._last = now
    rate = self._samples / max(now - self._start, 1e-9)
    errors = " ".join(f"{100 * e:5.1f}" for e in np.asarray(log.train_error))
    first, last = int(seeds[0]), int(seeds[-1])   # numbered from 0, as in the store and report
    which = f"seed {first}" if first == last else f"seeds {first}-{last}"
    show(f"  {self.label} | {which} of {self.num_seeds} | epoch {log.epoch:4d}/{self.max_epochs}"
         f" | train err % {errors} | lr {np.nanmax(log.learning_rate):.2g}"
         f" | stopped {int(log.done.sum())}/{len(log.done)} | {_si(rate)} samples/s",
         self.stream)


def show(line: str, stream=None) -> None:
  """Prints a line; a console that cannot show a character gets a replacement, and one that
  cannot be written at all (closed, a broken pipe) loses the line: printing never stops a run."""
  stream = stream or sys.stdout
  try:
    print(line, file=stream, flush=True)
  except UnicodeEncodeError:
    encoding = getattr(stream, "encoding", None) or "ascii"
    show(line.encode(encoding, errors="replace").decode(encoding, errors="replace"), stream)
  except (OSError, ValueError):
    pass


def tolerant(out):
  """``out`` (a function taking a line, such as ``print``) made unable to stop a run: a line it
  cannot encode is passed again with replacements, and a failed write loses only that line."""
  def call(line: str) -> None:
    try:
      out(line)
    except UnicodeEncodeError:
      try:
        out(line.encode("ascii", errors="replace").decode("ascii"))
      except (OSError, ValueError):
        pass
    except (OSError, ValueError):
      pass
  return call


def _si(x: float) -> str:
  for unit, scale in (("M", 1e6), ("k", 1e3)):
    if x >= scale:
      return f"{x / scale:.1f}{unit}"
  return f"{x:.0f}"
