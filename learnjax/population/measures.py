"""The generalisation measures of a population, each one registry entry (docs/protocol.md,
"Generalisation measures over a population", gives every formula with its source).

A measure maps one population network (all its seeds) to one number per seed. *Parameter*
measures read the N1's initial and final parameters (and, for margins and flatness, its training
examples); *prediction* measures read the learnability cell of the fixed N2 setup. Each declares
its ``orientation``: +1 where its source claims it grows with the generalisation gap (a
complexity measure), -1 where it claims the opposite (learnability, margin): the scores multiply
the measure by it, so that a measure that behaves as claimed scores tau > 0.

A new measure is one :func:`register` call::

  @register("my_norm", title="my norm", source="Someone 2021", orientation=1)
  def my_norm(net):
    return ...                  # (S,) one value per seed; NaN where undefined

Registering one fills a stored population on the next report, without training again.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import math
from typing import Callable

import numpy as np

from learnjax import registration
from learnjax.population import params as params_lib

PARAMETERS, PREDICTIONS = "parameters", "predictions"


@dataclasses.dataclass(frozen=True)
class Measure:
  name: str
  compute: Callable
  title: str
  source: str
  orientation: int
  kind: str
  doc: str


REGISTRY: dict[str, Measure] = {}


def register(name: str, *, title: str, source: str, orientation: int = 1,
             kind: str = PARAMETERS):
  """Decorator: ``fn(net) -> (S,)`` is the measure ``name`` (a :class:`Network`'s seeds)."""
  if orientation not in (1, -1) or kind not in (PARAMETERS, PREDICTIONS):
    raise ValueError("orientation must be 1 or -1 and kind 'parameters' or 'predictions'")

  def decorate(fn):
    measure = Measure(name, fn, title, source, orientation, kind,
                      " ".join((fn.__doc__ or "").split()))
    if registration.admit("generalisation measure", name, REGISTRY.get(name), measure,
                          lambda m: m.compute):
      REGISTRY[name] = measure
    return fn
  return decorate


def of_kind(kind: str) -> list[Measure]:
  return [m for m in REGISTRY.values() if m.kind == kind]


TRAIN_ACCURACY = "_train_accuracy"   # stored beside the parameter measures: the gap's train side


def train_accuracy(model, tree, x1, y1) -> np.ndarray:
  """(S,) each seed's accuracy on all of D1 (percent), in evaluation mode: the gap's train side,
  stored as :data:`TRAIN_ACCURACY`."""
  from learnjax.population import perturb
  logits = perturb.logits(model, tree, x1)
  return 100.0 * (logits.argmax(-1) == np.asarray(y1)[None]).mean(-1)


def _module_functions(fn, seen: set) -> list[str]:
  """The sources of ``fn`` and of every function of this module it names, transitively."""
  if fn.__name__ in seen:
    return []
  seen.add(fn.__name__)
  out = [inspect.getsource(fn)]
  codes, names = [fn.__code__], set()
  while codes:
    code = codes.pop()
    names.update(code.co_names)
    codes.extend(c for c in code.co_consts if inspect.iscode(c))
  for name in sorted(names):
    obj = globals().get(name)
    if inspect.isfunction(obj) and obj.__module__ == __name__:
      out += _module_functions(obj, seen)
  return out


@functools.lru_cache(maxsize=None)
def definition(name: str) -> str:
  """A digest of the code that computes parameter measure ``name`` (or :data:`TRAIN_ACCURACY`):
  its function and the functions of this module it calls, the :class:`Network` and
  :class:`Settings` it reads, and the modules that perturb and read the parameters. A value stored
  under another digest was made by other code and is computed again."""
  from learnjax.population import params, perturb
  parts = _module_functions(train_accuracy if name == TRAIN_ACCURACY else REGISTRY[name].compute,
                            set())
  parts += [name, inspect.getsource(Network), inspect.getsource(Settings),
            inspect.getsource(perturb), inspect.getsource(params)]
  return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def definitions() -> dict[str, str]:
  """{name: digest} of every parameter measure and the training accuracy stored beside them."""
  return {n: definition(n) for n in [m.name for m in of_kind(PARAMETERS)] + [TRAIN_ACCURACY]}


def current(values: dict, stored_definitions: dict) -> dict:
  """The stored ``values`` whose definition is today's (the others were made by other code)."""
  today = definitions()
  return {k: v for k, v in values.items()
          if k in today and stored_definitions.get(k) == today[k]}


@dataclasses.dataclass
class Settings:
  """What the margin and flatness measures depend on besides the network (stored with them)."""
  examples: int = 1000        # the first examples of D1 the margin and flatness read
  bound: float = 0.1          # the training-error increase the flatness searches allow
  noise_samples: int = 5      # noise draws per sigma tried (PAC-Bayes flatness)
  search_steps: int = 10      # halvings of the log-scale bisection
  ascent_steps: int = 10      # projected gradient-ascent steps (sharpness)
  seed: int = 0               # the seed of the noise draws and the ascent's start

  def record(self) -> dict:
    return dataclasses.asdict(self)


class Network:
  """One population network, all seeds, as the measures read it. ``init``/``final``: flat
  parameters, seed axis first; ``model``: the Flax module that applies them; ``x``, ``y``: the
  measure's examples of D1; ``cell``: the stored learnability cell (None for parameter measures);
  ``code_bits``: (S,) prequential code length of N1's labels where a curve was measured."""

  def __init__(self, init=None, final=None, model=None, x=None, y=None, settings=None,
               cell=None, code_bits=None, seeds=None):
    self.init, self.final, self.model, self.x, self.y = init, final, model, x, y
    self.settings = settings or Settings()
    self.cell, self.code_bits = cell, code_bits
    self.seeds = seeds if seeds is not None else (
        next(iter(final.values())).shape[0] if final else None)
    self._logits = None
    self._tree = None
    self._scales = None

  @property
  def tree(self):
    if self._tree is None:
      self._tree = params_lib.unflatten(self.final)
    return self._tree

  def weights(self, which: str = "final") -> list[np.ndarray]:
    """(S, fan_in, fan_out) per layer, in order."""
    flat = self.final if which == "final" else self.init
    return [params_lib.as_matrix_stacked(np.asarray(w, np.float64))
            for _, w in params_lib.weights(flat)]

  def logits(self) -> np.ndarray:
    """(S, N, K) logits on the measure's examples."""
    if self._logits is None:
      from learnjax.population import perturb
      self._logits = perturb.logits(self.model, self.tree, self.x)
    return self._logits

  def largest_scale(self, kind: str) -> np.ndarray:
    """(S,) the flatness search's scale of ``kind`` ('noise', 'magnitude', 'sharpness'); the
    three searches run together on the first call (one compiled program, one call per step)."""
    if self._scales is None:
      from learnjax.population import perturb
      s = self.settings
      self._scales = perturb.largest_scales(
          self.model, self.tree, self.x, self.y, s.seed, bound=s.bound,
          samples=s.noise_samples, steps=s.search_steps, ascent_steps=s.ascent_steps)
    return np.asarray(self._scales[kind], np.float64)


def _fro2(m):
  return (np.asarray(m, np.float64) ** 2).sum(axis=(1, 2))


# ---- parameter measures ----------------------------------------------------------------------

@register("params", title="number of parameters", source="Jiang et al. 2020 (C.1)")
def num_params(net):
  """omega = the number of parameters (weights, biases and every other trained parameter)."""
  count = sum(int(np.prod(v.shape[1:])) for v in net.final.values())
  return np.full(net.seeds, float(count))


@register("dist_init", title="distance from init", source="Jiang et al. 2020 (C.6, dist.init)")
def dist_init(net):
  """sum_i ||W_i - W_i^0||_F^2 over the layers' weights (W_i^0 at initialisation)."""
  return sum(_fro2(w - w0) for w, w0 in zip(net.weights("final"), net.weights("init")))


@register("log_prod_of_frob", title="log product of Frobenius norms",
          source="Jiang et al. 2020 (C.4, log.prod.of.fro)")
def log_prod_of_frob(net):
  """log prod_i ||W_i||_F^2."""
  return sum(np.log(_fro2(w)) for w in net.weights())


@register("log_sum_of_frob", title="log sum of Frobenius norms",
          source="Jiang et al. 2020 (C.4, log.sum.of.fro)")
def log_sum_of_frob(net):
  """log(d (prod_i ||W_i||_F^2)^(1/d)), d layers: the sum of the layers' squared Frobenius norms
  when they are balanced (Jiang et al. take this form of the sum, by the AM-GM inequality)."""
  ws = net.weights()
  return math.log(len(ws)) + sum(np.log(_fro2(w)) for w in ws) / len(ws)


@register("log_prod_of_spec", title="log product of spectral norms",
          source="Jiang et al. 2020 (C.3, log.prod.of.spec)")
def log_prod_of_spec(net):
  """log prod_i ||W_i||_2^2, ||.||_2 the largest singular value (a convolution's kernel as the
  (kh kw cin, cout) matrix): ||W||_2^2 is the largest eigenvalue of the smaller Gram matrix
  (W^T W or W W^T), cheaper than a singular value decomposition of W."""
  return sum(np.log(_largest_squared_singular_value(w)) for w in net.weights())


def _largest_squared_singular_value(w) -> np.ndarray:
  """(S,) ||W_s||_2^2 of stacked (S, m, n) matrices, float64."""
  w = np.asarray(w, np.float64)
  gram = np.einsum("sij,sik->sjk", w, w) if w.shape[1] >= w.shape[2] else \
      np.einsum("sji,ski->sjk", w, w)
  return np.linalg.eigvalsh(gram)[:, -1]


@register("path_norm", title="path norm", source="Neyshabur et al. 2015; Jiang et al. 2020 "
          "(C.5, path.norm)")
def path_norm(net):
  """sum over input-output paths of prod (w on the path)^2 = f_{w^2}(1): the summed outputs of
  the network with every parameter squared (biases too: a bias starts a path at its unit) on an
  input of ones."""
  from learnjax.population import perturb
  return perturb.squared_forward(net.model, net.tree, net.x.shape[1:])


def _margins(net) -> np.ndarray:
  z = np.asarray(net.logits(), np.float64)
  y = np.asarray(net.y)
  true = np.take_along_axis(z, y[None, :, None], -1)[..., 0]
  other = np.where(np.arange(z.shape[-1])[None, None] == y[None, :, None], -np.inf, z).max(-1)
  return true - other


@register("margin", title="10th-percentile margin", source="Jiang et al. 2020 (C.2)",
          orientation=-1)
def margin(net):
  """gamma = the 10th percentile over D1's measure examples of f(x)_y - max_{j != y} f(x)_j."""
  return np.percentile(_margins(net), 10, axis=-1)


@register("inverse_margin", title="inverse margin", source="Jiang et al. 2020 (C.2, inverse "
          "margin)")
def inverse_margin(net):
  """1 / gamma^2; undefined (NaN) where gamma <= 0 (a tenth of the examples misclassified)."""
  gamma = margin(net)
  with np.errstate(divide="ignore", over="ignore"):
    return np.where(gamma > 0, 1.0 / np.where(gamma > 0, gamma, 1.0) ** 2, np.nan)


@register("pacbayes_flatness", title="PAC-Bayes flatness",
          source="Jiang et al. 2020 (C.7, pacbayes.flatness)")
def pacbayes_flatness(net):
  """1 / sigma^2, sigma the largest such that E_{u ~ N(0, sigma^2 I)}[err(w + u)] - err(w) <=
  bound on D1's measure examples (bisection; the expectation over noise_samples draws)."""
  return 1.0 / net.largest_scale("noise") ** 2


@register("pacbayes_mag_flatness", title="magnitude-aware PAC-Bayes flatness",
          source="Jiang et al. 2020 (C.7, pacbayes.mag.flatness)")
def pacbayes_mag_flatness(net):
  """1 / sigma^2 as pacbayes_flatness, with u_i ~ N(0, sigma^2 w_i^2 + eps^2), eps = 1e-3."""
  return 1.0 / net.largest_scale("magnitude") ** 2


@register("sharpness", title="sharpness", source="Keskar et al. 2017; Jiang et al. 2020 (C.7)")
def sharpness(net):
  """1 / alpha^2, alpha the largest such that max_{|u_i| <= alpha (|w_i| + 1)} err(w + u) -
  err(w) <= bound (the max by projected sign gradient ascent on the cross-entropy)."""
  return 1.0 / net.largest_scale("sharpness") ** 2


# ---- prediction measures (the fixed N2 setup's cell) -----------------------------------------

def _cell_values(net, key: str) -> np.ndarray | None:
  from learnjax import metrics
  values = metrics.per_seed_values((net.cell or {}).get(key))
  return None if values is None else values


@register("learnability", title="learnability", source="Sharma et al. (learnability)",
          orientation=-1, kind=PREDICTIONS)
def learnability(net):
  """100 x P(N1(x) = N2(x)) on D3, N2 the population's fixed N2 setup trained on N1's labels of D2."""
  return _cell_values(net, "learnability")


@register("kappa", title="kappa", source="Cohen 1960, of N1 and N2", orientation=-1,
          kind=PREDICTIONS)
def kappa(net):
  """Cohen's kappa of N1's and N2's labels of D3 (learnability corrected for chance)."""
  return _cell_values(net, "kappa")


@register("gde_disagreement", title="GDE disagreement", source="Jiang et al. 2022 (GDE)",
          kind=PREDICTIONS)
def gde_disagreement(net):
  """100 - GDE accuracy: per seed s, 100 x mean over t != s of P(N1_s(x) != N1_t(x)) on D3."""
  values = _cell_values(net, "gde_accuracy")
  return None if values is None else 100.0 - values


@register("code_length", title="code length of N1's labels", source="Blier & Ollivier 2018 "
          "(prequential code)", kind=PREDICTIONS)
def code_length(net):
  """Prequential code length in bits of N1's labels of D2 under the fixed N2 (a learnability
  curve); absent where the population measured no curve."""
  return None if net.code_bits is None else np.asarray(net.code_bits, np.float64)
