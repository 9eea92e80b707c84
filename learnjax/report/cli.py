"""The report's command line: ``python -m learnjax.report --workdir=DIR [--reference=REF.json]
[--curve_level=90]``."""

from __future__ import annotations

import os
import sys

from learnjax import plugins
from learnjax.errors import LearnjaxError
from learnjax.report.document import build_report, write_report


def _flags():
  from absl import flags
  if "workdir" not in flags.FLAGS:
    flags.DEFINE_string("workdir", None, "Workdir of an experiment (python -m learnjax.main).")
    flags.DEFINE_string("out", None, "Folder for report.md and the figures (default WORKDIR/report).")
    flags.DEFINE_string("reference", None, "Optional JSON of reference numbers (see the module doc).")
    flags.DEFINE_float("curve_level", 90.0, "A learnability curve's n_at: the smallest N2 size "
                       "whose learnability reaches this percentage.")
    flags.DEFINE_string("plugins", "", "Modules (.py paths or names, comma-separated) to import "
                        "besides those the workdir's launches recorded (learnjax.plugins).")
  return flags.FLAGS


def _fail(message: str, code: int = 2):
  print(f"error: {message}", file=sys.stderr, flush=True)
  sys.exit(code)


def parse_flags(argv):
  from absl import flags
  try:
    return _flags()(argv)
  except flags.Error as e:
    _fail(str(e).splitlines()[0] if str(e) else "bad flags")


def main(argv):
  from absl import logging

  from learnjax.cli_input import tolerant_output
  tolerant_output()   # a path or message an ASCII console cannot show is printed with replacements
  if not _flags()["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # keeps matplotlib's font cache notices off the screen
  if len(argv) > 1:
    _fail(f"unexpected arguments: {' '.join(argv[1:])}")
  FLAGS = _flags()
  if not FLAGS.workdir:
    _fail("--workdir is required: the folder of an experiment run with python -m learnjax.main")
  if not 0 < FLAGS.curve_level <= 100:
    _fail(f"--curve_level must be a percentage in (0, 100], got {FLAGS.curve_level:g}")
  try:
    plugins.load_recorded(FLAGS.workdir)   # the workdir's own: their metrics, variants, sections
    plugins.load(FLAGS.plugins)
    markdown, figures = build_report(FLAGS.workdir, FLAGS.reference, curve_level=FLAGS.curve_level)
    path = write_report(markdown, figures, FLAGS.out or os.path.join(FLAGS.workdir, "report"))
  except LearnjaxError as e:
    _fail(str(e))
  print(path)


