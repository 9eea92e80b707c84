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
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Join a multi-process JAX job (jax.distributed.initialize: SLURM and "
    "Cloud TPU are detected, else give --coordinator_address/--num_processes/--process_id). Each "
    "process then takes its share of the experiment (task = process index) on its local devices.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port of process 0.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in the job.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index in the job.")
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
  task_index, num_tasks = _TASK_INDEX.value, _NUM_TASKS.value
  if _DISTRIBUTED.value:
    task_index, num_tasks = _join_distributed()
  try:
    results = sweep.train_and_evaluate(config, _WORKDIR.value, task_index, num_tasks)
  except LearnjaxError as e:
    _fail(str(e))
  except checkpoint.Preempted as e:
    _fail(f"stopped on SIGTERM ({e}); run the same command again to resume", code=143)
  except KeyboardInterrupt:
    _fail(f"interrupted; finished cells are kept in {_WORKDIR.value} and a restart resumes them",
          code=130)
  print()
  from learnjax.report import console
  print(console.summary(config, _WORKDIR.value, results))
  print(f"\nresults: {_WORKDIR.value}/results.json")


def _join_distributed() -> tuple[int, int]:
  import jax
  kwargs = {k: v for k, v in (("coordinator_address", _COORDINATOR.value),
                              ("num_processes", _NUM_PROCESSES.value),
                              ("process_id", _PROCESS_ID.value)) if v is not None}
  try:
    jax.distributed.initialize(**kwargs)
  except Exception as e:  # noqa: BLE001  no cluster found, coordinator unreachable...
    _fail(f"cannot join the distributed job: {_one_line(str(e))}")
  print(f"process {jax.process_index()} of {jax.process_count()}, "
        f"{jax.local_device_count()} local {jax.local_devices()[0].platform} device(s)", flush=True)
  return jax.process_index(), jax.process_count()


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
