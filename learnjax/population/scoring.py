"""How well a measure predicts the generalisation gap over a population, as the field scores it.

Inputs: per network its hyper-parameters (one value per axis) and, per seed, the measure (times
its orientation, so that "as claimed" is positive) and the gap. A network's number is its mean
over seeds; the seeds of a population are paired (seed i of every network derives from the same
key), so the seed bootstrap resamples one set of seed indices for every network.

* tau: Kendall's tau-b over the networks (Jiang et al. 2020, section 4).
* psi_i: for axis i, the mean over groups of networks that agree on every other axis of the tau
  within the group; Psi: the mean of psi_i over the axes (Jiang et al. 2020, section 4).
* K: over ordered pairs of distinct networks (a, b), V_g = [g(a) > g(b)], V_mu = [mu(a) > mu(b)];
  for a set S of at most two axes, the pairs are split by the values the axes of S take in a and
  in b; K = min over S of I(V_mu; V_g | U_S) / H(V_g | U_S), the mutual information and entropy
  of the slices weighted by their share of the pairs (Jiang et al. 2020, section 5; the empty set
  and single axes included, as the paper's |S| <= 2 says). 1 for a measure that orders every pair
  as the gap does, about 0 for one independent of it.
* robust sign error (Dziugaite et al. 2020): an environment is a pair of networks that differ in
  exactly one axis; its sign error is the mean over seed pairs (s, t) of
  (1 - sgn(mu_a,s - mu_b,t) sgn(g_a,s - g_b,t)) / 2; the measure's robust sign error is the worst
  (largest) over environments, shown with the 90th percentile and the mean.

Uncertainty: a 95 % percentile bootstrap over seeds for every score, and for tau and K a
permutation p-value over networks (the measure's network means shuffled across networks). numpy.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np


BOOTSTRAP_DRAWS = 200
PERMUTATIONS = 500
GENERATOR_SEED = 0
MIN_VERDICT_SEEDS = 5    # below it a seed bootstrap has too few distinct resamples to decide
ALPHA = 0.05


def kendall_tau(x, y) -> float:
  """Kendall's tau-b (ties allowed), NaN where undefined: (concordant - discordant pairs) /
  sqrt(pairs untied in x * pairs untied in y). O(n^2) numpy, for the few hundred networks of a
  population scored thousands of times by the bootstrap."""
  x, y = np.asarray(x, float), np.asarray(y, float)
  n = len(x)
  if n < 2:
    return float("nan")
  i, j = np.triu_indices(n, 1)
  dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
  untied = float(np.count_nonzero(dx)) * float(np.count_nonzero(dy))
  return float(np.sum(dx * dy) / np.sqrt(untied)) if untied > 0 else float("nan")


def tau(measure, gap) -> float:
  return kendall_tau(measure, gap)


def psi(hparams: list[dict], measure, gap, axis: str) -> tuple[float, int]:
  """(psi of ``axis``, the number of groups with a tau)."""
  groups = {}
  for h, m, g in zip(hparams, measure, gap):
    key = tuple((k, h[k]) for k in sorted(h) if k != axis)
    groups.setdefault(key, []).append((m, g))
  taus = [kendall_tau(*zip(*members)) for members in groups.values() if len(members) > 1]
  taus = [t for t in taus if np.isfinite(t)]
  return (float(np.mean(taus)) if taus else float("nan")), len(taus)


def granulated(hparams: list[dict], measure, gap, axes: list[str]) -> tuple[dict, float]:
  per_axis = {a: psi(hparams, measure, gap, a)[0] for a in axes}
  defined = [v for v in per_axis.values() if np.isfinite(v)]
  return per_axis, (float(np.mean(defined)) if defined else float("nan"))


def _codes(hparams: list[dict], axes: list[str]) -> np.ndarray:
  """(N, A) each network's value index on each axis."""
  out = np.zeros((len(hparams), len(axes)), np.int64)
  for j, a in enumerate(axes):
    values = sorted({repr(h[a]) for h in hparams})
    out[:, j] = [values.index(repr(h[a])) for h in hparams]
  return out


def _bits(p):
  """Entropy in bits along the last axis (0 log 0 = 0)."""
  with np.errstate(divide="ignore", invalid="ignore"):
    return -np.sum(np.where(p > 0, p * np.log2(np.where(p > 0, p, 1.0)), 0.0), axis=-1)


def _normalised_cmi(vg, vm, slice_id) -> float:
  """sum_u p(u) I_u(V_mu; V_g) / sum_u p(u) H_u(V_g) over slices u; NaN where V_g is constant in
  every slice."""
  counts = np.bincount(slice_id * 4 + vg * 2 + vm).astype(np.float64)
  counts = np.pad(counts, (0, (-len(counts)) % 4)).reshape(-1, 4)
  counts = counts[counts.sum(1) > 0]
  n = counts.sum(1)
  joint = counts / n[:, None]                     # columns: (g0 m0, g0 m1, g1 m0, g1 m1)
  pg = np.stack([joint[:, 0] + joint[:, 1], joint[:, 2] + joint[:, 3]], -1)
  pm = np.stack([joint[:, 0] + joint[:, 2], joint[:, 1] + joint[:, 3]], -1)
  h_g = _bits(pg)
  weight = n / n.sum()
  entropy = float(np.sum(weight * h_g))
  mi = float(np.sum(weight * (h_g + _bits(pm) - _bits(joint))))
  return mi / entropy if entropy > 0 else float("nan")


def k_score(hparams: list[dict], measure, gap, axes: list[str], max_set: int = 2) -> float:
  """K: the minimum over conditioning sets of at most ``max_set`` axes of the normalised
  conditional mutual information between the signs of the measure's and the gap's differences."""
  measure, gap = np.asarray(measure, float), np.asarray(gap, float)
  n = len(gap)
  a, b = np.nonzero(~np.eye(n, dtype=bool))
  vg = (gap[a] > gap[b]).astype(np.int64)
  vm = (measure[a] > measure[b]).astype(np.int64)
  codes = _codes(hparams, axes)
  best = float("nan")
  for size in range(max_set + 1):
    for subset in itertools.combinations(range(len(axes)), size):
      slice_id = np.zeros(len(a), np.int64)
      for j in subset:
        levels = codes[:, j].max() + 1
        slice_id = (slice_id * levels + codes[a, j]) * levels + codes[b, j]
      value = _normalised_cmi(vg, vm, slice_id)
      if np.isfinite(value) and not value >= best:
        best = value
  return best


def environments(hparams: list[dict], axes: list[str]) -> list[tuple[int, int, str]]:
  """(a, b, axis) for every pair of networks that differ in exactly one axis."""
  out = []
  for i, j in itertools.combinations(range(len(hparams)), 2):
    differ = [x for x in axes if hparams[i][x] != hparams[j][x]]
    if len(differ) == 1:
      out.append((i, j, differ[0]))
  return out


def sign_errors(measure_seeds, gap_seeds, envs) -> np.ndarray:
  """(E,) each environment's sign error, averaged over the seed pairs (s, t)."""
  m, g = np.asarray(measure_seeds, float), np.asarray(gap_seeds, float)
  out = np.empty(len(envs))
  for e, (i, j, _) in enumerate(envs):
    dm = np.sign(m[i][:, None] - m[j][None, :])
    dg = np.sign(g[i][:, None] - g[j][None, :])
    out[e] = np.mean((1.0 - dm * dg) / 2.0)
  return out


@dataclasses.dataclass
class Score:
  """Every score of one measure, with its uncertainty."""
  networks: int
  seeds: int
  tau: float
  tau_ci: tuple
  tau_p: float
  psi: dict                 # axis -> psi
  psi_ci: dict              # axis -> (lo, hi)
  big_psi: float
  big_psi_ci: tuple
  k: float
  k_ci: tuple
  k_p: float
  sign_error_max: float
  sign_error_p90: float
  sign_error_mean: float
  sign_error_max_ci: tuple
  environments: int
  verdict: str


def _interval(values) -> tuple:
  values = np.asarray(values, float)
  values = values[np.isfinite(values)]
  if values.size == 0:
    return (float("nan"), float("nan"))
  return (float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5)))


def score(hparams: list[dict], measure_seeds, gap_seeds, axes: list[str],
          draws: int = BOOTSTRAP_DRAWS, permutations: int = PERMUTATIONS,
          seed: int = GENERATOR_SEED) -> Score:
  """Every score of one (oriented) measure over networks ``hparams`` with per-seed values
  ``measure_seeds`` and ``gap_seeds`` (N, S)."""
  m, g = np.asarray(measure_seeds, float), np.asarray(gap_seeds, float)
  n, s = m.shape
  rng = np.random.default_rng(seed)
  mm, gm = m.mean(1), g.mean(1)
  envs = environments(hparams, axes)

  def scores(mm, gm, ms, gs):
    per_axis, big = granulated(hparams, mm, gm, axes)
    errors = sign_errors(ms, gs, envs) if envs else np.asarray([np.nan])
    return tau(mm, gm), per_axis, big, k_score(hparams, mm, gm, axes), errors

  t, per_axis, big, k, errors = scores(mm, gm, m, g)
  boot = []
  for _ in range(draws):
    pick = rng.integers(0, s, s)
    boot.append(scores(m[:, pick].mean(1), g[:, pick].mean(1), m[:, pick], g[:, pick]))
  tau_null = np.asarray([tau(rng.permutation(mm), gm) for _ in range(permutations)])
  k_null = np.asarray([k_score(hparams, rng.permutation(mm), gm, axes)
                       for _ in range(max(permutations // 5, 50))])
  tau_p = float((1 + np.sum(np.abs(tau_null) >= abs(t) - 1e-12)) / (1 + len(tau_null)))
  k_p = float((1 + np.sum(k_null >= k - 1e-12)) / (1 + len(k_null)))
  tau_ci = _interval([b[0] for b in boot])
  result = Score(
      networks=n, seeds=s, tau=t, tau_ci=tau_ci, tau_p=tau_p, psi=per_axis,
      psi_ci={a: _interval([b[1][a] for b in boot]) for a in axes}, big_psi=big,
      big_psi_ci=_interval([b[2] for b in boot]), k=k, k_ci=_interval([b[3] for b in boot]),
      k_p=k_p, sign_error_max=float(np.nanmax(errors)),
      sign_error_p90=float(np.nanpercentile(errors, 90)), sign_error_mean=float(np.nanmean(errors)),
      sign_error_max_ci=_interval([np.nanmax(b[4]) for b in boot]), environments=len(envs),
      verdict="")
  result.verdict = verdict(result)
  return result


def verdict(r: Score) -> str:
  """A verdict only where the evidence carries one: enough seeds for the bootstrap to bound tau,
  the interval clear of 0 and the permutation test rejecting independence."""
  if r.seeds < MIN_VERDICT_SEEDS:
    return (f"no verdict: {r.seeds} seeds give the seed bootstrap too few distinct resamples "
            f"({MIN_VERDICT_SEEDS} needed)")
  lo, hi = r.tau_ci
  if r.tau_p < ALPHA and np.isfinite(lo) and lo > 0:
    return "tracks the gap as claimed (tau interval above 0, permutation p < 0.05)"
  if r.tau_p < ALPHA and np.isfinite(hi) and hi < 0:
    return "tracks the gap opposite to its claim (tau interval below 0, permutation p < 0.05)"
  return "no verdict: tau's interval includes 0 or the permutation test does not reject"
