"""How a model's seeds train on this machine, chosen by measuring it: ``train.seed_layout=auto``.

A *plan* is a seed layout (``vmap``: all seeds in one computation, the shallow CNN's convolution
as patches x kernel batched over the seeds; ``vmap_grouped``: all seeds in one computation,
convolutions as vmap batches them, a grouped convolution; ``sequential``: one seed at a time), a
loop (``scan`` or ``step``, see :mod:`learnjax.engine`) and how many seed groups train at once in
threads. Before the first training of a model and shape, :func:`choose` times every candidate
plan for a short budget on the data it will train on, keeps the fastest and caches the choice per
(model, input shape, batch size, seeds, backend and device kind, precision, jax version, XLA
flags) in the user's cache folder (``$LEARNJAX_CACHE_DIR``, else ``$XDG_CACHE_HOME/learnjax``,
else ``~/.cache/learnjax``), so later launches spend nothing. A plan changes how the seeds share
the machine, never what a seed computes: each seed's numbers depend only on its keys and data
(equal across plans to float rounding, bitwise for one plan).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import sys
import tempfile
import time

import jax
import numpy as np

from learnjax import models

CACHE_FILE = "seed_layouts.json"

# A candidate is timed over epochs of at most this many steps of the real data, after one
# untimed epoch (compilation), in MEASURE_ROUNDS interleaved rounds (the best epoch counts).
MEASURE_STEPS = 8
MEASURE_ROUNDS = 3

# Measuring stops before it costs more than this share of the training it serves (every seed
# trained for max_epochs, at the first plan's rate): a short training keeps the fastest of the
# plans timed by then, the static rule's (:func:`learnjax.execution.choose_seed_layout`) first.
MEASURE_SHARE = 0.03

# On the CPU, a convolution inside a ``lax.scan`` body compiles to a kernel 25-400x slower than
# in a call of its own (benchmarks/RESULTS.md): a conv net's scan candidates are timed only when
# its step loop's seed-step takes less than this, so measuring never costs minutes.
CPU_SCAN_CONV_MAX_STEP_S = 0.05

# Once one of a conv net's scan candidates that runs its convolutions as convolutions is this many
# times slower than the fastest plan timed so far on the CPU, the others are not timed: they all
# compile to the same in-scan convolution kernel.
CPU_SCAN_CONV_SLOWER = 3.0


def convolves_in_scan(model, plan: Plan) -> bool:
  """Whether ``plan`` runs ``model``'s convolutions as convolutions inside a scan (not as the
  seed-batched patches x kernel product)."""
  return plan.loop == "scan" and not (plan.seed_layout == "vmap" and has_seed_batched_form(model))


@dataclasses.dataclass(frozen=True)
class Plan:
  seed_layout: str        # vmap | vmap_grouped | sequential
  loop: str               # scan | step
  concurrent_seeds: int   # seed groups at once in threads (1 for the vmapped layouts)

  @property
  def name(self) -> str:
    threads = f"x{self.concurrent_seeds}" if self.seed_layout == "sequential" else ""
    return f"{self.seed_layout}{threads}/{self.loop}"

  def as_dict(self) -> dict:
    return dataclasses.asdict(self)


def has_seed_batched_form(model) -> bool:
  """Whether ``model`` has layers whose vmapped form differs between ``vmap`` and
  ``vmap_grouped`` (a ``seed_batched`` field, as the shallow CNN's)."""
  return hasattr(model, "seed_batched")


def model_for(model, seed_layout: str):
  """The model as the layout runs it: ``vmap_grouped`` turns the seed-batched form off."""
  if has_seed_batched_form(model):
    wanted = seed_layout != "vmap_grouped"
    if model.seed_batched != wanted:
      return model.clone(seed_batched=wanted)
  return model


def candidates(model, num_seeds: int, loop: str, concurrent_seeds: int) -> list[Plan]:
  """Every plan for these settings; an explicit ``loop`` or ``concurrent_seeds`` (not auto) is
  kept as given."""
  loops = ("step", "scan") if loop == "auto" else (loop,)
  if num_seeds == 1:
    return [Plan("sequential", lp, 1) for lp in loops]
  threads = (1, 2) if concurrent_seeds == 0 else (concurrent_seeds,)
  layouts = [("vmap", 1)]
  if has_seed_batched_form(model):
    layouts.append(("vmap_grouped", 1))
  layouts += [("sequential", min(t, num_seeds)) for t in dict.fromkeys(threads)]
  return [Plan(layout, lp, t) for lp in loops for layout, t in layouts]


# ---- the cache ----------------------------------------------------------------------------

def cache_dir() -> str:
  if os.environ.get("LEARNJAX_CACHE_DIR"):
    return os.environ["LEARNJAX_CACHE_DIR"]
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(base, "learnjax")


def cache_key(model, x_example, batch_size: int, num_seeds: int, per_seed_x: bool,
              shared_order: bool, loop: str, concurrent_seeds: int) -> dict:
  """What a measured choice is valid for: the model (its full definition), the input, the batch,
  the seeds, the settings that restrict the candidates, and the machine and software."""
  device = jax.devices()[0]
  import jaxlib
  return {
      "model": hashlib.sha256(repr(model).encode()).hexdigest()[:16],
      "model_class": type(model).__name__,
      "input_shape": list(x_example.shape[1:]), "dtype": str(x_example.dtype),
      "batch_size": int(batch_size), "seeds": int(num_seeds), "per_seed_images": bool(per_seed_x),
      "shared_order": bool(shared_order), "loop": loop, "concurrent_seeds": int(concurrent_seeds),
      "backend": jax.default_backend(), "device_kind": device.device_kind,
      "local_devices": jax.local_device_count(), "cpus": os.cpu_count(),
      "precision": str(jax.config.jax_default_matmul_precision),
      "jax": jax.__version__, "jaxlib": jaxlib.__version__,
      "xla_flags": os.environ.get("XLA_FLAGS", ""),
  }


def _key_id(key: dict) -> str:
  return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]


@contextlib.contextmanager
def _locked(path: str):
  import fcntl
  with open(path + ".lock", "a") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(lock, fcntl.LOCK_UN)


def _read_cache(path: str) -> dict:
  try:
    with open(path) as f:
      data = json.load(f)
    return data if isinstance(data, dict) else {}
  except (OSError, ValueError):
    return {}


def cached(key: dict) -> dict | None:
  """The cached choice for ``key``, or None."""
  entry = _read_cache(os.path.join(cache_dir(), CACHE_FILE)).get(_key_id(key))
  if not entry or entry.get("key") != key:
    return None
  try:
    Plan(**entry["plan"])
  except (TypeError, KeyError):
    return None
  return entry


def store(key: dict, entry: dict) -> None:
  """Adds a choice to the cache (atomically, under a lock); an unwritable cache is only warned
  about: the choice is then measured again next time."""
  folder = cache_dir()
  try:
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, CACHE_FILE)
    with _locked(path):
      data = _read_cache(path)
      data[_key_id(key)] = {**entry, "key": key}
      fd, tmp = tempfile.mkstemp(dir=folder, prefix=".seed_layouts.")
      try:
        with os.fdopen(fd, "w") as f:
          json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
      except BaseException:
        with contextlib.suppress(OSError):
          os.remove(tmp)
        raise
  except OSError as e:
    print(f"warning: could not cache the seed layout in {folder}: {e}", file=sys.stderr)


# ---- measuring ----------------------------------------------------------------------------

class _Runner:
  """One plan ready to time: its seed groups' states initialised and its programs compiled (by
  one untimed epoch), through the engine's own epoch functions as
  :func:`learnjax.execution.train_seeds` runs them."""

  def __init__(self, trainer, plan: Plan, init_keys, order_keys, x, y, per_seed_x: bool):
    num_seeds = len(init_keys)
    self.groups = ([slice(0, num_seeds)] if plan.seed_layout != "sequential"
                   else [slice(s, s + 1) for s in range(num_seeds)])
    x_example = x[0, :1] if per_seed_x else x[:1]
    self.states = [trainer.init(init_keys[g], order_keys[g], x_example) for g in self.groups]
    self.epoch_fn = (trainer.scan_epoch_fn(per_seed_x) if plan.loop == "scan" else
                     functools.partial(trainer.step_epoch, per_seed_x=per_seed_x))
    self.x, self.y, self.per_seed_x = x, y, per_seed_x
    self.pool = (concurrent.futures.ThreadPoolExecutor(plan.concurrent_seeds)
                 if plan.concurrent_seeds > 1 else None)
    self.samples = num_seeds * y.shape[-1]
    self.steps = -(-y.shape[-1] // trainer.cfg.batch_size) * num_seeds   # seed-steps an epoch
    self.times = []
    self.first_epoch_s = self.epoch()

  def _run(self, i):
    g = self.groups[i]
    self.states[i] = self.epoch_fn(self.states[i], self.x[g] if self.per_seed_x else self.x,
                                   self.y[g])
    jax.block_until_ready(self.states[i])

  def epoch(self) -> float:
    t = time.perf_counter()
    if self.pool is None:
      for i in range(len(self.groups)):
        self._run(i)
    else:
      list(self.pool.map(self._run, range(len(self.groups))))
    return time.perf_counter() - t

  def timed(self) -> None:
    self.times.append(self.epoch())

  def close(self) -> dict:
    if self.pool is not None:
      self.pool.shutdown()
    self.states = None
    best = min(self.times)
    return {"samples_per_s": self.samples / best, "first_epoch_s": self.first_epoch_s,
            "epoch_s": best, "epochs_timed": len(self.times),
            "seconds_per_step": best / self.steps}


def measure(trainer, plans: list[Plan], init_keys, order_keys, x, y, per_seed_x: bool,
            uses_convolution: bool, training_samples: float) -> tuple[dict, bool]:
  """({plan name: timing}, complete): every plan compiled and timed on the first few batches of
  the real data, the first given first; the timed epochs interleaved over the plans (rounds of
  one epoch each), so a machine's changing load falls on all of them alike.

  Measuring stops once it would cost more than ``MEASURE_SHARE`` of the training it serves
  (``training_samples`` at the first plan's rate): then ``complete`` is False and the plans not
  timed are marked so.
  """
  bs = trainer.cfg.batch_size
  n = y.shape[-1]
  m = min(n, MEASURE_STEPS * bs)
  xs, ys = (x[:, :m] if per_seed_x else x[:m]), y[:, :m]
  timings, runners = {}, {}
  step_cost = None
  slow_conv_scan = None   # the first conv-in-scan candidate found far slower than the best
  cpu = jax.default_backend() == "cpu"
  start = time.perf_counter()
  budget_s = None
  complete = True
  order = plans[:1] + sorted(plans[1:], key=lambda p: p.loop != "step")   # step loops first

  def over_budget(next_cost: float) -> bool:
    return budget_s is not None and time.perf_counter() - start + next_cost > budget_s

  try:
    for i, plan in enumerate(order):
      if i and over_budget((time.perf_counter() - start) / i):
        for rest in order[i:]:
          timings[rest.name] = {"skipped": f"measuring budget ({MEASURE_SHARE:.0%} of the "
                                           f"training, {budget_s:.1f} s) spent"}
        complete = False
        break
      if (plan.loop == "scan" and cpu and uses_convolution and step_cost is not None
          and step_cost > CPU_SCAN_CONV_MAX_STEP_S):
        timings[plan.name] = {"skipped": f"conv net on the CPU, {step_cost * 1e3:.0f} ms per "
                                         "seed-step in the step loop: a scan body would take "
                                         "minutes"}
        continue
      if slow_conv_scan is not None and uses_convolution and convolves_in_scan(trainer.model,
                                                                               plan):
        timings[plan.name] = {"skipped": f"conv net on the CPU: {slow_conv_scan} ran over "
                                         f"{CPU_SCAN_CONV_SLOWER:g}x slower than the fastest "
                                         "plan, with the same in-scan convolution"}
        continue
      model = model_for(trainer.model, plan.seed_layout)
      try:
        runner = _Runner(trainer.with_model(model), plan, init_keys, order_keys, xs, ys,
                         per_seed_x)
        runner.timed()
      except Exception as e:  # noqa: BLE001  a plan this machine cannot run is no choice
        timings[plan.name] = {"error": f"{type(e).__name__}: {str(e)[:200]}"}
        continue
      runners[plan.name] = runner
      if budget_s is None:
        budget_s = MEASURE_SHARE * training_samples * runner.times[0] / runner.samples
      if plan.loop == "step":
        per_step = runner.times[0] / runner.steps
        step_cost = per_step if step_cost is None else min(step_cost, per_step)
      best = min(min(r.times) for r in runners.values())
      if (cpu and uses_convolution and convolves_in_scan(trainer.model, plan)
          and runner.times[0] > CPU_SCAN_CONV_SLOWER * best):
        slow_conv_scan = plan.name
    # Interleaved rounds; a plan over twice as slow as the best is not timed again.
    for _ in range(MEASURE_ROUNDS - 1):
      best = min(min(r.times) for r in runners.values()) if runners else 0.0
      alive = [r for r in runners.values() if min(r.times) <= 2 * best]
      if over_budget(sum(min(r.times) for r in alive)):
        break   # every plan was timed once: the measurement is complete, only less repeated
      for runner in alive:
        runner.timed()
  finally:
    for name, runner in runners.items():
      timings[name] = runner.close()
  ordered = {p.name: timings[p.name] for p in plans if p.name in timings}
  return ordered, complete


def fastest(plans: list[Plan], timings: dict) -> Plan | None:
  rated = [(timings[p.name]["samples_per_s"], -i, p) for i, p in enumerate(plans)
           if "samples_per_s" in timings.get(p.name, {})]
  return max(rated)[2] if rated else None


def describe(plan: Plan, timings: dict) -> str:
  rates = ", ".join(
      f"{name} {t['samples_per_s']:,.0f}" if "samples_per_s" in t else f"{name} -"
      for name, t in timings.items())
  return f"{plan.name} (samples/s: {rates})"


def choose(trainer, init_keys, order_keys, x, y, *, per_seed_x: bool, loop: str,
           concurrent_seeds: int, first: Plan, log=print,
           training_samples: float | None = None) -> tuple[Plan, dict]:
  """The plan to train these seeds with: the cached choice, else the fastest measured now (and
  cached). ``first``: the plan the static rule picks, timed first. ``training_samples``: the
  most samples the training can take (default: max_epochs of every seed on (x, y)), which bounds
  the measuring. Returns (plan, record), the record saying where the plan came from and its
  timings."""
  model = trainer.model
  num_seeds = len(init_keys)
  x_example = x[0, :1] if per_seed_x else x[:1]
  if training_samples is None:
    training_samples = float(trainer.cfg.max_epochs) * num_seeds * y.shape[-1]
  key = cache_key(model, x_example, trainer.cfg.batch_size, num_seeds, per_seed_x,
                  trainer.cfg.shared_order, loop, concurrent_seeds)
  entry = cached(key)
  # A measurement cut by its budget serves trainings no longer than the one it was made for.
  if entry is not None and (entry.get("complete", True)
                            or training_samples <= entry.get("training_samples", 0)):
    plan = Plan(**entry["plan"])
    return plan, {"plan": plan.as_dict(), "source": "cache", "timings": entry["timings"],
                  "measure_s": entry.get("measure_s"), "complete": entry.get("complete", True)}
  plans = candidates(model, num_seeds, loop, concurrent_seeds)
  plans = [first] + [p for p in plans if p != first]
  variables = jax.eval_shape(functools.partial(model.init, train=False), jax.random.PRNGKey(0),
                             x_example)
  conv = models.uses_convolution(model, jax.tree.map(lambda s: np.zeros(s.shape, s.dtype),
                                                     variables), x_example)
  t = time.perf_counter()
  timings, complete = measure(trainer, plans, init_keys, order_keys, x, y, per_seed_x, conv,
                              training_samples)
  seconds = time.perf_counter() - t
  plan = fastest(plans, timings) or first
  record = {"plan": plan.as_dict(), "source": "measured", "timings": timings,
            "measure_s": seconds, "complete": complete}
  store(key, {"plan": plan.as_dict(), "timings": timings, "measure_s": seconds,
              "complete": complete, "training_samples": training_samples,
              "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
  if log is not None:
    shape = "x".join(str(d) for d in x_example.shape[1:])
    how = (f"measured in {seconds:.1f} s" if complete else
           f"measuring stopped after {seconds:.1f} s, {MEASURE_SHARE:.0%} of this training")
    log(f"seed layout of {type(model).__name__} on {shape}, batch {trainer.cfg.batch_size}, "
        f"{num_seeds} seeds: {describe(plan, timings)}; {how}, cached in {cache_dir()}")
  return plan, record
