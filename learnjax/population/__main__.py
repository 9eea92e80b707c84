r"""Trains, measures and reports a population:
``python -m learnjax.population --config=configs/generalisation_measures.py[:smoke] --workdir=W``.

Any field can be overridden (``--config.population.axes='n1.depth=1,2;n1.width=32,64'``,
``--config.seeds=3``). Started again with the same workdir, it resumes. ``--report_only`` trains
nothing: it computes the measures not yet stored and writes the report. Bad input gets one
``error:`` line and exit code 2, before anything is trained.
"""

from __future__ import annotations

import sys
import time

from absl import app, flags, logging
from ml_collections import config_flags

from learnjax.errors import LearnjaxError

_CONFIG = config_flags.DEFINE_config_file("config", None, "Population config file "
                                          "(configs/generalisation_measures.py[:smoke]).",
                                          lock_config=False)
_WORKDIR = flags.DEFINE_string("workdir", None, "Folder for the population (created if missing).")
_REPORT_ONLY = flags.DEFINE_bool("report_only", False, "Train nothing: compute missing measures "
                                 "and write the report.")
flags.mark_flags_as_required(["config", "workdir"])


def _fail(message: str, code: int = 2):
  print(f"error: {message}", file=sys.stderr)
  sys.exit(code)


def main(argv):
  if len(argv) > 1:
    _fail(f"unexpected arguments: {' '.join(argv[1:])}")
  logging.set_verbosity(logging.WARNING)
  try:
    config = _CONFIG.value
  except Exception as e:  # noqa: BLE001  a config file that failed to load
    _fail(" ".join(str(e).split())[:300])
  from learnjax.population import spec
  try:
    spec.check(config)
    from learnjax import validation
    validation.check_workdir(_WORKDIR.value)
  except LearnjaxError as e:
    _fail(str(e))
  from learnjax import checkpoint, failures
  from learnjax.population import report, run
  checkpoint.install_signal_handlers()
  start = time.time()
  try:
    if _REPORT_ONLY.value:
      run.compute_measures(config, _WORKDIR.value)
    else:
      run.train(config, _WORKDIR.value)
    text = report.write(_WORKDIR.value)
  except checkpoint.Preempted as e:
    _fail(f"stopped on SIGTERM ({e}); run the same command again to resume", code=143)
  except failures.MachineFailure as e:
    _fail(f"{e}; recorded as an attempt, not a result; run the same command again to resume",
          code=e.exit_code)
  except LearnjaxError as e:
    _fail(str(e))
  except KeyboardInterrupt:
    _fail(f"interrupted; finished work is kept in {_WORKDIR.value} and the same command resumes",
          code=130)
  print(text)
  print(f"population: {time.time() - start:.0f}s; report in {_WORKDIR.value}/report/report.md")


if __name__ == "__main__":
  app.run(main)
