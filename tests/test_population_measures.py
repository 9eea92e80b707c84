"""The population's parameter measures against plain numpy on a net small enough to do by hand,
and the scores (tau, psi, K, robust sign error) on populations whose answer is known."""

import itertools

import jax
import numpy as np
import pytest

from learnjax import models
from learnjax.population import measures, params as params_lib, scoring

IN, HIDDEN, CLASSES = 3, 2, 2


def _hand_net(seeds=2, examples=40, key=0):
  """A 3-2-2 ReLU MLP (two seeds, numpy weights) and its input examples."""
  rng = np.random.default_rng(key)
  model = models.build("mlp", CLASSES, width=HIDDEN, depth=1)
  variables = model.init(jax.random.PRNGKey(0), np.zeros((1, 1, 1, IN), np.float32))
  flat = params_lib.flatten(jax.device_get(variables["params"]))
  assert sorted(flat) == ["Dense_0/dense/bias", "Dense_0/dense/kernel", "Dense_1/dense/bias",
                          "Dense_1/dense/kernel"]
  final = {k: rng.normal(size=(seeds,) + v.shape).astype(np.float32) for k, v in flat.items()}
  init = {k: rng.normal(size=(seeds,) + v.shape).astype(np.float32) for k, v in flat.items()}
  x = rng.normal(size=(examples, 1, 1, IN)).astype(np.float32)
  y = rng.integers(0, CLASSES, examples)
  return measures.Network(init, final, model, x, y, measures.Settings(examples=examples)), x, y


def _forward(p, s, x):
  h = np.maximum(x.reshape(len(x), -1) @ p["Dense_0/dense/kernel"][s] + p["Dense_0/dense/bias"][s], 0)
  return h @ p["Dense_1/dense/kernel"][s] + p["Dense_1/dense/bias"][s]


def test_norm_measures_match_numpy():
  net, _, _ = _hand_net()
  f, i = net.final, net.init
  w = [f["Dense_0/dense/kernel"].astype(np.float64), f["Dense_1/dense/kernel"].astype(np.float64)]
  w0 = [i["Dense_0/dense/kernel"].astype(np.float64), i["Dense_1/dense/kernel"].astype(np.float64)]
  for s in range(2):
    fro2 = [np.sum(m[s] ** 2) for m in w]
    spec = [np.linalg.svd(m[s], compute_uv=False)[0] for m in w]
    assert measures.dist_init(net)[s] == pytest.approx(sum(np.sum((a[s] - b[s]) ** 2)
                                                           for a, b in zip(w, w0)), rel=1e-9)
    assert measures.log_prod_of_frob(net)[s] == pytest.approx(np.log(np.prod(fro2)), rel=1e-9)
    assert measures.log_sum_of_frob(net)[s] == pytest.approx(
        np.log(2 * np.sqrt(np.prod(fro2))), rel=1e-9)
    assert measures.log_prod_of_spec(net)[s] == pytest.approx(np.log(np.prod(spec) ** 2),
                                                              rel=1e-6)
  assert np.all(measures.num_params(net) == IN * HIDDEN + HIDDEN + HIDDEN * CLASSES + CLASSES)


def test_path_norm_enumerates_paths():
  net, _, _ = _hand_net()
  f = {k: v.astype(np.float64) for k, v in net.final.items()}
  for s in range(2):
    w1, b1 = f["Dense_0/dense/kernel"][s], f["Dense_0/dense/bias"][s]
    w2, b2 = f["Dense_1/dense/kernel"][s], f["Dense_1/dense/bias"][s]
    total = 0.0
    for i, j, k in itertools.product(range(IN), range(HIDDEN), range(CLASSES)):
      total += w1[i, j] ** 2 * w2[j, k] ** 2           # input i -> hidden j -> output k
    for j, k in itertools.product(range(HIDDEN), range(CLASSES)):
      total += b1[j] ** 2 * w2[j, k] ** 2              # a path from hidden unit j's bias
    total += np.sum(b2 ** 2)                           # the output biases
    assert measures.path_norm(net)[s] == pytest.approx(total, rel=1e-5)


def test_margin_from_logits():
  net, x, y = _hand_net()
  for s in range(2):
    z = _forward(net.final, s, x)
    other = np.where(np.eye(CLASSES, dtype=bool)[y], -np.inf, z).max(1)
    margins = z[np.arange(len(y)), y] - other
    gamma = np.percentile(margins, 10)
    assert measures.margin(net)[s] == pytest.approx(gamma, rel=1e-4, abs=1e-5)
    inverse = measures.inverse_margin(net)[s]
    assert (np.isnan(inverse) if gamma <= 0 else inverse == pytest.approx(1 / gamma ** 2, rel=1e-3))


def test_inverse_margin_is_undefined_where_the_margin_is_not_positive():
  net, x, y = _hand_net()
  net.y = np.asarray(_forward(net.final, 0, x).argmin(1))   # seed 0 wrong on every example
  assert measures.margin(net)[0] < 0 and np.isnan(measures.inverse_margin(net)[0])


def test_flatness_searches_respect_the_bound():
  """At the sigma found, re-drawing the noise the search used keeps the error increase within
  the bound; a looser bound never gives a smaller sigma."""
  net, x, y = _hand_net(examples=200)
  net.y = np.stack([_forward(net.final, s, x).argmax(1) for s in range(2)])[0]   # seed 0 perfect
  tight = measures.Network(net.init, net.final, net.model, x, net.y,
                           measures.Settings(examples=200, bound=0.05))
  loose = measures.Network(net.init, net.final, net.model, x, net.y,
                           measures.Settings(examples=200, bound=0.3))
  from learnjax.population import perturb
  keys = jax.random.split(jax.random.PRNGKey(0), 2)
  a = np.stack([tight.largest_scale(kind) for kind in perturb.KINDS], -1)     # (seeds, kinds)
  b = np.stack([loose.largest_scale(kind) for kind in perturb.KINDS], -1)
  assert np.all(np.isfinite(a)) and np.all(a > 0)
  assert np.all(b >= a)
  increase = perturb._increases_fn(net.model, 5, 10)
  at = np.asarray(increase(tight.tree, x, net.y, keys, a.astype(np.float32)))
  # the bisection's final failing point: one interval width above sigma on the log scale
  width = np.log(perturb.HIGH / perturb.LOW) / 2 ** tight.settings.search_steps
  above = np.asarray(increase(tight.tree, x, net.y, keys, (a * np.exp(width)).astype(np.float32)))
  assert np.all(at <= np.float32(0.05))                           # the bound holds at sigma
  assert np.all((above > np.float32(0.05)) | (a >= perturb.HIGH))  # and fails just above it
  # a perfect-fitting seed's flatness: 1/sigma^2 positive and finite
  values = measures.pacbayes_flatness(tight)
  assert np.isfinite(values[0]) and values[0] > 0


# ---- scores on known populations ---------------------------------------------------------------

def _population(seed=0, seeds=3, values=(0, 1, 2)):
  rng = np.random.default_rng(seed)
  hparams = [{"a": a, "b": b, "c": c} for a, b, c in itertools.product(values, values, values)]
  gap = np.asarray([[2.0 * h["a"] + h["b"] + 0.5 * h["c"] + rng.normal(0, 0.3)
                     for _ in range(seeds)] for h in hparams])
  return hparams, gap, rng


def test_a_measure_equal_to_the_gap_scores_one():
  hparams, gap, _ = _population()
  s = scoring.score(hparams, gap, gap, ["a", "b", "c"], draws=20, permutations=50)
  assert s.tau == pytest.approx(1.0) and s.k == pytest.approx(1.0)
  assert s.big_psi == pytest.approx(1.0) and all(v == pytest.approx(1.0) for v in s.psi.values())
  assert s.sign_error_max == 0.0
  assert s.tau_p < 0.05 and s.k_p < 0.05


def test_an_independent_measure_scores_about_zero():
  hparams, gap, rng = _population(seeds=2)
  noise = rng.normal(size=gap.shape)
  s = scoring.score(hparams, noise, gap, ["a", "b", "c"], draws=10, permutations=50)
  assert abs(s.tau) < 0.3 and s.k < 0.05 and abs(s.big_psi) < 0.4
  assert 0.3 < s.sign_error_mean < 0.7


def test_k_discounts_what_the_hyper_parameters_explain():
  """A measure that only reads axis a orders pairs that differ in a, but nothing once a is
  conditioned on: K = 0 where tau is high."""
  hparams, gap, _ = _population()
  reads_a = np.asarray([[h["a"]] * gap.shape[1] for h in hparams], float)
  s = scoring.score(hparams, reads_a, gap, ["a", "b", "c"], draws=5, permutations=20)
  assert s.tau > 0.5 and s.k == pytest.approx(0.0, abs=1e-12)


def test_k_and_psi_by_hand_on_four_networks():
  hparams = [{"a": 0, "b": 0}, {"a": 1, "b": 0}, {"a": 0, "b": 1}, {"a": 1, "b": 1}]
  gap = np.asarray([1.0, 2.0, 3.0, 4.0])
  measure = np.asarray([1.0, 2.0, 4.0, 3.0])
  # psi_a: groups b=0 {(1,1),(2,2)} tau 1, b=1 {(4,3),(3,4)} tau -1 -> 0; psi_b: a=0 tau 1, a=1 tau 1
  per_axis, big = scoring.granulated(hparams, measure, gap, ["a", "b"])
  assert per_axis == {"a": 0.0, "b": 1.0} and big == 0.5
  # K with S empty: 12 ordered pairs, V_mu differs from V_g on the 2 pairs (2,3),(3,2): 10 agree.
  pairs = [(i, j) for i in range(4) for j in range(4) if i != j]
  vg = np.asarray([gap[i] > gap[j] for i, j in pairs])
  vm = np.asarray([measure[i] > measure[j] for i, j in pairs])
  joint = np.asarray([[np.mean((vg == g) & (vm == m)) for m in (0, 1)] for g in (0, 1)])

  def h(p):
    p = p[p > 0]
    return -np.sum(p * np.log2(p))

  empty = (h(joint.sum(1)) + h(joint.sum(0)) - h(joint.ravel())) / h(joint.sum(1))
  assert scoring.k_score(hparams, measure, gap, ["a", "b"], max_set=0) == pytest.approx(empty)
  # Conditioning on a: the slice (a=1, a=0) holds pairs (1,0),(1,2),(3,0),(3,2), gap's sign fixed
  # by ... each slice's MI is computed from its own 2x2 table; K is the minimum over sets.
  k = scoring.k_score(hparams, measure, gap, ["a", "b"])
  assert 0.0 <= k <= empty + 1e-12


def test_environments_and_sign_error_by_hand():
  hparams = [{"a": 0, "b": 0}, {"a": 1, "b": 0}, {"a": 1, "b": 1}]
  envs = scoring.environments(hparams, ["a", "b"])
  assert [(i, j, ax) for i, j, ax in envs] == [(0, 1, "a"), (1, 2, "b")]
  gap = np.asarray([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
  measure = np.asarray([[1.0, 1.0], [2.0, 2.0], [1.5, 2.5]])
  # env (1,2): seed pairs (s,t): dm = sign(2 - {1.5,2.5}) = {+,-} for each s -> half wrong
  assert list(scoring.sign_errors(measure, gap, envs)) == [0.0, 0.5]


def test_kendall_tau_b_matches_scipy():
  from scipy import stats
  rng = np.random.default_rng(3)
  for n in (2, 5, 30):
    x, y = rng.integers(0, 4, n).astype(float), rng.normal(size=n)
    expected = stats.kendalltau(x, y).statistic
    got = scoring.kendall_tau(x, y)
    assert (np.isnan(got) and np.isnan(expected)) or got == pytest.approx(expected)
  assert np.isnan(scoring.kendall_tau([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))


def test_networks_differing_in_dropout_share_the_evaluation_program():
  """Dropout is the identity in evaluation: the model the searches compile has it at 0, and it
  applies as the dropout model does with train=False."""
  from learnjax.models.small import MLP
  from learnjax.population import perturb
  model = MLP(width=8, depth=2, num_classes=3, dropout=0.3)
  plain = perturb.eval_model(model)
  assert plain.dropout == 0 and repr(plain) == repr(perturb.eval_model(plain.clone(dropout=0.1)))
  x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
  variables = model.init(jax.random.PRNGKey(0), x)
  np.testing.assert_array_equal(np.asarray(model.apply(variables, x, train=False)),
                                np.asarray(plain.apply(variables, x, train=False)))
