"""learnjax from Python: one learnability measurement without a workdir, or a config run.

::

    import learnjax
    r = learnjax.learnability(my_model.predict, data="digits", n2="mlp_1", seeds=3)
    print(r)                     # learnability 91.2 ± 0.4 %, N1 test accuracy ...
    r.learnability               # per-seed numpy array
    cells = learnjax.run("configs/t5_mlp_variants.py:smoke", "/tmp/t5")

:func:`learnability` follows the protocol of the command line (same splits, normalisation,
training, seed derivation) but keeps everything in memory; :func:`run` is the command line's
``python -m learnjax.main`` and returns the cells it stores in ``results.json``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import sys
from typing import Any, Callable, Sequence

import numpy as np

from learnjax.errors import LearnjaxError


@dataclasses.dataclass(frozen=True)
class Learnability:
  """One measurement over S seeds; the per-seed arrays are percentages, seed axis first."""
  learnability: np.ndarray        # (S,) 100 * mean over D3 of [N1(x) == N2(x)]
  n1_test_accuracy: np.ndarray    # (S,)
  n2_test_accuracy: np.ndarray    # (S,)
  seeds: np.ndarray               # (S,) the seed indices
  n1: str
  n2: str
  dataset: str
  n1_preds_d3: np.ndarray         # (S, |D3|)
  n2_preds_d3: np.ndarray         # (S, |D3|)
  y_d3: np.ndarray                # (|D3|,)

  _FIELDS = ("learnability", "n1_test_accuracy", "n2_test_accuracy")

  @property
  def mean(self) -> dict[str, float]:
    return {k: float(np.mean(getattr(self, k))) for k in self._FIELDS}

  @property
  def std(self) -> dict[str, float]:
    """Population standard deviation over seeds, as in the command line's tables."""
    return {k: float(np.std(getattr(self, k))) for k in self._FIELDS}

  def __str__(self) -> str:
    parts = [f"{k.replace('_', ' ')} {self.mean[k]:.1f} ± {self.std[k]:.1f} %"
             for k in self._FIELDS]
    return (f"{self.n1} -> {self.n2} on {self.dataset}, {len(self.seeds)} seeds: "
            + ", ".join(parts))


N1 = Any  # a model name | predict(images float32 NHWC) -> labels or logits | (d2, d3) labels


def learnability(n1: N1, data: Any = "digits", n2: str = "mlp_1", seeds: int | Sequence[int] = 5,
                 *, seed: int = 0, n1_size: int | None = None, n2_size: int | None = None,
                 test_size: int | None = None, data_dir: str | None = None,
                 config: dict | None = None) -> Learnability:
  """The learnability of ``n1`` on ``data``, measured with N2 = ``n2`` over ``seeds`` seeds.

  n1: a learnjax model name (``'mlp_1'``: N1 is trained on D1 as on the command line); or a
    function ``predict(images) -> labels`` called on D2 and on D3 as float32 (N, H, W, C) arrays,
    normalised as learnjax normalises them (logits (N, C) are argmaxed); or the labels themselves,
    a pair ``(d2, d3)`` (see ``python -m learnjax.data.export`` for the images they belong to).
  data: a data set name (``'digits'``, a tensorflow-datasets name), a path to an .npz with
    x_train, y_train, x_test, y_test, or those four arrays as a tuple (uint8 images N,H,W[,C]).
  n2: a model name (``'same'``: N1's, when n1 is a name).
  seeds: how many seeds (indices 0..seeds-1), or the seed indices themselves.
  config: overrides of the base config by dotted name, e.g. ``{'train.max_epochs': 20,
    'n2.batch_size': 32, 'data.variant': 'random_labels'}``.
  """
  from learnjax import config as config_lib
  from learnjax import models, protocol, sweep
  from learnjax.data import splits as splits_lib

  cfg = config_lib.base_config()
  apply_overrides(cfg, config or {})
  seed_indices = np.asarray(range(seeds) if isinstance(seeds, (int, np.integer)) else seeds,
                            np.int64)
  if seed_indices.ndim != 1 or not len(seed_indices) or (seed_indices < 0).any():
    raise LearnjaxError(f"seeds must be a positive count or non-negative seed indices, got {seeds!r}")
  pool = _pool(data, data_dir)
  splits = splits_lib.make_splits(
      pool, *(v if v is not None else cfg.data.get(k)
              for v, k in ((n1_size, "n1_size"), (n2_size, "n2_size"), (test_size, "test_size"))))
  sweep.apply_precision(cfg)
  dtype = sweep.PRECISIONS[cfg.train.precision][1]
  t = cfg.train
  run_kw = dict(seed_layout=t.seed_layout, devices=t.devices, concurrent_seeds=t.concurrent_seeds)

  def trainer(name, batch_size):
    model = models.build(name, splits.num_classes, dtype=dtype)
    from learnjax import engine
    return engine.Trainer(model, sweep.train_config(cfg, batch_size))

  if n2 == "same" and not isinstance(n1, str):
    raise LearnjaxError("n2='same' needs N1's architecture: give n1 as a model name, or name N2")
  n2_name = n1 if n2 == "same" else n2
  n2_trainer = trainer(n2_name, int(cfg.n2.batch_size))   # a bad N2 stops before N1 is trained
  variant = "true"
  if isinstance(n1, str):
    (variant, fraction), = _variant_units(cfg)
    net = protocol.train_n1(splits, trainer(n1, int(cfg.n1.batch_size)), variant, seed,
                            seed_indices, corrupt_fraction=fraction, **run_kw)
    preds_d2, preds_d3, test_preds, n1_name = net.preds_d2, net.preds_d3, net.test_preds, n1
  else:
    d2, d3, n1_name = _given(n1, splits)
    preds_d2, preds_d3 = (np.tile(p, (len(seed_indices), 1)) for p in (d2, d3))
    test_preds = preds_d3
  n2_net = protocol.train_n2(splits, n2_trainer, preds_d2, seed, seed_indices, variant=variant,
                             **run_kw)
  y3 = splits.d3.y
  return Learnability(
      learnability=protocol.learnability(preds_d3, n2_net.preds_d3),
      n1_test_accuracy=protocol.test_accuracy(test_preds, y3),
      n2_test_accuracy=protocol.test_accuracy(n2_net.test_preds, y3),
      seeds=seed_indices, n1=n1_name, n2=n2_name, dataset=pool.name,
      n1_preds_d3=np.asarray(preds_d3), n2_preds_d3=np.asarray(n2_net.preds_d3), y_d3=y3)


def _variant_units(cfg) -> list[tuple[str, float | None]]:
  """The one (variant, corrupt fraction) of a measurement's config."""
  from learnjax import validation
  chosen = validation.check_variants(cfg)
  fractions = validation.corrupt_fractions(cfg)
  units = [(v.name, f) for v in chosen for f in (fractions if v.uses_fraction else [None])]
  if len(units) != 1:
    raise LearnjaxError(f"one measurement takes one data variant (and one corrupt fraction), "
                        f"got {len(units)}; sweep several with learnjax.run")
  return units


def run(config, workdir: str, overrides: dict | None = None, task_index: int = 0,
        num_tasks: int = 1, out: Callable[[str], None] | None = print) -> list[dict]:
  """Runs (or resumes) an experiment as ``python -m learnjax.main`` does; returns its cells.

  config: a ConfigDict, or a config file as on the command line (``'configs/t5_mlp_variants.py'``
  or ``'configs/t5_mlp_variants.py:smoke'``). The cells returned are the dicts stored in
  ``workdir/results.json`` (learnability, accuracies, per-seed values...).
  """
  from learnjax import sweep
  if isinstance(config, (str, os.PathLike)):
    config = load_config(os.fspath(config))
  else:
    config = config.copy_and_resolve_references()
  apply_overrides(config, overrides or {})
  return sweep.train_and_evaluate(config, workdir, task_index, num_tasks,
                                  out=out or (lambda _: None))


def load_config(spec: str):
  """The ConfigDict of a config file ``path.py[:arg]``, as ``--config=path.py[:arg]`` gives."""
  path, _, arg = spec.partition(":")
  if not os.path.isfile(path):
    raise LearnjaxError(f"no such config file: {path}")
  module_spec = importlib.util.spec_from_file_location("learnjax_user_config", path)
  module = importlib.util.module_from_spec(module_spec)
  sys.modules[module_spec.name] = module   # a class defined in the file looks its module up here
  try:
    module_spec.loader.exec_module(module)
    return module.get_config(arg) if arg else module.get_config()
  except (ValueError, AttributeError) as e:
    raise LearnjaxError(f"cannot load config {spec}: {e}") from None
  finally:
    sys.modules.pop(module_spec.name, None)


def apply_overrides(config, overrides: dict) -> None:
  """Sets ``{'train.max_epochs': 5, ...}`` on a ConfigDict; unknown names are refused."""
  for key, value in overrides.items():
    *parents, leaf = key.split(".")
    node = config
    for part in parents:
      node = node.get(part) if hasattr(node, "get") else None
    if node is None or not hasattr(node, "get") or leaf not in node:
      raise LearnjaxError(f"unknown config field {key!r}")
    try:
      setattr(node, leaf, value)
    except (TypeError, ValueError) as e:
      raise LearnjaxError(f"config field {key}: {e}") from None


def _pool(data, data_dir):
  import ml_collections

  from learnjax.data import sources
  if isinstance(data, sources.Pool):
    return data
  if isinstance(data, (tuple, list)):
    if len(data) != 4:
      raise LearnjaxError("data as arrays is (x_train, y_train, x_test, y_test)")
    return sources.pool_from_arrays("arrays", dict(zip(sources.NPZ_KEYS, data)),
                                    source="the arrays given")
  if isinstance(data, str) and data.endswith(".npz"):
    return sources.load_npz(data)
  if isinstance(data, str):
    return sources.load_pool(ml_collections.ConfigDict({"name": data, "data_dir": data_dir or ""}))
  raise LearnjaxError(f"data must be a data set name, an .npz path or four arrays, got "
                      f"{type(data).__name__}")


def _given(n1, splits) -> tuple[np.ndarray, np.ndarray, str]:
  """(d2, d3, name) of an N1 given as a predict function or as its labels."""
  from learnjax import predictions
  if callable(n1):
    d2, d3 = (_labels_of(n1(part.x)) for part in (splits.d2, splits.d3))
    name = getattr(n1, "__qualname__", None) or type(n1).__name__
  elif isinstance(n1, (tuple, list)) and len(n1) == 2:
    (d2, d3), name = n1, "predictions"
  else:
    raise LearnjaxError("n1 must be a model name, a predict function or a pair (d2, d3) of "
                        f"labels, got {type(n1).__name__}")
  source = f"N1 ({name})"
  return (predictions.check_labels(d2, "d2", len(splits.d2), splits.num_classes, source),
          predictions.check_labels(d3, "d3", len(splits.d3), splits.num_classes, source), name)


def _labels_of(output) -> np.ndarray:
  output = np.asarray(output)
  return output.argmax(-1) if output.ndim == 2 else output
