"""How well a measure predicts the generalisation gap over a population, as the field scores it.

Inputs: per network its hyper-parameters (one value per axis) and, per seed, the measure (times
its orientation, so that "as claimed" is positive) and the gap. A network's number is its mean
over seeds; the seeds of a population are paired (seed i of every network derives from the same
key), so the seed bootstrap resamples one set of seed indices for every network.

tau, psi and Psi, their intervals, tau's permutation p-value and the verdict are
:mod:`learnjax.ranking`'s, the items being the networks:

* tau: Kendall's tau-b over the networks (Jiang et al. 2020, section 4).
* psi_i: for axis i, the mean over groups of networks that agree on every other axis of the tau
  within the group; Psi: the mean of psi_i over the axes (Jiang et al. 2020, section 4).

This module adds the two scores of the generalisation-measure literature:

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

Uncertainty: a 95 % percentile bootstrap over seeds for every score, every score recomputed on
the same resamples (:func:`learnjax.ranking.seed_resamples`); for tau and K a permutation p-value
over networks (:func:`learnjax.ranking.permutation_test`, :func:`~learnjax.ranking.
permutation_test_of`). numpy.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np


from learnjax import ranking

BOOTSTRAP_DRAWS = ranking.DRAWS
PERMUTATIONS = ranking.PERMUTATIONS        # tau's (vectorised)
K_PERMUTATIONS = 200                       # K's, each a full K computation
GENERATOR_SEED = ranking.SEED
MIN_VERDICT_SEEDS = ranking.MIN_SEEDS
ALPHA = ranking.ALPHA
NOUN = "networks"

kendall_tau = ranking.kendall_tau


def granulated(hparams: list[dict], measure, gap, axes: list[str]) -> tuple[dict, float]:
  """({axis: psi}, Psi) of one value per network (:func:`learnjax.ranking.granulated`); psi is
  NaN for an axis that does not vary or has no group with a tau."""
  g = ranking.granulated(hparams, measure, gap, axes=axes, draws=1)
  per_axis = {a.axis: a.psi for a in g.per_axis}
  return {a: per_axis.get(a, float("nan")) for a in axes}, g.psi


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
  if not envs:
    return np.zeros(0)
  i = np.asarray([e[0] for e in envs])
  j = np.asarray([e[1] for e in envs])
  dm = np.sign(m[i][:, :, None] - m[j][:, None, :])
  dg = np.sign(g[i][:, :, None] - g[j][:, None, :])
  return np.mean((1.0 - dm * dg) / 2.0, axis=(1, 2))


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
  return ranking.percentile_interval(values)


def score(hparams: list[dict], measure_seeds, gap_seeds, axes: list[str],
          draws: int = BOOTSTRAP_DRAWS, permutations: int = PERMUTATIONS,
          seed: int = GENERATOR_SEED, k_permutations: int = K_PERMUTATIONS) -> Score:
  """Every score of one (oriented) measure over networks ``hparams`` with per-seed values
  ``measure_seeds`` and ``gap_seeds`` (N, S)."""
  m, g = np.asarray(measure_seeds, float), np.asarray(gap_seeds, float)
  n, s = m.shape
  evidence = ranking.correlate(list(m), list(g), interval="seeds", draws=draws,
                               permutations=permutations, seed=seed, noun=NOUN)
  gran = ranking.granulated(hparams, list(m), list(g), axes=axes, interval="seeds",
                            draws=draws, seed=seed)
  per_axis = {a.axis: a for a in gran.per_axis}
  mm, gm = m.mean(1), g.mean(1)
  envs = environments(hparams, axes)
  k = k_score(hparams, mm, gm, axes)
  errors = sign_errors(m, g, envs) if envs else np.asarray([np.nan])
  picks = ranking.seed_resamples([s], draws, seed)[s]          # the resamples of tau and psi
  boot_k, boot_error = [], []
  for pick in picks:
    boot_k.append(k_score(hparams, m[:, pick].mean(1), g[:, pick].mean(1), axes))
    boot_error.append(np.nanmax(sign_errors(m[:, pick], g[:, pick], envs)) if envs else np.nan)
  k_p, _ = ranking.permutation_test_of(lambda gap, measure: k_score(hparams, measure, gap, axes),
                                       gm, mm, k_permutations, seed, alternative="greater")
  result = Score(
      networks=n, seeds=s, tau=evidence.tau, tau_ci=(evidence.lo, evidence.hi),
      tau_p=evidence.p_value,
      psi={a: per_axis[a].psi if a in per_axis else float("nan") for a in axes},
      psi_ci={a: (per_axis[a].lo, per_axis[a].hi) if a in per_axis else (float("nan"),) * 2
              for a in axes},
      big_psi=gran.psi, big_psi_ci=(gran.lo, gran.hi), k=k, k_ci=_interval(boot_k), k_p=k_p,
      sign_error_max=float(np.nanmax(errors)),
      sign_error_p90=float(np.nanpercentile(errors, 90)), sign_error_mean=float(np.nanmean(errors)),
      sign_error_max_ci=_interval(boot_error), environments=len(envs),
      verdict=verdict(evidence))
  return result


def verdict(evidence: ranking.Evidence) -> str:
  """A verdict only where the evidence carries one (:func:`learnjax.ranking.verdict`: enough
  seeds for the bootstrap to bound tau, the interval clear of 0 and the permutation test
  rejecting independence)."""
  if evidence.sign > 0:
    return "tracks the gap as claimed (tau interval above 0, permutation p < 0.05)"
  if evidence.sign < 0:
    return "tracks the gap opposite to its claim (tau interval below 0, permutation p < 0.05)"
  return f"no verdict: {evidence.reason}"
