"""Trains a population of N1s, measures each one's learnability with one N2 setup, and computes
every registered measure of each: the population experiment (docs/protocol.md, "Generalisation measures over a population").

Layout of a population's workdir::

  n1/<network>/          a learnjax workdir training that network's N1 alone (all seeds), with
                         its initial and final parameters stored beside its predictions
  predictions/<network>.npz  the N1's per-seed labels of D2 and D3
  n2/                    a learnjax workdir measuring every N1 (given as its labels) with the one
                         N2 setup: learnability, kappa, GDE (and a curve's code length)
  measures/<network>.json    the parameter measures of that N1, with the settings that made them
  report/                the ranked table, the figure and the tidy table (population.csv)

Every part resumes: a finished N1, cell or measure is never computed again, and a measure
registered later is computed from the stored parameters on the next run.
"""

from __future__ import annotations

import hashlib
import os
import time

import numpy as np

from learnjax import train_sizes, sweep
from learnjax.data import sources, splits as splits_lib
from learnjax.errors import LearnjaxError
from learnjax.grid import plan
from learnjax.population import measures as measures_lib, params as params_lib, spec
from learnjax.store import Store
from learnjax.storage import atomic_write_json, atomic_write_npz, read_json


def n1_dir(workdir: str, name: str) -> str:
  return os.path.join(workdir, "n1", name)


def settings_of(config) -> measures_lib.Settings:
  b = config.population
  return measures_lib.Settings(examples=int(b.examples), bound=float(b.bound),
                               noise_samples=int(b.noise_samples),
                               search_steps=int(b.search_steps),
                               ascent_steps=int(b.ascent_steps), seed=int(config.seed))


def initial_params(trainer, sub_config, x1) -> dict:
  """The seeds' parameters at initialisation: the model's init from each seed's N1 key, the same
  computation training starts from."""
  import jax
  from learnjax import training
  seeds = np.arange(int(sub_config.seeds))
  state = trainer.init(training.seed_keys(sub_config.seed, seeds, training.Purpose.N1_INIT),
                       training.seed_keys(sub_config.seed, seeds, training.Purpose.N1_ORDER),
                       jax.numpy.asarray(x1[:1]))
  return jax.device_get(state.params)


def parameter_measures(model, init_flat, final_flat, x1, y1, settings) -> dict:
  """{name: (S,)} of every parameter measure, '_train_accuracy' (S,) on all of D1 (percent) and
  '_seconds' {name: seconds}."""
  examples = min(settings.examples, len(y1))
  net = measures_lib.Network(init_flat, final_flat, model, x1[:examples], y1[:examples], settings)
  out, seconds = {}, {}
  for m in measures_lib.of_kind(measures_lib.PARAMETERS):
    start = time.time()
    out[m.name] = np.asarray(m.compute(net), np.float64)
    seconds[m.name] = time.time() - start
  start = time.time()
  out[measures_lib.TRAIN_ACCURACY] = measures_lib.train_accuracy(model, net.tree, x1, y1)
  seconds[measures_lib.TRAIN_ACCURACY] = time.time() - start
  out["_seconds"] = seconds
  return out


DEFINITION = "measure_definition/"   # beside a measure computed at training: its code's digest


def _extras(sub_config, store_params: bool, settings):
  """The N1 hook: its parameters stored (or, with store_params off, its measures computed now)."""
  def extras(job, trainer, splits, net):
    init = initial_params(trainer, sub_config, splits.d1.x)
    final = net.variables["params"]
    if store_params:
      return params_lib.stored_arrays(init, final)
    values = parameter_measures(trainer.model, params_lib.flatten(init), params_lib.flatten(final),
                                splits.d1.x, splits.d1.y, settings)
    seconds = values.pop("_seconds")
    return {**{f"measure/{k}": v for k, v in values.items()},
            **{f"{DEFINITION}{k}": np.frombuffer(bytes.fromhex(d), np.uint8)
               for k, d in measures_lib.definitions().items()},
            "measure_seconds": np.asarray(sum(seconds.values()))}
  return extras


def train(config, workdir: str, out=print) -> dict:
  """Trains (or resumes) every N1 and the N2 setup's cells; {'n1_seconds': ..., 'n2_seconds'}."""
  axes, nets = spec.check(config)
  pool = sources.load_pool(config.data)
  block = config.population
  settings = settings_of(config)
  os.makedirs(workdir, exist_ok=True)
  atomic_write_json(os.path.join(workdir, "population.json"),
                    {"axes": [{"field": a.field, "name": a.name, "values": list(a.values)}
                              for a in axes],
                     "networks": [{"name": n.name, "hparams": n.hparams} for n in nets],
                     "config": spec.without_population(config).to_dict(),
                     "population": block.to_dict()})
  for i, net in enumerate(nets):
    sub = spec.n1_config(config, axes, net)
    outcome = sweep.launch(sub, n1_dir(workdir, net.name), out=out, pool=pool,
                           n1_extras=_extras(sub, bool(block.store_params), settings))
    if outcome.last_line():
      raise LearnjaxError(f"N1 {net.name}: {outcome.last_line()}")
    out(f"population: N1 {i + 1}/{len(nets)} {net.name} done")
  files = [export_predictions(workdir, net.name) for net in nets]
  n2 = spec.n2_config(config, files, [n.name for n in nets])
  if str(block.get("curve", "")).strip():
    from learnjax.config import set_n2_sizes
    set_n2_sizes(n2, block.curve)
  outcome = sweep.launch(n2, os.path.join(workdir, "n2"), out=out, pool=pool)
  if outcome.last_line():
    raise LearnjaxError(f"N2: {outcome.last_line()}")
  return compute_measures(config, workdir, out)


def _n1_unit(workdir: str, name: str):
  store = Store(n1_dir(workdir, name))
  records = store.finished("n1")
  if len(records) != 1:
    raise LearnjaxError(f"{n1_dir(workdir, name)} holds {len(records)} trained N1s, not one; "
                        "run the population again to train it")
  return store, records[0]


def export_predictions(workdir: str, name: str) -> str:
  """predictions/<name>.npz: the N1's per-seed labels of D2 and D3 (written once)."""
  path = os.path.join(workdir, "predictions", f"{name}.npz")
  if not os.path.exists(path):
    store, record = _n1_unit(workdir, name)
    _, arrays = store.load("n1", record["n1"])
    atomic_write_npz(path, {"d2": np.asarray(arrays["n1_preds_d2"], np.int32),
                            "d3": np.asarray(arrays["n1_preds_d3"], np.int32)})
  return path


def _digest(path: str) -> str:
  with open(path, "rb") as f:
    return hashlib.sha256(f.read()).hexdigest()


def compute_measures(config, workdir: str, out=print) -> dict:
  """measures/<network>.json for every network: each parameter measure not yet stored under
  these settings, from the stored parameters. Returns the seconds spent per network."""
  axes, nets = spec.check(config)
  settings = settings_of(config)
  pool = None
  spent = {}
  for net in nets:
    if not Store(n1_dir(workdir, net.name)).finished("n1"):
      out(f"population: {net.name} is not trained yet; its measures wait for it")
      continue
    store, record = _n1_unit(workdir, net.name)
    unit = os.path.join(store.workdir, "n1", record["n1"])
    key = {"settings": settings.record(), "n1": _digest(os.path.join(unit, "result.json"))}
    path = os.path.join(workdir, "measures", f"{net.name}.json")
    stored = read_json(path) if os.path.exists(path) else {}
    if stored.get("key") != key:
      stored = {"key": key, "values": {}, "seconds": {}, "definitions": {}}
    # a value made by other code than today's measure is computed again
    stored["values"] = measures_lib.current(stored["values"], stored.get("definitions", {}))
    stored["definitions"] = {k: v for k, v in stored.get("definitions", {}).items()
                             if k in stored["values"]}
    if all(n in stored["values"] for n in measures_lib.definitions()):
      continue
    _, arrays = store.load("n1", record["n1"])
    if not params_lib.has_params(arrays):
      given = {k[len("measure/"):]: np.asarray(v).tolist() for k, v in arrays.items()
               if k.startswith("measure/")}
      made_by = {k[len(DEFINITION):]: np.asarray(v, np.uint8).tobytes().hex()
                 for k, v in arrays.items() if k.startswith(DEFINITION)}
      fresh = measures_lib.current(given, made_by)
      stored["values"].update(fresh)
      stored["definitions"].update({k: made_by[k] for k in fresh})
      stored["computed_at_training"] = True
      missing = sorted(set(measures_lib.definitions()) - set(stored["values"]))
      if missing:
        out(f"population: {net.name} stored no parameters and its measures "
            f"{', '.join(missing)} were not computed by today's code at training; they are "
            "absent (population.store_params=True keeps the parameters)")
    else:
      if pool is None:
        pool = sources.load_pool(config.data)
      sub = spec.n1_config(config, axes, net)
      job = plan(sub)[0][0]
      parts = splits_lib.make_splits(pool, sub.data.n1_size, train_sizes.d2_size(sub.data.n2_size),
                                     sub.data.test_size)
      model = job.n1.build(parts.num_classes)
      values = parameter_measures(model, params_lib.read(arrays, params_lib.INIT),
                                  params_lib.read(arrays, params_lib.FINAL), parts.d1.x,
                                  parts.d1.y, settings)
      seconds = values.pop("_seconds")
      stored["values"].update({k: np.asarray(v).tolist() for k, v in values.items()})
      stored["definitions"].update(measures_lib.definitions())
      stored["seconds"].update(seconds)
      out(f"population: measures of {net.name} ({sum(seconds.values()):.1f}s)")
    atomic_write_json(path, stored)
    spent[net.name] = sum(stored.get("seconds", {}).values())
  return spent

