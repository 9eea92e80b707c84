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

import os
from typing import Any, Callable, Sequence

import numpy as np

from learnjax import fields, plugins, validation
from learnjax.errors import ArgumentError, LearnjaxError
from learnjax.learnability_result import Learnability  # noqa: F401  (learnjax.Learnability)


N1 = Any  # a model name | predict(images float32 NHWC) -> labels or logits | (d2, d3) labels


def learnability(n1: N1 = None, data: Any = None, n2: str | None = None,
                 seeds: int | Sequence[int] | None = None, *, seed: int | None = None,
                 n1_size: int | None = None, n2_size=None, test_size: int | None = None,
                 data_dir: str | None = None, config: dict | None = None,
                 n1_name: str | None = None,
                 progress: Callable[[str], None] | bool | None = print):
  """The learnability of ``n1`` on ``data``, measured with N2 = ``n2`` over ``seeds`` seeds.

  n1: a learnjax model name (``'mlp_1'``: N1 is trained on D1 as on the command line); or a
    function ``predict(images) -> labels`` called on D1, D2 and D3 as float32 (N, H, W, C) arrays,
    normalised as learnjax normalises them, returning labels (N,) or float scores (N, K) (logits
    or probabilities, argmaxed); or the predictions themselves, a pair ``(d2, d3)`` or a dict with
    ``'d2'``, ``'d3'`` and optionally ``'d1'``, each in any shape a predictions file takes
    (:mod:`learnjax.predictions`: (S, N) integer labels are one row per seed). See ``python -m
    learnjax.data.export`` for the images they belong to. N1 is then "given": its training error
    is its error on D1 where D1's labels are known (a function, or ``'d1'``).
  data: a data set name (default ``'digits'``, a tensorflow-datasets name), a path to an .npz with
    x_train, y_train, x_test, y_test, or those four arrays as a tuple (uint8 images N,H,W[,C]).
  n2: a model name (default ``'mlp_1'``; ``'same'``: N1's, when n1 is a name).
  seeds: how many seeds (indices 0..seeds-1; default 5), or the seed indices themselves.
  seed: the experiment seed (default 0).
  n2_size: |D2|; or several sizes (any sequence of integers, a numpy array too, ``'500,1000'``,
    ``'geometric:250:25000:8'``): one N2
    per size on the first n examples of D2 (D2 = the largest), and the result is a
    :class:`learnjax.curves.Curve` (one Learnability per size, the area under the curve, n_at and
    the prequential code length of N1's labels; n_at at 90 %, ``c.n_at_level(p)`` at any p).
  config: overrides of the base config by dotted name, e.g. ``{'train.max_epochs': 20,
    'n2.batch_size': 32, 'data.variant': 'random_labels'}``. A field that an argument also sets
    (``'seeds'``, ``'seed'``, ``'n1.model'``, ``'n2.model'``, ``'data.name'``, ``'data.n1_size'``
    ...) may be given either way; given both ways, the two must agree, or the call is refused.
  n1_name: N1's name in the result (default: the model name, the function's name, or
    'predictions').
  progress: a function taking a line (``print``, the default: a line per ``progress_seconds`` of
    training, as the command line prints); True (``print``); False or None for silence.

  Bad arguments raise :class:`~learnjax.errors.ArgumentError` (a ``ValueError``) before anything
  is trained, as the command line refuses them; so does an N1 whose output is ambiguous (an
  (N, 1) column, logits of another width than the classes) or not finite.
  """
  import time

  from learnjax import config as config_lib, measurement, metrics, prequential, training
  from learnjax.data import splits as splits_lib
  from learnjax.predictions import MODEL as predictions_model
  started = time.time()
  if isinstance(progress, (bool, np.bool_)):
    progress = print if progress else None
  if progress is not None and not callable(progress):
    raise ArgumentError(f"progress must be a function taking a line (print), True, False or "
                        f"None, got {type(progress).__name__}")
  if config is not None and not isinstance(config, dict):
    raise ArgumentError(f"config must be a dict of dotted field names ({{'train.max_epochs': "
                        f"5}}), got {type(config).__name__}")
  config = dict(config or {})
  from learnjax import train_sizes
  if n1 is None and isinstance(config.get("n1.model"), str):
    n1 = config["n1.model"]
  if n1 is None:
    raise ArgumentError("learnability() needs n1: a model name, a predict function or N1's "
                        "predictions")
  if "n1.model" in config and not isinstance(n1, str):
    raise ArgumentError(f"config['n1.model']={config['n1.model']!r} names a model, but n1 is a "
                        f"{type(n1).__name__}: give N1 one way")
  _agreed(config, "n1.model", "n1", n1 if isinstance(n1, str) else None, None)
  n1_name = _agreed(config, "n1.name", "n1_name", n1_name, None) or None
  if data is None or isinstance(data, str):
    data = _agreed(config, "data.name", "data", data, "digits")
    if data == "npz" and config.get("data.npz_path"):
      data = config["data.npz_path"]
  elif "data.name" in config:
    raise ArgumentError(f"config['data.name']={config['data.name']!r} and data (a "
                        f"{type(data).__name__}) both give the data: give it one way")
  n2 = _agreed(config, "n2.model", "n2", n2, "mlp_1")
  seeds = _agreed(config, "seeds", "seeds", seeds, 5, lambda v: _seed_indices(v).tolist())
  seed = _agreed(config, "seed", "seed", seed, 0)
  n1_size = _agreed(config, "data.n1_size", "n1_size", n1_size, None)
  test_size = _agreed(config, "data.test_size", "test_size", test_size, None)
  n2_size = _agreed(config, "data.n2_size", "n2_size", n2_size, None,
                    lambda v: _checked(train_sizes.parse, v))
  data_dir = _agreed(config, "data.data_dir", "data_dir", data_dir, None)
  for field in ("n1.model", "n1.name", "n2.model", "seeds", "seed", "data.n1_size",
                "data.test_size", "data.n2_size", "data.data_dir"):
    config.pop(field, None)   # applied below from the agreed values
  if n1_name is not None and (not isinstance(n1_name, str) or not n1_name.strip()):
    raise ArgumentError(f"n1_name must be a non-empty string, got {n1_name!r}")
  cfg = config_lib.base_config()
  apply_overrides(cfg, config)
  for field, value in (("n1", n1), ("n2", n2)):
    if isinstance(value, str):   # so that a comma list is refused as one below
      cfg[field].model = value
  _checked(plugins.load, cfg.plugins)   # before anything reads a registry
  seed_indices = _seed_indices(seeds)
  _integer_argument(seed, "seed", 0, validation.SEED_MAX)
  for value, key in ((n1_size, "n1_size"), (test_size, "test_size")):
    if value is not None:
      cfg.data[key] = _integer_argument(value, key, 1)
  n2_sizes = _checked(train_sizes.parse, cfg.data.n2_size if n2_size is None else n2_size)
  if n2_sizes != [None]:
    cfg.data.n2_size = n2_sizes[-1]   # |D2|: the largest size
  cfg.seed = int(seed)
  _checked(validation.check_config, cfg)
  for field in ("n1.model", "n2.model", "n1.batch_size", "n2.batch_size", "data.variant",
                "n1.dropout", "n2.dropout"):
    value = validation.flatten(cfg)[field]   # a list once checked (learnjax.fields)
    if value is not None and len(value) != 1:
      raise ArgumentError(f"config[{field!r}]={','.join(map(str, value))!r} is a list; "
                          "learnability() measures one N1 and one N2: give one value "
                          "(learnjax.run sweeps a grid)")
  pool = _checked(_pool, data, data_dir)
  splits = _checked(splits_lib.make_splits, pool, cfg.data.n1_size, cfg.data.n2_size,
                    cfg.data.test_size)
  run = _Measurement(cfg, splits, len(seed_indices), progress)
  if n2 == "same" and not isinstance(n1, str):
    raise ArgumentError("n2='same' needs N1's architecture: give n1 as a model name, or name N2")
  n2_name = n1 if n2 == "same" else n2
  if not isinstance(n2_name, str):
    raise ArgumentError(f"n2 must be a model name, got {type(n2_name).__name__}")
  n1_hparams = run.hparams("n1", n1 if isinstance(n1, str) else predictions_model)
  n2_hparams = n1_hparams if n2 == "same" else run.hparams("n2", n2_name)
  if n2 == "same":
    run.hparams("n2", "same")
  n2_trainer = run.trainer(n2_name, cfg.n2.batch_size[0], n2_hparams)  # a bad N2 stops first
  variant = "true"
  if isinstance(n1, str):
    (variant, fraction), = _variant_units(cfg)
    net = training.train_n1(splits, run.trainer(n1, cfg.n1.batch_size[0], n1_hparams), variant,
                            seed, seed_indices, corrupt_fraction=fraction,
                            on_epoch=run.printer(f"N1 {n1} {variant}", len(splits.d1)),
                            **run.execution)
    labels, name, record = measurement.n1_labels(net), n1, measurement.metric_record()
    n1_train_error = np.asarray(net.train_error, float)
  else:
    given, name = _given(n1, splits, len(seed_indices))
    labels = measurement.N1Labels(given.d2, given.d3)   # labels only: no probabilities
    record = measurement.metric_record(predictions_model, given.per_seed)
    n1_train_error = (None if given.d1 is None else
                      (given.d1 != splits.d1.y[None]).mean(-1).astype(float))
  n1_name = n1_name or name

  def point(size):
    """(Learnability, arrays) of the N2 trained on D2's first ``size`` examples (None: all)."""
    n2_net, arrays = measurement.measure(
        splits, n2_trainer, labels, seed, seed_indices, variant=variant, n2_size=size,
        on_epoch=run.printer(f"N2 {n2_name} <- {n1_name}", size or len(splits.d2)),
        code_on_epoch=run.printer(f"code model {n2_name} <- {n1_name}",
                                  prequential.fitted_size(size or 1)),
        **run.execution)
    result = Learnability(
        metrics=metrics.per_seed(arrays, record), seeds=seed_indices, n1=n1_name, n2=n2_name,
        dataset=pool.name, n1_preds_d3=arrays["n1_preds_d3"], n2_preds_d3=arrays["n2_preds_d3"],
        y_d3=splits.d3.y, n1_source="trained" if isinstance(n1, str) else "given",
        n1_train_error=n1_train_error, n2_epochs=np.asarray(n2_net.epochs),
        n2_train_error=np.asarray(n2_net.train_error, float),
        n2_diverged=np.asarray(n2_net.diverged, bool), stop_error=float(cfg.train.stop_error),
        seconds=time.time() - started)
    return result, arrays

  if len(n2_sizes) == 1:
    return point(None)[0]
  from learnjax import curves
  measured = [point(n) for n in n2_sizes]
  summary = curves.summarise(n2_sizes, [a for _, a in measured], splits.num_classes,
                             len(splits.d2), curves.DEFAULT_LEVEL)
  return curves.Curve(points=[p for p, _ in measured], summary=summary)


class _Measurement:
  """How one :func:`learnability` call trains: its trainers, progress lines and execution."""

  def __init__(self, cfg, splits, seeds: int, progress):
    from learnjax import sweep
    sweep.apply_precision(cfg)
    self.cfg, self.splits, self.seeds, self.progress = cfg, splits, seeds, progress
    self.dtype = sweep.PRECISIONS[cfg.train.precision][1]
    self.stream = _LineStream(progress)
    t = cfg.train
    self.execution = dict(seed_layout=t.seed_layout, devices=t.devices,
                          concurrent_seeds=t.concurrent_seeds, log=progress)

  def printer(self, label: str, n: int):
    from learnjax.progress import EpochPrinter
    if self.progress is None:
      return None
    return EpochPrinter(label, n, self.seeds, self.cfg.train.max_epochs,
                        interval=self.cfg.progress_seconds, stream=self.stream)

  def hparams(self, field: str, name: str) -> dict:
    """config's width, depth and dropout of block ``field``, refused where model ``name``
    ignores them."""
    from learnjax import grid
    given = grid.block_hparams(self.cfg[field])
    _checked(validation.check_model_hparams, field, [name], given, grid.model_hparams)
    return {h: v[0] if isinstance(v, list) else v for h, v in given.items()}

  def trainer(self, name: str, batch_size: int, hparams: dict):
    from learnjax import engine, models, sweep
    model = models.build(name, self.splits.num_classes, dtype=self.dtype, **hparams)
    return engine.Trainer(model, sweep.train_config(self.cfg, int(batch_size)))


class _LineStream:
  """A text stream that hands each printed line to ``out`` (print, a logger, a widget)."""

  def __init__(self, out):
    self.out, self._buffer = out, ""

  def write(self, text: str) -> int:
    self._buffer += text
    *lines, self._buffer = self._buffer.split("\n")
    for line in lines:
      self.out(line)
    return len(text)

  def flush(self) -> None:
    pass


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
        num_tasks: int = 1, out: Callable[[str], None] | None = print, *,
        retry_out_of_memory: bool = True) -> list[dict]:
  """Runs (or resumes) an experiment as ``python -m learnjax.main`` does; returns its cells.

  config: a ConfigDict, or a config file as on the command line (``'configs/t5_mlp_variants.py'``
  or ``'configs/t5_mlp_variants.py:smoke'``). The cells returned are the dicts stored in
  ``workdir/results.json`` (learnability, accuracies, per-seed values...). ``overrides`` take
  comma lists of batch sizes as the command line does (``{'n1.batch_size': '32,64'}``). Bad
  arguments raise :class:`~learnjax.errors.ArgumentError` (a ``ValueError``) before the workdir
  is touched.

  An N1 row that another process is training is waited for, then this call's own cells of it are
  trained. Cells the machine could not finish are not results: memory running out leaves them
  unmeasured with a :class:`~learnjax.failures.MachineFailureWarning` (a later call retries them,
  unless ``retry_out_of_memory=False``: cells known to be too big); a failed write or a lost
  device raises :class:`~learnjax.failures.MachineFailure`.
  """
  import ml_collections

  from learnjax import sweep
  if isinstance(config, (str, os.PathLike)):
    config = load_config(os.fspath(config))
  elif isinstance(config, ml_collections.ConfigDict):
    config = config.copy_and_resolve_references()
  else:
    raise ArgumentError(f"config must be an ml_collections.ConfigDict or a config file path, got "
                        f"{type(config).__name__}; for a dict of settings, start from "
                        "learnjax.config.base_config() and pass them as overrides={'train."
                        "max_epochs': 5, ...}")
  if not isinstance(workdir, (str, os.PathLike)):
    raise ArgumentError(f"workdir must be a folder path, got {type(workdir).__name__}")
  if out is not None and not callable(out):
    raise ArgumentError(f"out must be a function taking a line (print) or None, got "
                        f"{type(out).__name__}")
  num_tasks = _integer_argument(num_tasks, "num_tasks", 1)
  task_index = _integer_argument(task_index, "task_index", 0, num_tasks - 1)
  apply_overrides(config, overrides if overrides is not None else {})
  _checked(plugins.load, config.get("plugins", ""))   # before anything reads a registry
  _checked(validation.check_config, config)
  outcome = sweep.launch(config, os.fspath(workdir), task_index, num_tasks,
                         out=out or (lambda _: None), retry_out_of_memory=retry_out_of_memory)
  if outcome.last_line():
    import warnings

    from learnjax import failures
    warnings.warn(outcome.last_line(), failures.MachineFailureWarning, stacklevel=2)
  return outcome.cells


def load_config(spec: str):
  """The ConfigDict of a config file ``path.py[:arg]``, as ``--config=path.py[:arg]`` gives."""
  from learnjax import cli_input
  path = spec.partition(":")[0]
  if not os.path.isfile(path):
    raise ArgumentError(f"no such config file: {path}")
  return _checked(cli_input.load_config_file, spec)




def apply_overrides(config, overrides: dict) -> None:
  """Sets ``{'train.max_epochs': 5, ...}`` on a ConfigDict; unknown names are refused."""
  if not isinstance(overrides, dict):
    raise ArgumentError(f"config overrides must be a dict of dotted field names, got "
                        f"{type(overrides).__name__}")
  for key, value in overrides.items():
    if not isinstance(key, str):
      raise ArgumentError(f"config overrides are keyed by dotted field names, got {key!r}")
    *parents, leaf = key.split(".")
    node = config
    for part in parents:
      node = node.get(part) if hasattr(node, "get") else None
    if node is None or not hasattr(node, "get") or leaf not in node:
      raise ArgumentError(f"unknown config field {key!r}")
    if isinstance(value, dict) or hasattr(node[leaf], "get"):
      raise ArgumentError(f"config override {key!r} is a block, not a field; give each field by "
                          "its dotted name ({'train.max_epochs': 5, 'train.momentum': 0.9})")
    try:
      if key in fields.list_fields():   # a grid axis: one value, a comma string or a list
        with node.ignore_type():
          setattr(node, leaf, value)
      else:
        setattr(node, leaf, value)
    except (TypeError, ValueError) as e:
      raise ArgumentError(f"config field {key}: {e}") from None


def _agreed(config: dict, field: str, name: str, value, default, normal=lambda v: v):
  """The value of a setting that both ``config[field]`` and the argument ``name`` may give:
  either one, or both where they agree; refused, naming both, where they differ."""
  if field in config and value is not None:
    if normal(config[field]) != normal(value):
      raise ArgumentError(f"config[{field!r}]={config[field]!r} and {name}={value!r} disagree; "
                          f"give {name} one way")
    return value
  return value if value is not None else config.get(field, default)


def _checked(check, *args):
  """``check(*args)``, a LearnjaxError re-raised as an ArgumentError (a ValueError too)."""
  try:
    return check(*args)
  except ArgumentError:
    raise
  except LearnjaxError as e:
    raise ArgumentError(str(e)) from None


def _integer_argument(value, name: str, low: int, high: int | None = None) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low \
      or high is not None and value > high:
    bound = f" and at most {high}" if high is not None else ""
    raise ArgumentError(f"{name} must be an integer >= {low}{bound}, got {value!r}")
  return int(value)


def _seed_indices(seeds) -> np.ndarray:
  """The seed indices of ``seeds``: a count (0..seeds-1) or the distinct indices themselves."""
  if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, (bool, np.bool_)):
    return np.arange(_integer_argument(seeds, "seeds", 1), dtype=np.int64)
  what = ("seeds must be a positive count or distinct non-negative seed indices (a list of "
          f"integers), got {seeds!r}")
  if isinstance(seeds, (str, bytes, bool, np.bool_)) or not hasattr(seeds, "__iter__"):
    raise ArgumentError(what)
  items = list(seeds)
  if not items or any(isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer))
                      or not 0 <= i <= validation.SEED_MAX for i in items):
    raise ArgumentError(what)
  if len(set(int(i) for i in items)) != len(items):
    raise ArgumentError(f"seeds lists a seed index twice ({seeds!r}); each seed once")
  return np.asarray(items, np.int64)


def _pool(data, data_dir):
  import ml_collections

  from learnjax.data import sources
  if isinstance(data, sources.Pool):
    return data
  if isinstance(data, (tuple, list)):
    if len(data) != 4:
      raise ArgumentError("data as arrays is (x_train, y_train, x_test, y_test)")
    return sources.pool_from_arrays("arrays", dict(zip(sources.NPZ_KEYS, data)),
                                    source="the arrays given")
  if isinstance(data, os.PathLike):
    data = os.fspath(data)
  if isinstance(data, str) and (data.endswith(".npz") or os.path.isfile(data)):
    return sources.load_npz(data)
  if isinstance(data, str):
    return sources.load_pool(ml_collections.ConfigDict({"name": data, "data_dir": data_dir or ""}))
  raise ArgumentError(f"data must be a data set name, an .npz path or four arrays, got "
                      f"{type(data).__name__}")


def _given(n1, splits, seeds: int):
  """(predictions.Given, name) of an N1 given as a predict function or as its predictions."""
  from learnjax import predictions
  sizes = {k: len(getattr(splits, k)) for k in predictions.PARTS}
  if callable(n1):
    name = getattr(n1, "__qualname__", None) or type(n1).__name__
    if "<lambda>" in name:
      name = "predict"   # a lambda has no name of its own: name it with n1_name=
    source = f"n1 (the predict function {name})"
    arrays = {key: _labels_of(n1(getattr(splits, key).x), key, sizes[key], splits.num_classes,
                              source) for key in ("d1", "d2", "d3") if sizes[key]}
  elif isinstance(n1, dict) and {"d2", "d3"} <= set(n1) and set(n1) <= set(predictions.PARTS):
    arrays, name, source = dict(n1), "predictions", "n1 (the predictions given)"
  elif isinstance(n1, (tuple, list)) and len(n1) == 2:
    arrays, name, source = dict(zip(("d2", "d3"), n1)), "predictions", "n1 (the labels given)"
  else:
    raise ArgumentError("n1 must be a model name, a predict function, a pair (d2, d3) or a dict "
                        f"{{'d1', 'd2', 'd3'}} of predictions, got {type(n1).__name__}")
  return _checked(predictions.given, arrays, sizes, splits.num_classes, seeds, source), name


def _labels_of(output, key: str, size: int, num_classes: int, source: str) -> np.ndarray:
  """A predict function's output checked: labels (N,) or scores (N, C), argmaxed later.

  Anything else is ambiguous and refused: an (N, 1) column (labels, or one class's logits?),
  logits with another column count than the C classes, or logits that are not all finite (NaN
  would argmax to class 0 and look like a confident N1)."""
  try:
    output = np.asarray(output)
  except Exception as e:  # noqa: BLE001  ragged lists, objects...
    raise ArgumentError(f"{source} returned no array for {key} ({e})") from None
  if output.ndim == 2 and output.shape[1] == 1:
    raise ArgumentError(f"{source} returned an ({output.shape[0]}, 1) column for {key}: return "
                        f"labels as a 1-d array (N,), or logits (N, {num_classes})")
  if output.ndim == 2 and not np.issubdtype(output.dtype, np.floating):
    raise ArgumentError(f"{source} returned {output.dtype} {output.shape} for {key}: a predict "
                        f"function returns labels (N,) or float scores (N, {num_classes}); give "
                        "per-seed labels (S, N) as arrays, n1={'d2': ..., 'd3': ...}")
  if output.ndim == 2:
    if output.shape[1] != num_classes:
      raise ArgumentError(f"{source} returned logits with {output.shape[1]} columns for {key}, "
                          f"but the data has {num_classes} classes: one column per class")
    if not np.issubdtype(output.dtype, np.number) or not np.isfinite(output).all():
      bad = "not numbers" if not np.issubdtype(output.dtype, np.number) else \
          f"{int((~np.isfinite(output)).any(axis=1).sum())} of {len(output)} rows not finite"
      raise ArgumentError(f"{source} returned logits for {key} with {bad} (NaN or inf): N1's "
                          "labels would be arbitrary")
    return output
  if output.ndim == 1 and np.issubdtype(output.dtype, np.floating) \
      and not np.isfinite(output).all():
    raise ArgumentError(f"{source} returned labels for {key} that are not all finite")
  return output
