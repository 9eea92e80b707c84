"""Learnability curves: N2 on the first n examples of D2 for several n, and their summaries."""

import math

import numpy as np
import pytest

import learnjax
from learnjax import config as config_lib, curves, grid, guard, training, train_sizes, sweep
from learnjax.errors import LearnjaxError

K = 10   # the digits' classes
SIZES = [50, 100, 200, 400]


# ---- the arithmetic, against hand computations ---------------------------------------------

def test_code_length_against_a_hand_computation():
  # D2 = 6 examples, sizes 2, 4, 6, K = 4. First block: 2 labels at 2 bits. The N2 of size 2
  # codes examples 3 and 4 with p = 1/2 and 1/4 (1 + 2 bits); the N2 of size 4 codes 5 and 6
  # with p = 1 and 1/8 (0 + 3 bits). The N2 of size 6 codes nothing.
  log_probs = {2: np.log([[0.5, 0.25, 0.9, 0.9]]), 4: np.log([[1.0, 0.125]]),
               6: np.zeros((1, 0))}
  bits = curves.code_length([2, 4, 6], 4, log_probs)
  np.testing.assert_allclose(bits, [2 * 2 + 1 + 2 + 0 + 3])
  assert curves.uniform_code(6, 4) == 12.0


def test_auc_and_n_at_against_hand_computations():
  sizes_ = [10, 100, 1000]
  values = np.array([[50.0, 100.0, 100.0], [0.0, 0.0, 60.0]])
  # trapezoids over log n: (0.5 + 1) / 2 + (1 + 1) / 2 = 1.75 per decade-width, over 2 widths
  np.testing.assert_allclose(curves.auc(sizes_, values), [1.75 / 2, 0.3 / 2])
  at = curves.n_at(sizes_, values, 60.0)
  assert at[0] == 100 and at[1] == 1000
  assert np.isnan(curves.n_at(sizes_, values, 99.0)[1])
  assert np.isnan(curves.auc([10], [[50.0]])[0])


def test_sizes_lists_and_geometric_grids():
  assert train_sizes.parse(None) == [None] and train_sizes.parse(300) == [300]
  assert train_sizes.parse("400, 100,200") == [100, 200, 400]
  grid_ = train_sizes.parse("geometric:250:25000:5")
  assert grid_[0] == 250 and grid_[-1] == 25000 and len(grid_) == 5
  ratios = np.diff(np.log(grid_))
  np.testing.assert_allclose(ratios, ratios[0], rtol=1e-2)   # evenly spaced on a log axis
  assert train_sizes.d2_size("geometric:250:25000:5") == 25000
  for bad in ("geometric:250:25000", "geometric:5:4:3", "geometric:1:3:5", "100,,200", "100,100",
              "0,5", "ten"):
    with pytest.raises(LearnjaxError):
      train_sizes.parse(bad)


def _config(n2_size, **data):
  config = config_lib.base_config()
  config.data.n1_size, config.data.test_size = data.get("n1_size", 200), 100
  config.n1.model, config.n2.model = "mlp_1", "mlp_1"
  config.seeds, config.train.max_epochs = 2, 3
  if isinstance(n2_size, str):
    config_lib.set_n2_sizes(config, n2_size)
  else:
    config.data.n2_size = n2_size
  return config


def test_cell_ids_name_the_size_only_on_a_curve():
  single = [c.id for _, cells in grid.plan(_config(200)) for c in cells]
  assert single == ["true__mlp_1__b64__mlp_1__b64"]
  curve = [c.id for _, cells in grid.plan(_config("50,200")) for c in cells]
  assert curve == ["true__mlp_1__b64__mlp_1__b64__n50", "true__mlp_1__b64__mlp_1__b64__n200"]


def test_fingerprints_d2_is_the_largest_size_and_each_cell_names_its_own():
  a = guard.settings(_config("50,100,200"))
  b = guard.settings(_config("100,200"))
  assert a == b and a["data.n2_size"] == 200 == guard.settings(_config(200))["data.n2_size"]
  n1 = guard.n1_fields(a, {}, "true", "mlp_1", 64)
  assert (guard.cell_fields(n1, "mlp_1", 64, None, 50)
          != guard.cell_fields(n1, "mlp_1", 64, None, 100))
  assert "n2.train_size" not in guard.cell_fields(n1, "mlp_1", 64, None)   # one size: as before


# ---- properties of the code length (the default protocol: SGD 0.01, batch 64, 500 epochs) ------

def _code_bits(parts, labels_d2, seeds=2):
  """The prequential code of ``labels_d2`` (one N1, the same for every seed) over SIZES: the code
  models of each size below |D2| as the curve trains them, and curves.code_length."""
  from learnjax import engine, models, prequential
  trainer = _TRAINER.setdefault("mlp_1", engine.Trainer(models.build("mlp_1", K),
                                                        engine.TrainConfig()))
  labels = np.broadcast_to(np.asarray(labels_d2), (seeds, len(labels_d2)))
  coded = {n: prequential.fit_and_code(parts, trainer, labels, n, 0, np.arange(seeds))
           for n in SIZES[:-1]}
  return (curves.code_length(SIZES, K, {n: c.label_log_probs_after for n, c in coded.items()}),
          coded)


_TRAINER = {}


@pytest.fixture(scope="module")
def code_parts(digits_pool):
  from learnjax.data import splits
  return splits.make_splits(digits_pool, 300, 400, 200)


@pytest.mark.slow
def test_a_constant_n1_costs_its_first_block_and_almost_nothing_more(code_parts):
  bits, coded = _code_bits(code_parts, np.zeros(400, int))
  first, rest = SIZES[0] * math.log2(K), (SIZES[-1] - SIZES[0]) * math.log2(K)
  assert np.all(bits >= first) and np.all(bits <= first + 0.05 * rest), bits
  # Early stopping chose late epochs: the held-out loss kept falling.
  assert all(np.all(c.best_epoch > 20) for c in coded.values())
  assert [c.held_out for c in coded.values()] == [5, 10, 20]


@pytest.mark.slow
def test_a_random_hash_of_the_image_is_not_compressed(code_parts):
  import hashlib
  hashed = np.asarray([int(hashlib.sha256(x.tobytes()).hexdigest(), 16) % K
                       for x in np.asarray(code_parts.d2.x)])
  bits, coded = _code_bits(code_parts, hashed)
  uniform = curves.uniform_code(SIZES[-1], K)
  assert np.all(bits >= 0.95 * uniform), bits / uniform
  assert np.all(bits <= 1.1 * uniform), bits / uniform   # early stopping keeps the loss near chance


@pytest.mark.slow
def test_a_true_data_n1_lies_between(code_parts):
  bits, _ = _code_bits(code_parts, code_parts.d2.y)
  uniform = curves.uniform_code(SIZES[-1], K)
  first, rest = SIZES[0] * math.log2(K), (SIZES[-1] - SIZES[0]) * math.log2(K)
  assert np.all(bits > first + 0.05 * rest) and np.all(bits < 0.7 * uniform), bits / uniform


def _curve(labels_d2, labels_d3, seeds=2, **train):
  return learnjax.learnability((labels_d2, labels_d3), n2="mlp_1", seeds=seeds, n1_size=300,
                               n2_size=SIZES, test_size=200,
                               config={f"train.{k}": v for k, v in train.items()})


@pytest.mark.slow
def test_a_constant_n1_is_learned_at_every_size_and_costs_only_its_first_block():
  # The learnability N2s stop at 1 % training error after an epoch or two; the code does not
  # depend on them.
  curve = _curve(np.zeros(400, int), np.zeros(200, int))
  assert isinstance(curve, curves.Curve) and curve.sizes == SIZES
  np.testing.assert_array_equal(curve.learnability, 100.0)
  np.testing.assert_array_equal(curve.train_agreement, 100.0)
  first = SIZES[0] * math.log2(K)
  assert np.all(curve.code_bits >= first)
  assert np.all(curve.code_bits <= first + 0.05 * (400 - SIZES[0]) * math.log2(K))
  assert np.all(curve.n_at == SIZES[0]) and np.allclose(curve.auc, 1.0)
  assert np.all(curve.n_at_level(100.0) == SIZES[0]) and curve[SIZES[-1]].learnability.shape == (2,)
  # In a notebook: a short repr, a markdown table and a DataFrame, one row per (seed, size).
  text = repr(curve)
  assert text.startswith("<Curve predictions (given) -> mlp_1") and len(text) < 200
  assert "array(" not in text and "\n" not in text
  markdown = curve._repr_markdown_()
  rows = [line for line in markdown.splitlines() if line.startswith("| ") and line[2].isdigit()]
  assert [int(r.split("|")[1]) for r in rows] == SIZES and "AUC over log n" in markdown
  pd = pytest.importorskip("pandas")
  frame = curve.to_pandas()
  assert isinstance(frame, pd.DataFrame) and len(frame) == 2 * len(SIZES)
  assert list(frame.index.names) == ["seed", "n"]
  np.testing.assert_array_equal(frame["learnability"].to_numpy().reshape(2, -1), curve.learnability)
  assert list(curve.summary_frame().columns[:2]) == ["auc", "n_at"]


def test_n_at_per_seed_censored_beyond_the_largest_size():
  nan = np.nan
  assert curves.n_at_text([100, 200, 200, 400, nan], 400) == \
      "200; > 400 in 1 of 5 seeds (100, 200, 200, 400, > 400)"
  # One seed of five reaches the level: no median, the censored seeds said so.
  assert curves.n_at_text([400, nan, nan, nan, nan], 400) == \
      "> 400 in 4 of 5 seeds (400, > 400, > 400, > 400, > 400)"
  # An even count: the larger middle value, a measured size (never 150 from 100 and 200).
  assert curves.n_at_median([100, 200, 200, 100]) == 200
  assert np.isnan(curves.n_at_median([100, 200, nan, nan]))   # half is not more than half
  assert curves.n_at_median([100, 200, 300, nan]) == 300


# ---- the sweep: nesting, resume, the report ------------------------------------------------

def _run(config, workdir):
  lines = []
  return sweep.train_and_evaluate(config, str(workdir), out=lines.append), lines


def test_each_n2_saw_exactly_the_first_n_examples_of_d2_for_every_seed(tmp_path, monkeypatch):
  seen = []
  real = training.execution.train_seeds

  def recording(trainer, init_keys, order_keys, x, y, **kw):
    seen.append((np.asarray(x), np.asarray(y)))
    return real(trainer, init_keys, order_keys, x, y, **kw)

  monkeypatch.setattr(training.execution, "train_seeds", recording)
  config = _config("50,100,200")
  experiment = sweep.Experiment(config, str(tmp_path / "w"), out=lambda _: None)
  d2 = experiment.splits.d2.x
  cells, _ = _run(config, tmp_path / "w")
  n1_labels = np.load(tmp_path / "w" / "n1" / "true__mlp_1__b64" / "arrays.npz")["n1_preds_d2"]
  # The first call trains N1 on D1; then each size's N2 and, below |D2|, its code models, on the
  # first n - h examples (h = n / 10 held out for early stopping).
  assert [len(x) for x, _ in seen[1:]] == [50, 45, 100, 90, 200]
  for (x, y), n in zip(seen[1:], (50, 45, 100, 90, 200)):
    np.testing.assert_array_equal(x, d2[:n])
    assert y.shape == (config.seeds, n)
    np.testing.assert_array_equal(y, n1_labels[:, :n])
  assert [c["n2_size"] for c in cells] == [50, 100, 200]


class _Stop(Exception):
  pass


def test_an_interrupted_curve_finishes_the_rest_and_equals_an_uninterrupted_run(tmp_path,
                                                                                 monkeypatch):
  config = _config("50,100,200")
  whole, _ = _run(config, tmp_path / "whole")
  real = training.train_n2
  calls = []

  def stopping(*args, **kw):
    if len(calls) == 2:
      raise _Stop
    calls.append(kw.get("n2_size"))
    return real(*args, **kw)

  monkeypatch.setattr(training, "train_n2", stopping)
  with pytest.raises(_Stop):
    _run(config, tmp_path / "parts")
  assert calls == [50, 100]
  monkeypatch.setattr(training, "train_n2", real)
  resumed, lines = _run(config, tmp_path / "parts")
  assert "3 cells in this task (1 N1 trainings), 2 already done" in " ".join(lines)
  for a, b in zip(whole, resumed):
    assert a["cell"] == b["cell"]
    assert a["learnability"]["per_seed"] == b["learnability"]["per_seed"]
  for cell in whole:
    one = np.load(tmp_path / "whole" / "cells" / cell["cell"] / "arrays.npz")
    two = np.load(tmp_path / "parts" / "cells" / cell["cell"] / "arrays.npz")
    if cell["n2_size"] < 200:
      np.testing.assert_array_equal(one[curves.CODE_LOG_PROBS], two[curves.CODE_LOG_PROBS])
    else:
      assert curves.CODE_LOG_PROBS not in one   # the largest size codes nothing


def test_the_report_shows_the_curve_its_code_length_and_figure(tmp_path):
  from learnjax.report import document
  config = _config("50,100,200")
  _run(config, tmp_path / "w")
  markdown, figures = document.build_report(str(tmp_path / "w"))
  assert "Learnability curves" in markdown and "learnability_curves.png" in figures
  assert f"{200 * math.log2(K):.0f}" in markdown   # the uniform code of |D2| = 200
  assert "prequential code (bits)" in markdown and "n_at(90 %)" in markdown
  assert "n_at(50 %)" in document.build_report(str(tmp_path / "w"), curve_level=50)[0]
  assert "stored before code models" not in markdown
  # A curve stored before each size had a code model: its learnability N2s' probabilities are
  # no prequential code, and no number is shown under that name.
  from learnjax.store import Store
  store = Store(str(tmp_path / "w"))
  for cell in ("true__mlp_1__b64__mlp_1__b64__n50", "true__mlp_1__b64__mlp_1__b64__n100"):
    record, arrays = store.load("cells", cell)
    arrays = dict(arrays)
    arrays[curves.LEARNABILITY_N2_LOG_PROBS] = arrays.pop(curves.CODE_LOG_PROBS)
    store.save("cells", cell, record, arrays)
  old, _ = document.build_report(str(tmp_path / "w"))
  assert "– (stored before code models †)" in old and "no prequential code" in old


def test_the_api_gives_one_learnability_for_one_size():
  result = learnjax.learnability((np.zeros(100, int), np.zeros(100, int)), n2="mlp_1", seeds=1,
                                 n1_size=100, n2_size=100, test_size=100,
                                 config={"train.max_epochs": 1})
  assert isinstance(result, learnjax.Learnability)


def test_a_size_added_below_the_largest_reuses_the_stored_cells(tmp_path):
  first, _ = _run(_config("50,200"), tmp_path / "w")
  more, lines = _run(_config("50,100,200"), tmp_path / "w")
  assert "3 cells in this task (1 N1 trainings), 2 already done" in " ".join(lines)
  by_id = {c["cell"]: c for c in more}
  for c in first:
    assert by_id[c["cell"]]["learnability"] == c["learnability"]
  with pytest.raises(LearnjaxError, match="data.n2_size: 200 -> 100"):   # another D2
    _run(_config("50,100"), tmp_path / "w")
