r"""The report of an experiment: markdown tables and PNG figures from a workdir's stored results.

  python -m learnjax.report --workdir=DIR [--out=DIR/report] [--reference=FILE.json]

Reads only what :mod:`learnjax.store` holds (``config.json``, ``cells/*``, ``n1/*``); it never
trains and never imports the training engine. Writes ``report.md`` and the figures (PNG) into the
out folder and prints the markdown's path.

The analyses a report shows are found from what the experiment stored (:mod:`.analyses`: the grid
axes its ``config.json`` and cells vary, ``n2.model = none``, N1 snapshots), not from its name;
``experiment`` only gives the report its title. The families (docs/protocol.md section 5):

- more than one data variant (T1, T4, T5, T6, quickstart): rows = N1 model, columns =
  learnability per data variant and N1's test accuracy on true data; a bar chart of the same
  (learnability_per_variant.png).
- more than one N2 (T2, T13, T3): grids, rows = N1, columns = N2, entries = learnability; plus
  N1's parameter count (where the N1s differ in it, their number of parameter tensors, the
  paper's "layers") and test accuracy; a heatmap per data variant
  (learnability_grid_<variant>.png).
- N1 only (T7, D5): per (N1, variant), the percentage of D2 that N1 gives to each class (mean
  over seeds), beside the true labels of D2; bars per class, or for more than 20 classes the top
  5 classes in the table and the distributions sorted by share in the figure
  (class_distribution.png).
- one N1 architecture and one N2 (T8-T11, quickstart): per cell, the 2x2 table in percent of D3
  of [N1 correct] x [N2 agrees with N1].
- N1 varies alone (T12): N1 model, parameter count, learnability, N1 test accuracy.
- more than one N1 batch size (T14): rows = N1 model, columns = N1 batch size, entries =
  learnability ("OOM" for a cell that ran out of accelerator memory); the same for N1's test
  accuracy; a line plot (learnability_vs_batch_size.png).
- N1 snapshots (F1): learnability and N1 test error (100 - test accuracy) against N1's training
  epochs, one line per N1, error bars = std over seeds, N1's final state drawn at its mean number
  of epochs; N1's training-error history beside them (learnability_vs_epochs.png); and the table.
- N1 only with several seeds (D5): per N1, the k x k matrix of the percentage of D3 on which
  seeds i and j agree, and the histogram of the number of distinct predictions the k seeds make
  per D3 example (seed_agreement.png, distinct_predictions.png).

An experiment none of whose analyses apply gets only the generic table. Every report has a header
(data set, split sizes, seeds, training settings), notes (out-of-memory and diverged cells, grid entries
without a finished cell, networks that did not reach the stop error, N1s without finished cells),
and the generic table of every stored cell. The report shows what is stored; it cannot know which
cells a launch still has to run. Numbers are mean ± std over seeds (the stored population std), in
percent.

Reference numbers (``--reference``) are a JSON file::

  {"source": "Sharma et al., Table 2",
   "cells": [
     {"variant": "true", "n1_model": "shallow_cnn_16", "n2_model": "shallow_cnn_16",
      "n1_batch_size": 64, "n2_batch_size": 64, "n1_epoch": null,
      "learnability": 78.0, "n1_test_accuracy": 55.0, "n2_test_accuracy": 54.0,
      "note": "free text"}]}

Only ``cells`` and each entry's ``n1_model`` are required; besides the keys above, an entry may
give any metric of :data:`learnjax.metrics.REGISTRY` by its name; other keys are refused (to catch
typos). An entry matches a stored cell when every key it gives among ``variant``, ``n1_model``,
``n2_model``, ``n1_batch_size``, ``n2_batch_size`` equals the cell's (an absent key matches any
value), and its ``n1_epoch`` (absent: null, the final N1) equals the cell's. A number is a plain
number or ``{"mean": m, "std": s}``.

Every report with cells also gets the rank correlation between learnability and N1's test
accuracy and generalisation gap across its cells (:mod:`learnjax.report.correlation`,
learnability_vs_generalisation.png), and flags degenerate N1s (:mod:`learnjax.report.degenerate`):
an N1 that predicts nearly one class, or whose test accuracy on true data is at chance, has a
learnability that measures nothing.

Modules: ``context`` (loading, reference matching), ``analyses`` (which sections a report has),
``formatting`` and ``status`` (numbers, names,
what became of a cell), ``figures``, one module per family of analyses, named by
what it shows (``variants``, ``grids``, ``curves``, ``per_n1``, ``batch_size``,
``class_distribution``, ``correct_agree``, ``along_training``, ``seed_agreement``), ``correlation`` (its statistics in :mod:`learnjax.ranking`), ``degenerate``,
``notes`` and ``sections`` (parts every report has), ``document`` (assembling and writing),
``console`` (the table ``python -m learnjax.main`` prints) and ``cli``.
"""

from __future__ import annotations

from learnjax.report.context import Context, load, load_reference
from learnjax.report.correlation import bootstrap_tau, kendall_tau
from learnjax.report.seed_agreement import distinct_counts, seed_agreement
from learnjax.report.document import build_report, render, write_report
from learnjax.report.along_training import f1_points
from learnjax.report.class_distribution import class_distribution
from learnjax.report.correct_agree import correct_agree_table

__all__ = ["Context", "load", "load_reference", "bootstrap_tau", "kendall_tau", "distinct_counts",
           "seed_agreement", "build_report", "render", "write_report", "f1_points",
           "class_distribution", "correct_agree_table"]
