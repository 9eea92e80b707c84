r"""Runs a learnability experiment: ``python -m learnjax.main --config=configs/NAME.py --workdir=DIR``.

Any config field can be overridden (``--config.n1.model=shallow_cnn --config.n1.width=256``,
``--config.data.variant=random_labels``, ``--config.seeds=3``). The run writes the resolved config,
one folder per finished cell and ``results.json`` into the workdir, and prints a table at the end.
Started again with the same workdir, it skips every finished cell.
"""

from __future__ import annotations

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from learnjax.errors import LearnjaxError

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file (configs/*.py[:arg]).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Folder for results (created if missing).")
_TASK_INDEX = flags.DEFINE_integer("task_index", 0, "This process's share of the experiment: "
                                   "0..num_tasks-1.")
_NUM_TASKS = flags.DEFINE_integer("num_tasks", 1, "Processes sharing the experiment.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # keeps JAX's backend probing off the screen
  if len(argv) > 1:
    _fail(f"unexpected arguments: {' '.join(argv[1:])}")
  try:
    config = _CONFIG.value
    config.get("seeds")  # a config file that failed to load raises on first access
  except OSError as e:  # a config file that could not be loaded
    _fail(_one_line(str(e)))
  from learnjax import checkpoint, sweep  # imports JAX; after flag parsing: --help stays fast
  checkpoint.install_signal_handlers()
  try:
    results = sweep.train_and_evaluate(config, _WORKDIR.value, _TASK_INDEX.value,
                                       _NUM_TASKS.value)
  except LearnjaxError as e:
    _fail(str(e))
  except checkpoint.Preempted as e:
    _fail(f"stopped on SIGTERM ({e}); run the same command again to resume", code=143)
  except KeyboardInterrupt:
    _fail(f"interrupted; finished cells are kept in {_WORKDIR.value} and a restart resumes them",
          code=130)
  print()
  print(sweep.format_table(results))
  print(f"\nresults: {_WORKDIR.value}/results.json")


def _parse_flags(argv):
  """absl's flag parsing, with a bad config file or override reported in one line."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    _fail(_one_line(str(e)))
  except Exception as e:  # noqa: BLE001  ml_collections raises plain errors for bad overrides
    _fail(f"bad config override: {_one_line(str(e))}")


def _one_line(message: str) -> str:
  """The gist of a config error that may carry a traceback or escaped newlines."""
  message = message.replace("\\'", "").replace("\\n", "\n").replace('"', "").strip("' \n")
  lines = [line.strip() for line in message.splitlines() if line.strip()]
  if any(line.startswith("Traceback") for line in lines):
    head = lines[0].rstrip(":")
    return f"{head}: {lines[-1]}"
  return " ".join(lines)


def _fail(message: str, code: int = 2):
  print(f"error: {message}", file=sys.stderr, flush=True)
  sys.exit(code)


if __name__ == "__main__":
  app.run(main, flags_parser=_parse_flags)
