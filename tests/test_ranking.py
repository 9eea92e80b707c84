"""learnjax.ranking: tau-b, the seed bootstrap, the permutation p-value, the verdict rule and the
granulated coefficient, against scipy and hand enumeration."""

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from learnjax import ranking


def test_tau_b_equals_scipy_with_and_without_ties():
  rng = np.random.default_rng(0)
  for n in (2, 3, 5, 9, 30):
    for _ in range(5):
      x = rng.integers(0, 4, n).astype(float)   # many ties
      y = rng.normal(size=n)
      expected = stats.kendalltau(x, y).statistic
      got = ranking.kendall_tau(x, y)
      assert (np.isnan(expected) and np.isnan(got)) or got == pytest.approx(expected, abs=1e-12)
  assert ranking.kendall_tau([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / np.sqrt(6))
  assert np.isnan(ranking.kendall_tau([1, 1, 1], [1, 2, 3]))
  # Rows of a batch are independent taus.
  xs = rng.normal(size=(4, 6))
  ys = rng.normal(size=(4, 6))
  np.testing.assert_allclose(ranking.tau_b(xs, ys),
                             [stats.kendalltau(a, b).statistic for a, b in zip(xs, ys)])


def _brute_force_p(x, y):
  """Two-sided exact permutation p of tau-b, every ordering through scipy."""
  observed = abs(stats.kendalltau(x, y).statistic)
  taus = [abs(stats.kendalltau(x, np.asarray(y)[list(p)]).statistic)
          for p in itertools.permutations(range(len(y)))]
  return np.mean([t >= observed - 1e-12 for t in taus])


def test_exact_permutation_p_value_equals_enumeration():
  rng = np.random.default_rng(1)
  for n in (3, 4, 5, 6):
    x, y = rng.normal(size=n), rng.normal(size=n)
    p, smallest = ranking.permutation_test(x, y)
    assert p == pytest.approx(_brute_force_p(x, y))
    assert smallest == pytest.approx(2 / math.factorial(n))   # tau = +1 and -1, no ties
  # With ties more orderings reach the largest |tau|: [0, 0, 1] against distinct y.
  p, smallest = ranking.permutation_test([0, 0, 1], [1, 2, 3])
  assert p == pytest.approx(_brute_force_p([0, 0, 1], [1, 2, 3]))
  assert smallest == pytest.approx(4 / 6)   # y[2] the largest or the smallest of three


def test_monte_carlo_p_value_agrees_with_the_exact_null_distribution():
  rng = np.random.default_rng(2)
  x = np.arange(12.0)
  y = x + rng.normal(scale=6.0, size=12)
  p = ranking.permutation_p_value(x, y)
  exact = stats.kendalltau(x, y, method="exact").pvalue   # no ties: the exact null
  assert abs(p - exact) < 4 * np.sqrt(exact * (1 - exact) / ranking.PERMUTATIONS) + 1e-3
  # Reproducible: a fixed generator.
  assert ranking.permutation_p_value(x, y) == p


def test_seed_bootstrap_resamples_paired_seeds():
  # Every cell's seeds move together: seed 0 is high in every cell, seed 1 low. A resample
  # shares its seed indices across cells, so the cell order never changes: a zero-width interval.
  cells = [np.asarray([c + 1.0, c - 1.0, c, c + 0.5, c - 0.5]) for c in range(5)]
  lo, hi = ranking.bootstrap_interval(cells, [np.full(5, c) for c in range(5)])
  assert lo == hi == 1.0
  # Independent seed noise larger than the cell spread: a wide interval.
  rng = np.random.default_rng(3)
  noisy = [c * 0.1 + rng.normal(size=5) for c in range(5)]
  lo, hi = ranking.bootstrap_interval(noisy, [np.full(5, c) for c in range(5)])
  assert lo < 0 < hi


def _cells(n, seeds=5, noise=0.01, slope=1.0, rng=None):
  rng = rng or np.random.default_rng(4)
  target = [np.full(seeds, float(c)) + rng.normal(scale=noise, size=seeds) for c in range(n)]
  measure = [slope * t + rng.normal(scale=noise, size=seeds) for t in target]
  return measure, target


def test_verdict_needs_cells_seeds_p_and_interval():
  ev = ranking.correlate(*_cells(8))
  assert ev.sign == 1 and ev.reason == "" and ev.p_value < 0.05 and ev.lo > 0
  assert ranking.correlate(*_cells(8, slope=-1.0)).sign == -1
  # 3 or 4 cells: no ordering can reach p < 0.05, whatever the seeds say.
  for n in (3, 4):
    ev = ranking.correlate(*_cells(n))
    assert ev.tau == 1.0 and ev.sign == 0 and "too few cells" in ev.reason
  assert "too few cells (2; 3 needed)" in ranking.correlate(*_cells(2)).reason
  # Two seeds: the seed bootstrap cannot bound tau.
  ev = ranking.correlate(*_cells(8, seeds=2))
  assert ev.sign == 0 and ev.reason.startswith("too few seeds (2")
  # Seed noise as large as the cell spread: interval across 0 (and p large).
  rng = np.random.default_rng(5)
  measure = [rng.normal(size=5) for _ in range(8)]
  target = [np.full(5, float(c)) for c in range(8)]
  ev = ranking.correlate(measure, target)
  assert ev.sign == 0 and "includes 0" in ev.reason
  # A constant target: tau undefined, said so.
  ev = ranking.correlate(measure, [np.ones(5)] * 8)
  assert ev.sign == 0 and "undefined" in ev.reason


def test_item_bootstrap_for_one_network_per_item():
  rng = np.random.default_rng(6)
  x = np.arange(20.0)
  y = x + rng.normal(scale=2.0, size=20)
  ev = ranking.correlate(x, y, interval="items", noun="networks")
  assert ev.sign == 1 and ev.seeds == 1 and ev.lo > 0
  assert ev.text().endswith("(20 networks)")


def sweep(models=8, variants=3, batch_sizes=(32, 64)):
  return [{"variant": v, "model": f"m{m}", "batch": b}
          for v, m, b in itertools.product(range(variants), range(models), batch_sizes)]


def test_psi_is_one_for_a_measure_equal_to_the_target():
  keys = sweep()
  gap = np.random.default_rng(0).normal(size=len(keys))
  g = ranking.granulated(keys, gap, gap)
  assert [a.axis for a in g.per_axis] == ["variant", "model", "batch"]
  assert all(a.psi == pytest.approx(1.0) and a.skipped == 0 for a in g.per_axis)
  # Groups of cells that differ in the axis alone: 8 x 2 for the variant, 3 x 2 for the model.
  assert [a.groups for a in g.per_axis] == [16, 6, 24]
  assert g.psi == pytest.approx(1.0) and g.axes == 3 and g.lo == g.hi == 1.0


def test_psi_is_about_zero_for_an_independent_measure():
  keys = sweep(models=20, variants=4, batch_sizes=(32, 64, 128))
  rng = np.random.default_rng(1)
  g = ranking.granulated(keys, rng.normal(size=len(keys)), rng.normal(size=len(keys)),
                         interval="items")
  sizes = {"variant": 4, "model": 20, "batch": 3}
  for a in g.per_axis:
    # Under independence tau over n cells has mean 0 and variance 2(2n + 5) / (9n(n - 1)).
    n = sizes[a.axis]
    sd = np.sqrt(2 * (2 * n + 5) / (9 * n * (n - 1)) / a.groups)
    assert abs(a.psi) < 4 * sd, a
    assert a.lo < a.psi < a.hi
  assert abs(g.psi) < 0.15 and g.lo < 0 < g.hi


def test_psi_by_hand_and_its_seed_interval():
  # Two models x two batch sizes, two seeds; psi computed by hand from the group taus.
  keys = [{"model": m, "batch": b} for m in ("a", "b", "c") for b in (32, 64)]
  measure = [np.array([1.0, 1.2]), np.array([2.0, 2.2]), np.array([3.0, 2.8]),
             np.array([1.0, 0.8]), np.array([2.5, 2.5]), np.array([0.0, 0.2])]
  target = [np.array([1.0, 1.0]), np.array([2.0, 2.0]), np.array([3.0, 3.0]),
            np.array([4.0, 4.0]), np.array([5.0, 5.0]), np.array([6.0, 6.0])]
  g = ranking.granulated(keys, measure, target)
  m = [v.mean() for v in measure]
  t = [v.mean() for v in target]
  by_batch = [stats.kendalltau([m[i] for i in (0, 2, 4)], [t[i] for i in (0, 2, 4)]).statistic,
              stats.kendalltau([m[i] for i in (1, 3, 5)], [t[i] for i in (1, 3, 5)]).statistic]
  by_model = [stats.kendalltau([m[i], m[i + 1]], [t[i], t[i + 1]]).statistic
              for i in (0, 2, 4)]
  axes = {a.axis: a for a in g.per_axis}
  assert axes["model"].psi == pytest.approx(np.mean(by_batch))
  assert axes["batch"].psi == pytest.approx(np.mean(by_model))
  assert g.psi == pytest.approx((np.mean(by_batch) + np.mean(by_model)) / 2) and g.axes == 2
  assert g.lo <= g.psi <= g.hi


def test_groups_without_two_distinct_values_are_skipped_and_counted():
  keys = [{"variant": v, "model": m} for v in range(2) for m in range(3)]
  gap = np.arange(len(keys), dtype=float)
  measure = np.asarray([k["variant"] for k in keys], float)   # constant along the model axis
  measure[0] = np.nan                                          # one cell without the measure
  axes = {a.axis: a for a in ranking.granulated(keys, measure, gap).per_axis}
  assert axes["model"].groups == 0 and axes["model"].skipped == 2
  assert np.isnan(axes["model"].psi)
  # Along the variant: model 0's group has one cell left, so it is skipped; two groups remain.
  assert axes["variant"].groups == 2 and axes["variant"].skipped == 1


def test_the_permutation_test_of_any_statistic():
  """For tau it is the vectorised test; one-sided, a perfect order of 6 items is 1 of 6!."""
  rng = np.random.default_rng(1)
  x, y = rng.normal(size=6), rng.normal(size=6)
  assert ranking.permutation_test_of(ranking.kendall_tau, x, y) == pytest.approx(
      ranking.permutation_test(x, y))
  x = np.arange(6.0)
  p, min_p = ranking.permutation_test_of(ranking.kendall_tau, x, x, alternative="greater")
  assert p == pytest.approx(1 / 720) and min_p == pytest.approx(1 / 720)
  x, y = rng.normal(size=12), rng.normal(size=12)     # Monte Carlo: (1 + hits) / (1 + draws)
  p, min_p = ranking.permutation_test_of(ranking.kendall_tau, x, y, permutations=400)
  assert min_p == pytest.approx(1 / 401) and p == pytest.approx(
      ranking.permutation_test(x, y, permutations=4000)[0], abs=0.08)
