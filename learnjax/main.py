r"""Runs a learnability experiment: ``python -m learnjax.main --config=configs/NAME.py --workdir=DIR``.

Any config field can be overridden (``--config.n1.model=shallow_cnn --config.n1.width=256``,
``--config.data.variant=random_labels``, ``--config.seeds=3``). The run writes the resolved config,
one folder per finished cell and ``results.json`` into the workdir, and prints a table at the end.
Started again with the same workdir, it skips every finished cell. ``--gather_only`` trains
nothing: it gathers the finished cells into ``results.json`` and prints their table.

Every setting, the data and the workdir are checked before anything is trained: bad input gets one
``error: ...`` line and exit code 2. ``python -m learnjax.config`` lists every ``--config.*``
field with its default (also shown under ``--config`` in ``--help``).
"""

from __future__ import annotations

import dataclasses
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from learnjax import cli_input, config as config_lib, plugins, validation
from learnjax.errors import LearnjaxError

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file (configs/*.py[:arg]). Its fields, overridden with "
    "--config.FIELD=VALUE (defaults of learnjax/config.py; python -m learnjax.config lists "
    "them):\n" + config_lib.describe_fields(), lock_config=True)
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
_GATHER_ONLY = flags.DEFINE_bool(
    "gather_only", False, "Train nothing: gather the workdir's finished cells into results.json "
    "and print their table (exit 1 if some planned cells are unfinished).")
_WAIT_FOR_ROWS = flags.DEFINE_bool(
    "wait_for_rows", True, "Where another process trains an N1 row this launch shares (launches "
    "with other N2 models on one workdir), wait for it, then train this launch's cells of it. "
    "--nowait_for_rows leaves them and exits with code 75 (see the README's cluster section).")
_RETRY_OOM = flags.DEFINE_bool(
    "retry_out_of_memory", True, "Train again the cells that ran out of memory in an earlier "
    "launch on this workdir (a machine failure, never stored as a result). "
    "--noretry_out_of_memory leaves them, reported as out of memory: for cells known to be too "
    "big for this machine.")
flags.mark_flags_as_required(["config", "workdir"])


class _ConfigFileParser(flags.ArgumentParser):
  """The --config flag's parser: loads the file once, with learnjax's messages for a file that
  fails (ml_collections' own parser would load it too, and word its errors as absl's)."""

  def parse(self, argument):
    return cli_input.load_config_file(argument).lock()

  def flag_type(self):
    return "config object"


flags.FLAGS["config"].parser = _ConfigFileParser()


@dataclasses.dataclass(frozen=True)
class _Command:
  """What :func:`_parse_flags` hands to :func:`main`: absl's remaining arguments and the comma
  lists of batch sizes it was not given."""
  argv: list[str]
  list_overrides: list[tuple[str, str]]


def main(command: _Command):
  try:
    _main(command)
  except KeyboardInterrupt:
    where = f"finished cells are kept in {_WORKDIR.value}" if _WORKDIR.value else "nothing was written"
    _fail(f"interrupted; {where} and the same command resumes", code=130)


def _main(command: _Command):
  cli_input.tolerant_output()
  argv = command.argv
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # keeps JAX's backend probing off the screen
  # orbax logs a failed write (and asyncio its concurrent writes that failed too) with a
  # traceback from its own thread, then raises it here, where it becomes one error line.
  logging.get_absl_handler().addFilter(cli_input.not_an_orbax_echo)
  sys.unraisablehook = cli_input.quiet_closed_loop
  if len(argv) > 1:
    _fail(f"unexpected arguments: {' '.join(argv[1:])}")
  try:
    config = _CONFIG.value
    config.get("seeds")  # a config file that failed to load raises on first access
  except OSError as e:  # a config file that could not be loaded
    _fail(cli_input.one_line(str(e)))
  cli_input.apply_list_overrides(config, command.list_overrides)
  if "population" in config:
    _fail("this config describes a population of experiments; run it with python -m "
          "learnjax.population --config=... --workdir=...")
  pool = None
  try:  # settings and workdir, before JAX is imported: bad input is answered in about a second
    plugins.load(config.plugins)   # what they register is known to every check below
    validation.check_config(config)
    validation.check_workdir(_WORKDIR.value)
    if not _GATHER_ONLY.value:
      from learnjax.data import sources
      pool = sources.load_pool(config.data)  # loaded once: checked here, trained on by the run
      validation.check_data(config, _WORKDIR.value, pool)
  except LearnjaxError as e:
    _fail(str(e))
  if _GATHER_ONLY.value:
    _gather(config)
    return
  from learnjax import checkpoint, failures, sweep  # imports JAX; --help stays fast
  checkpoint.install_signal_handlers()
  task_index, num_tasks = _TASK_INDEX.value, _NUM_TASKS.value
  if _DISTRIBUTED.value:
    task_index, num_tasks = _join_distributed()
  resume = "finished cells are kept; run the same command again to resume"
  try:
    outcome = sweep.launch(config, _WORKDIR.value, task_index, num_tasks,
                           distributed=_DISTRIBUTED.value, pool=pool,
                           wait_for_rows=_WAIT_FOR_ROWS.value,
                           retry_out_of_memory=_RETRY_OOM.value)
  except LearnjaxError as e:
    _fail(str(e))
  except checkpoint.Preempted as e:
    _fail(f"stopped on SIGTERM ({e}); run the same command again to resume", code=143)
  except failures.MachineFailure as e:
    _fail(f"{e}; recorded as an attempt, not a result; {resume} ({_hint(e.kind)})",
          code=e.exit_code)
  except Exception as e:  # noqa: BLE001  a write outside any training (results.json, a lock...)
    kind = failures.classify(e)
    if kind is None:
      raise
    _fail(f"{failures.message(kind, e)}; {resume} ({_hint(kind)})",
          code=failures.EXIT_CODES[kind])
  print()
  from learnjax import store as store_lib
  from learnjax.report import console
  planned = set(outcome.planned)   # this task's cells: out of memory ones shown as such
  out_of_memory = [a for a in store_lib.Store(_WORKDIR.value).attempts("cells")
                   if a.get("failure") == failures.OUT_OF_MEMORY and a.get("cell") in planned]
  print(console.summary(config, _WORKDIR.value, outcome.cells + out_of_memory))
  print(f"\nresults: {_WORKDIR.value}/results.json")
  last = outcome.last_line()
  if last:
    print(f"error: {last}", file=sys.stderr, flush=True)
    sys.exit(outcome.exit_code)


def _hint(kind: str) -> str:
  from learnjax import failures
  return {failures.STORAGE: "free space on its disk, or move the workdir to a larger one",
          failures.DEVICE: "the accelerator failed or was lost",
          failures.OUT_OF_MEMORY: "a machine with more memory may fit it"}[kind]


def _gather(config) -> None:
  """Writes results.json from the finished cells, in plan order; trains nothing."""
  from learnjax import storage, store as store_lib, sweep
  from learnjax.report import console
  workdir = _WORKDIR.value
  plan_path = os.path.join(workdir, "plan.json")
  if not os.path.isfile(plan_path):
    _fail(f"{workdir} holds no plan.json: nothing was launched there; run without --gather_only")
  try:
    store = store_lib.Store(workdir)
    sweep.check_workdir_config(store, config)
    planned = _planned_cells(storage.read_json(plan_path), plan_path)
    store.write_summary(planned)
    results = store.summary_cells(planned)
  except LearnjaxError as e:
    _fail(str(e))
  print(console.summary(config, workdir, results))
  unfinished = len(set(planned) - {r["cell"] for r in results})
  print(f"\nresults: {workdir}/results.json ({len(results)} cells; {unfinished} planned cells "
        "unfinished)")
  if unfinished:
    sys.exit(1)


def _planned_cells(plan, path: str) -> list[str]:
  """The cell ids of a plan.json, refused unless it is what a launch writes."""
  cells = plan.get("cells") if isinstance(plan, dict) else None
  if not isinstance(cells, list) or not all(isinstance(c, str) for c in cells):
    raise LearnjaxError(f"{path} is not a learnjax plan (an object whose 'cells' lists cell ids); "
                        "run without --gather_only to write it again")
  return cells


def _join_distributed() -> tuple[int, int]:
  import jax
  kwargs = {k: v for k, v in (("coordinator_address", _COORDINATOR.value),
                              ("num_processes", _NUM_PROCESSES.value),
                              ("process_id", _PROCESS_ID.value)) if v is not None}
  try:
    jax.distributed.initialize(**kwargs)
  except Exception as e:  # noqa: BLE001  no cluster found, coordinator unreachable...
    _fail(f"cannot join the distributed job: {cli_input.one_line(str(e))}")
  print(f"process {jax.process_index()} of {jax.process_count()}, "
        f"{jax.local_device_count()} local {jax.local_devices()[0].platform} device(s)", flush=True)
  return jax.process_index(), jax.process_count()


def _parse_flags(argv) -> _Command:
  """absl's flag parsing, with a bad config file or override reported in one line."""
  kept, lists = cli_input.split_list_overrides(argv)
  try:
    return _Command(flags.FLAGS(kept), lists)
  except LearnjaxError as e:  # the config file (see _ConfigFileParser)
    _fail(str(e))
  except flags.Error as e:
    _fail(cli_input.one_line(str(e)))
  except Exception as e:  # noqa: BLE001  ml_collections raises plain errors for bad overrides
    _fail(f"bad config override: {cli_input.one_line(str(e))}")


def _fail(message: str, code: int = 2):
  print(f"error: {message}", file=sys.stderr, flush=True)
  sys.exit(code)


if __name__ == "__main__":
  with cli_input.interruptible("the launch", "finished cells are kept and the same command "
                               "resumes"):
    app.run(main, flags_parser=_parse_flags)
