#!/usr/bin/env python
"""Training throughput of learnjax's engine paths against a plain PyTorch eager loop.

    python benchmarks/benchmark.py [--steps auto|N] [--out results.json] [--models ...]
                                   [--skip_torch] [--precision default|highest|bf16]

On whatever device JAX finds (a GPU if there is one, else the CPU) every row trains one model for a
fixed number of SGD steps (lr 0.01, batch 64, softmax cross-entropy, 10 classes) on random
CIFAR-shaped data (32x32x3) that is already on the device, and reports samples/s summed over the
seeds. Rows:

* learnjax's engine, through its real code: ``Trainer.init`` builds the stacked ``TrainState``,
  an epoch runs as ``Trainer.scan_epoch_fn`` (``loop=scan``: one compiled call) or as
  ``Trainer.step_epoch`` (``loop=step``: one compiled call per step); seeds are vmapped with their
  own batch orders (``order=own``) or with ``TrainConfig(shared_order=True)`` (``order=shared``,
  the order keys broadcast exactly as ``Trainer.train`` does), or, for deep nets, trained one after
  another (``layout=sequential``, as ``train_seeds`` does for conv and BatchNorm nets, and on
  the CPU for larger MLPs), ``thr`` (1 or 2) of them at a time in threads
  (``train.concurrent_seeds``). The row marked ``*`` is what ``loop``, ``seed_layout`` and
  ``concurrent_seeds`` 'auto' pick on this backend.
* ``torch``: the same architecture in ``torch.nn`` (PyTorch default init, NCHW), one seed at a
  time, ``zero_grad(); loss.backward(); step()`` per batch of 64, the mistakes counted on the device
  as a learnability loop does. Seeds run one after another, so its 5-seed throughput is its
  1-seed throughput (measured once, reported for both).

An epoch is ``steps`` batches (``steps * 64`` examples, no partial batch). Each path first runs one
untimed epoch (compilation, warm-up), then ``--repeats`` timed epochs (each ending in
``block_until_ready``); the best is reported (the median and all times are in the JSON). FLOPs per
sample come from XLA's cost analysis of one seed's train step, divided by 64; the peak is a timed
square ``jnp.dot`` at the row's precision.

Precision: ``default`` is JAX's default fp32 matmul/conv precision (full fp32 on the CPU, TF32-like
on NVIDIA GPUs; torch is set to TF32 convolutions and matmuls there to match), ``highest`` forces full
fp32 in both, ``bf16`` builds the models with ``dtype=bfloat16`` (fp32 parameters, bf16 compute) and
runs torch under ``autocast(bfloat16)``.

A failure in one row is recorded in the table and the JSON and the run goes on. On a GPU,
``XLA_PYTHON_CLIENT_PREALLOCATE=false`` lets JAX and torch share the memory, and ``--budget_s``
(default 270 s on accelerators) skips what would not fit, so a full run ends within 5 minutes.
"""

from __future__ import annotations

import os

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
import concurrent.futures
import dataclasses
import datetime
import functools
import gc
import hashlib
import json
import platform
import statistics
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from learnjax import engine, execution, layouts, models  # noqa: E402

BATCH = 64
NUM_CLASSES = 10
IMAGE = (32, 32, 3)
LEARNING_RATE = 0.01

# (model, seed counts) in run order: the cheap rows first, so a time budget cuts the deep ones.
DEFAULT_ROWS = (("shallow_cnn_16", (5,)), ("shallow_cnn_256", (5,)), ("shallow_cnn_1024", (5,)),
                ("mlp_3", (5,)), ("resnet18", (1, 5)), ("vgg11", (1, 5)))

# --steps auto: steps per epoch by (backend, model). The CPU numbers keep a full run on a 2-core
# machine to tens of minutes (a ResNet18 step of 64 takes ~2 s there, a vmapped 5-seed one far
# more); deep nets get 2 steps there (a scan of one step would be simplified away by XLA).
AUTO_STEPS = {
    "cpu": {"shallow_cnn_16": 20, "shallow_cnn_256": 4, "shallow_cnn_1024": 2, "mlp_3": 200,
            "deep": 2, "other": 10},
    "accel": {"shallow_cnn_16": 200, "shallow_cnn_256": 100, "shallow_cnn_1024": 50, "mlp_3": 300,
              "deep": 30, "other": 50},
}


def is_deep(variables_shapes) -> bool:
  """Deep nets here are the BatchNorm ones (what ``choose_seed_layout`` runs sequentially)."""
  return "batch_stats" in variables_shapes


def auto_steps(backend: str, name: str, deep: bool) -> int:
  table = AUTO_STEPS["cpu" if backend == "cpu" else "accel"]
  if name in table:
    return table[name]
  return table["deep" if deep else "other"]


# ---- timing helpers -------------------------------------------------------------------------

def timed_epochs(run_epoch, repeats: int, max_timed_s: float, max_epoch_s: float | None = None,
                 compiled: bool = False, warmup_epoch=None, warmup_share: float = 1.0):
  """One untimed warm-up epoch, then up to ``repeats`` timed ones (fewer once ``max_timed_s`` of
  timed epochs has passed, at least one). ``run_epoch()`` must block until its work is done.

  ``warmup_epoch``: what to run as the warm-up instead (e.g. one seed of a sequential layout,
  ``warmup_share`` of an epoch's work). ``compiled``: the computation was compiled beforehand, so
  the warm-up is a run only; if it projects an epoch over ``max_epoch_s``, that projection is the
  one timing (a very slow path is not run again).
  """
  t = time.perf_counter()
  (warmup_epoch or run_epoch)()
  warmup = time.perf_counter() - t
  projected = warmup / warmup_share
  if compiled and max_epoch_s is not None and projected > max_epoch_s:
    what = "the first epoch after compiling" + (
        f", of {warmup_share:.0%} of the work, scaled" if warmup_share != 1.0 else "")
    return warmup, [projected], f"one epoch only ({what}): slower than max_epoch_s"
  times = []
  while len(times) < repeats and (not times or sum(times) < max_timed_s):
    t = time.perf_counter()
    run_epoch()
    times.append(time.perf_counter() - t)
  return warmup, times, None


def matmul_peak(backend: str, precision: str, with_torch: bool) -> dict:
  """FLOP/s of a square matmul: fp32 at JAX's default precision, fp32 HIGHEST, and bf16; with
  torch, also ``torch.mm`` at torch's settings for the run (its CPU BLAS often beats XLA's)."""
  n = 4096 if backend != "cpu" else 2048
  reps = 20 if backend != "cpu" else 3
  key = jax.random.PRNGKey(0)
  out = {"n": n}
  for label, dtype, prec in (("fp32_default", jnp.float32, None),
                             ("fp32_highest", jnp.float32, jax.lax.Precision.HIGHEST),
                             ("bf16", jnp.bfloat16, None)):
    a = jax.random.normal(key, (n, n), jnp.float32).astype(dtype)
    b = jax.random.normal(jax.random.fold_in(key, 1), (n, n), jnp.float32).astype(dtype)
    # A chain of dots in one call, so dispatch is not what is timed on a fast device.
    @jax.jit
    def chain(a, b):
      def body(c, _):
        return jnp.dot(c, b, precision=prec).astype(dtype) * (1.0 / n), None
      return jax.lax.scan(body, a, None, length=reps)[0]
    chain(a, b).block_until_ready()
    best = float("inf")
    for _ in range(3):
      t = time.perf_counter()
      chain(a, b).block_until_ready()
      best = min(best, time.perf_counter() - t)
    out[label] = 2.0 * n ** 3 * reps / best
  if with_torch:
    try:
      out.update(torch_matmul_peak(n, reps))
    except Exception as e:  # noqa: BLE001
      out["torch_error"] = f"{type(e).__name__}: {e}"
  out["row_precision"] = {"default": "fp32_default", "highest": "fp32_highest",
                          "bf16": "bf16"}[precision]
  return out


def torch_matmul_peak(n: int, reps: int) -> dict:
  import torch
  device = torch_device()
  out = {}
  for label, dtype in (("torch_fp32", torch.float32), ("torch_bf16", torch.bfloat16)):
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    best = float("inf")
    for _ in range(4):
      if device.type == "cuda":
        torch.cuda.synchronize()
      t = time.perf_counter()
      for _ in range(reps):
        c = torch.mm(a, b)
      if device.type == "cuda":
        torch.cuda.synchronize()
      best = min(best, time.perf_counter() - t)
    del a, b, c
    out[label] = 2.0 * n ** 3 * reps / best
  return out


def cost_flops(lowered) -> float | None:
  """FLOPs from XLA's HLO cost analysis of a lowered (or compiled) computation."""
  try:
    cost = lowered.cost_analysis()
  except Exception:  # noqa: BLE001
    cost = None
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else None
  if not cost or "flops" not in cost:
    try:
      cost = lowered.compile().cost_analysis()
    except Exception:  # noqa: BLE001
      return None
    if isinstance(cost, (list, tuple)):
      cost = cost[0] if cost else None
  return float(cost["flops"]) if cost and "flops" in cost else None


def train_step_flops(trainer: engine.Trainer, x, y) -> float | None:
  """FLOPs of one seed's engine train step on one batch of 64 (build the trainer's model with
  accelerator forms to count the model's FLOPs rather than those of its CPU forms)."""
  keys = jax.random.split(jax.random.PRNGKey(0), 1)
  state = jax.tree.map(lambda a: a[0], trainer.init(keys, keys, x[:1]))
  carry = (state, jnp.zeros((), jnp.int32), jnp.ones((), bool))
  idx = jnp.arange(BATCH)
  return cost_flops(jax.jit(trainer._step).lower(carry, x, y[0], idx))  # noqa: SLF001


# ---- learnjax engine paths ------------------------------------------------------------------

@dataclasses.dataclass
class Path:
  loop: str       # scan | step
  layout: str     # vmap | vmap_grouped | sequential
  order: str      # own | shared
  threads: int = 1  # sequential seeds trained at once (execution.train_seeds' concurrent_seeds)

  def plan(self):
    return layouts.Plan(self.layout, self.loop, self.threads)


def engine_paths(num_seeds: int, deep: bool, all_sequential: bool = False,
                 seed_batched: bool = False) -> list[Path]:
  # The step loop first: on the CPU it is the fast one for conv nets, scan the very slow one.
  if num_seeds == 1:
    return [Path("step", "vmap", "own"), Path("scan", "vmap", "own")]
  paths = []
  for loop in ("step", "scan"):
    paths.append(Path(loop, "vmap", "own"))
    if seed_batched:   # the same seeds vmapped without the seed-batched convolution
      paths.append(Path(loop, "vmap_grouped", "own"))
    paths.append(Path(loop, "vmap", "shared"))
    if deep or all_sequential:
      paths += [Path(loop, "sequential", "own", 1), Path(loop, "sequential", "own", 2)]
  return paths


def seed_keys(num_seeds: int, purpose: int):
  base = jax.random.PRNGKey(1234)
  return jnp.stack([jax.random.fold_in(jax.random.fold_in(base, s), purpose)
                    for s in range(num_seeds)])


def make_epoch_fn(trainer: engine.Trainer, loop: str):
  if loop == "scan":
    return trainer.scan_epoch_fn(False)
  return functools.partial(trainer.step_epoch, per_seed_x=False)


def init_state(trainer: engine.Trainer, init_keys, order_keys, x):
  state = trainer.init(init_keys, order_keys, x[:1])
  if trainer.cfg.shared_order:
    # Exactly what Trainer.train does for shared_order.
    state = state.replace(order_key=jnp.broadcast_to(state.order_key[:1], state.order_key.shape))
  return state


def run_engine_path(model, cfg: engine.TrainConfig, path: Path, num_seeds: int, x, y,
                    repeats: int, max_timed_s: float, max_epoch_s: float | None,
                    same_as: dict | None = None) -> dict:
  """Times one path. ``same_as``: a slow row measured before; if this path lowers to the very same
  program (e.g. shared_order, which in the engine today only changes the order keys), its timing
  is reused instead of spending minutes on an identical computation."""
  init_keys, order_keys = seed_keys(num_seeds, 1), seed_keys(num_seeds, 2)
  cfg = dataclasses.replace(cfg, shared_order=(path.order == "shared"))
  trainer = engine.Trainer(layouts.model_for(model, path.layout), cfg)
  epoch_fn = make_epoch_fn(trainer, path.loop)
  if path.layout != "sequential":
    states = [init_state(trainer, init_keys, order_keys, x)]
    ys = [y]
  else:
    # train_seeds' sequential layout: seed groups of one, one after another, one Trainer.
    states = [init_state(trainer, init_keys[i:i + 1], order_keys[i:i + 1], x)
              for i in range(num_seeds)]
    ys = [y[i:i + 1] for i in range(num_seeds)]
  compile_s = None
  fingerprint = None
  if path.loop == "scan":
    # Compiled ahead, so the compilation is timed apart from the first epoch (the same executable
    # that the jitted epoch would run; it donates the state as the jitted one does).
    t = time.perf_counter()
    lowered = epoch_fn.lower(states[0], x, ys[0])
    fingerprint = hashlib.sha256(lowered.as_text().encode()).hexdigest()[:16]
    if same_as is not None and same_as.get("fingerprint") == fingerprint:
      return {k: same_as[k] for k in ("warmup_s", "compile_s", "times_s")} | {
          "fingerprint": fingerprint,
          "note": f"same compiled program as the {same_as['order']}-order row "
                  f"({same_as['steps']} steps, over max_epoch_s): its timing, not run again"}
    epoch_fn = lowered.compile()
    compile_s = time.perf_counter() - t

  def run_seed(i):
    states[i] = epoch_fn(states[i], x, ys[i])
    jax.block_until_ready(states[i])

  pool = (concurrent.futures.ThreadPoolExecutor(path.threads) if path.threads > 1 else None)

  def run_seeds(seeds):
    if pool is None:
      for i in seeds:
        run_seed(i)
    else:
      list(pool.map(run_seed, seeds))

  # Sequential: the warm-up is seed 0's epoch (the others run the same compiled code).
  try:
    warmup, times, note = timed_epochs(lambda: run_seeds(range(len(states))), repeats,
                                       max_timed_s, max_epoch_s, compiled=compile_s is not None,
                                       warmup_epoch=lambda: run_seeds([0]),
                                       warmup_share=1.0 / len(states))
  finally:
    if pool is not None:
      pool.shutdown()
  out = {"warmup_s": warmup + (compile_s or 0.0), "compile_s": compile_s, "times_s": times,
         "fingerprint": fingerprint}
  if note:
    out["note"] = note
  return out


# ---- PyTorch reference ----------------------------------------------------------------------

def torch_model(name: str):
  """The registry model in torch.nn, with PyTorch's default initialisation."""
  import torch.nn as tnn
  family, kw = models.resolve(name)
  if family == "shallow_cnn":
    k = kw["width"]
    return tnn.Sequential(tnn.Conv2d(3, k, 5, padding=2), tnn.ReLU(), tnn.MaxPool2d(2),
                          tnn.Flatten(), tnn.Linear(k * 16 * 16, NUM_CLASSES))
  if family == "mlp":
    layers, fan_in = [tnn.Flatten()], 32 * 32 * 3
    for _ in range(kw["depth"]):
      layers += [tnn.Linear(fan_in, kw["width"]), tnn.ReLU()]
      fan_in = kw["width"]
    return tnn.Sequential(*layers, tnn.Linear(fan_in, NUM_CLASSES))
  if family == "vgg":
    from learnjax.models.vgg import CONFIGS
    layers, c = [], 3
    for item in CONFIGS[kw["depth"]]:
      if item == "M":
        layers.append(tnn.MaxPool2d(2, 2))
      else:
        layers += [tnn.Conv2d(c, item, 3, padding=1), tnn.BatchNorm2d(item), tnn.ReLU(inplace=True)]
        c = item
    return tnn.Sequential(*layers, tnn.Flatten(), tnn.Linear(512, NUM_CLASSES))
  if family == "resnet":
    from learnjax.models.resnet import BLOCKS, STRIDES, WIDTHS
    return _torch_resnet(BLOCKS[kw["depth"]], WIDTHS, STRIDES)
  raise NotImplementedError(f"no torch reference for {name}")


def _torch_resnet(blocks, widths, strides):
  import torch.nn as tnn
  import torch.nn.functional as F

  class BasicBlock(tnn.Module):
    def __init__(self, cin, cout, stride):
      super().__init__()
      self.conv1 = tnn.Conv2d(cin, cout, 3, stride, 1, bias=False)
      self.bn1 = tnn.BatchNorm2d(cout)
      self.conv2 = tnn.Conv2d(cout, cout, 3, 1, 1, bias=False)
      self.bn2 = tnn.BatchNorm2d(cout)
      self.shortcut = tnn.Sequential()
      if stride != 1 or cin != cout:
        self.shortcut = tnn.Sequential(tnn.Conv2d(cin, cout, 1, stride, bias=False),
                                       tnn.BatchNorm2d(cout))

    def forward(self, x):
      out = F.relu(self.bn1(self.conv1(x)))
      out = self.bn2(self.conv2(out))
      return F.relu(out + self.shortcut(x))

  class ResNet(tnn.Module):
    def __init__(self):
      super().__init__()
      self.conv1 = tnn.Conv2d(3, 64, 3, 1, 1, bias=False)
      self.bn1 = tnn.BatchNorm2d(64)
      stages, cin = [], 64
      for n, width, stride in zip(blocks, widths, strides):
        for i in range(n):
          stages.append(BasicBlock(cin, width, stride if i == 0 else 1))
          cin = width
      self.layers = tnn.Sequential(*stages)
      self.linear = tnn.Linear(512, NUM_CLASSES)

    def forward(self, x):
      out = self.layers(F.relu(self.bn1(self.conv1(x))))
      out = F.avg_pool2d(out, 4).flatten(1)
      return self.linear(out)

  return ResNet()


def torch_device():
  import torch
  return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def set_torch_precision(precision: str, threads: int | None = None) -> dict:
  import torch
  if threads:
    torch.set_num_threads(threads)
  tf32 = precision == "default"   # match JAX's default TF32-like fp32 on NVIDIA GPUs
  torch.backends.cuda.matmul.allow_tf32 = tf32
  torch.backends.cudnn.allow_tf32 = tf32
  torch.set_float32_matmul_precision("high" if tf32 else "highest")
  return {"cuda.matmul.allow_tf32": tf32, "cudnn.allow_tf32": tf32,
          "autocast": "bfloat16" if precision == "bf16" else None,
          "threads": torch.get_num_threads()}


def run_torch(name: str, x_np: np.ndarray, y_np: np.ndarray, precision: str, repeats: int,
              max_timed_s: float) -> dict:
  import torch
  import torch.nn.functional as F
  device = torch_device()
  torch.manual_seed(0)
  model = torch_model(name).to(device).train()
  optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
  x = torch.from_numpy(np.ascontiguousarray(x_np.transpose(0, 3, 1, 2))).to(device)
  y = torch.from_numpy(y_np.astype(np.int64)).to(device)
  n = x.shape[0]
  autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16"
              else torch.autocast(device.type, enabled=False))

  def sync():
    if device.type == "cuda":
      torch.cuda.synchronize()

  def run_epoch():
    order = torch.randperm(n, device=device)
    mistakes = torch.zeros((), dtype=torch.int64, device=device)
    for begin in range(0, n, BATCH):
      idx = order[begin:begin + BATCH]
      xb, yb = x[idx], y[idx]
      optimizer.zero_grad()
      with autocast:
        out = model(xb)
        loss = F.cross_entropy(out.float(), yb)
      loss.backward()
      optimizer.step()
      mistakes += (out.argmax(1) != yb).sum()
    mistakes.item()
    sync()

  warmup, times, _ = timed_epochs(run_epoch, repeats, max_timed_s)
  del model, optimizer, x, y
  if device.type == "cuda":
    torch.cuda.empty_cache()
  return {"warmup_s": warmup, "times_s": times}


# ---- the run --------------------------------------------------------------------------------

def versions() -> dict:
  import flax
  import optax
  out = {"python": platform.python_version(), "jax": jax.__version__,
         "jaxlib": _jaxlib_version(),
         "flax": flax.__version__, "optax": optax.__version__, "numpy": np.__version__}
  try:
    import torch
    out["torch"] = torch.__version__
  except Exception:  # noqa: BLE001
    out["torch"] = None
  return out


def _jaxlib_version():
  try:
    import jaxlib
    return jaxlib.__version__
  except Exception:  # noqa: BLE001
    return None


def device_info() -> dict:
  dev = jax.devices()[0]
  info = {"backend": jax.default_backend(), "device_kind": dev.device_kind,
          "num_devices": jax.device_count(), "platform": platform.platform(),
          "processor": platform.processor(), "cpu_count": os.cpu_count()}
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          info["cpu_model"] = line.split(":", 1)[1].strip()
          break
  except OSError:
    pass
  if hasattr(os, "getloadavg"):
    info["loadavg_at_start"] = os.getloadavg()
  return info


def summarize(row: dict, flops_per_sample: float | None, peak: float | None) -> dict:
  times = row.get("times_s") or []
  if times:
    best = min(times)
    samples = row["seeds"] * row["steps"] * BATCH
    row["samples_per_s"] = samples / best
    row["samples_per_s_median"] = samples / statistics.median(times)
    row["ms_per_step"] = 1000.0 * best / row["steps"]
    if flops_per_sample:
      row["flop_per_s"] = flops_per_sample * row["samples_per_s"]
      if peak:
        row["pct_of_peak"] = 100.0 * row["flop_per_s"] / peak
  return row


def print_table(rows: list[dict], stream=sys.stdout) -> None:
  header = (f"{'model':<17}{'S':>2}  {'impl':<6}{'loop':<5} {'layout':<10}{'thr':>3} {'order':<7}"
            f"{'steps':>5}"
            f"{'samples/s':>11}{'ms/step':>9}{'MFLOP/smp':>10}{'GFLOP/s':>9}{'%peak':>7}"
            f"{'vs torch':>9}{'compile+1':>10}")
  print(header, file=stream)
  print("-" * len(header), file=stream)
  for r in rows:
    mark = "*" if r.get("default") else " "
    fmt = lambda key, spec: format(r[key], spec) if r.get(key) is not None else "-"
    line = (f"{r['model']:<17}{r['seeds']:>2} {mark}{r['impl']:<6}{r.get('loop') or '-':<5} "
            f"{r.get('layout') or '-':<10}{r.get('threads') or '-':>3} {r.get('order') or '-':<7}"
            f"{r['steps']:>5}")
    if r.get("error") or r.get("skipped"):
      why = r.get("error") or r.get("skipped")
      print(f"{line}  {'FAILED' if r.get('error') else 'skipped'}: {why[:80]}", file=stream)
      continue
    mflop = r["flops_per_sample"] / 1e6 if r.get("flops_per_sample") else None
    line += (f"{fmt('samples_per_s', '11.0f')}{fmt('ms_per_step', '9.1f')}"
             f"{format(mflop, '10.2f') if mflop else '-':>10}"
             f"{format(r['flop_per_s'] / 1e9, '9.1f') if r.get('flop_per_s') else '-':>9}"
             f"{fmt('pct_of_peak', '7.1f'):>7}"
             f"{format(r['vs_torch'], '8.2f') + 'x' if r.get('vs_torch') else '-':>9}"
             f"{format(r['warmup_s'], '9.1f') + 's' if r.get('warmup_s') is not None else '-':>10}")
    if r.get("note", "").startswith("one epoch"):
      line += "  (1 epoch)"
    elif r.get("note", "").startswith("same compiled program"):
      line += "  (=own)"
    print(line, file=stream)
  print("* = the path loop, seed_layout and concurrent_seeds 'auto' pick here (shared_order off); "
        "S = seeds; thr = sequential seeds trained at once in threads; "
        "samples/s summed over seeds (best of the timed epochs); "
        "compile+1 = first epoch incl. compilation", file=stream)


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--steps", default="auto",
                      help="steps (batches of 64) per timed epoch, or 'auto' (per model and backend)")
  parser.add_argument("--out", default="results.json", help="JSON output ('' for none)")
  parser.add_argument("--models", nargs="+", default=[m for m, _ in DEFAULT_ROWS],
                      help="registry names (default: %(default)s)")
  parser.add_argument("--seeds", default=None,
                      help="comma-separated seed counts for every model (default: 5 for small "
                           "nets, 1,5 for BatchNorm nets)")
  parser.add_argument("--skip_torch", action="store_true", help="no PyTorch reference rows")
  parser.add_argument("--skip_engine", action="store_true", help="only the PyTorch rows")
  parser.add_argument("--paths", choices=("all", "default"), default="all",
                      help="all engine paths, or only the one loop/seed_layout='auto' picks")
  parser.add_argument("--torch_threads", type=int, default=None,
                      help="torch.set_num_threads (default: torch's, one per core; on a machine "
                           "shared with other jobs 1 can be much faster)")
  parser.add_argument("--precision", choices=("default", "highest", "bf16"), default="default")
  parser.add_argument("--repeats", type=int, default=3, help="timed epochs per row (best is kept)")
  parser.add_argument("--max_timed_s", type=float, default=None,
                      help="stop repeating once a row's timed epochs took this long "
                           "(default 20 on the CPU, 10 on accelerators)")
  parser.add_argument("--max_epoch_s", type=float, default=None,
                      help="a compiled scan epoch slower than this is timed once, and a row whose "
                           "1-seed rate projects an epoch over 5x this is skipped (default 30 on "
                           "the CPU, none on accelerators)")
  parser.add_argument("--sequential", choices=("deep", "all"), default="all",
                      help="sequential-seed rows for every model, or only for the BatchNorm nets "
                           "(where seed_layout='auto' picks them)")
  parser.add_argument("--slow_cpu_scans", choices=("skip", "run"), default="skip",
                      help="on the CPU, skip a conv net's scan row when its step row takes over "
                           "50 ms per seed-step (as seed_layout=auto does: such scans take "
                           "minutes per step)")
  parser.add_argument("--budget_s", type=float, default=None,
                      help="skip rows once the run has taken this long (default: 270 on "
                           "accelerators, none on the CPU)")
  parser.add_argument("--no_compile_cache", action="store_true",
                      help="no temporary persistent compilation cache (it lets identical "
                           "computations, e.g. own/shared order, compile once)")
  return parser.parse_args(argv)


def main(argv=None) -> int:
  args = parse_args(argv)
  start = time.time()
  backend = jax.default_backend()
  accel = backend != "cpu"
  budget = args.budget_s if args.budget_s is not None else (270.0 if accel else None)
  max_timed_s = args.max_timed_s if args.max_timed_s is not None else (10.0 if accel else 20.0)
  max_epoch_s = args.max_epoch_s if args.max_epoch_s is not None else (None if accel else 30.0)
  if args.precision == "highest":
    jax.config.update("jax_default_matmul_precision", "highest")
  if not args.no_compile_cache:
    jax.config.update("jax_compilation_cache_dir", tempfile.mkdtemp(prefix="learnjax_bench_cc_"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  dtype = jnp.bfloat16 if args.precision == "bf16" else None
  torch_settings = None
  if not args.skip_torch:
    try:
      torch_settings = set_torch_precision(args.precision, args.torch_threads)
    except ImportError:
      print("torch is not installed: no PyTorch rows (pip install torch; see benchmarks/README.md)")
      args.skip_torch = True

  info = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
          "device": device_info(), "versions": versions(), "args": vars(args),
          "precision": args.precision,
          "jax_default_matmul_precision": jax.config.jax_default_matmul_precision,
          "torch_settings": torch_settings, "batch_size": BATCH, "learning_rate": LEARNING_RATE}
  print(f"learnjax benchmark {info['date']}: {backend} ({info['device']['device_kind']}), "
        f"jax {info['versions']['jax']}, torch {info['versions']['torch']}, "
        f"precision {args.precision}", flush=True)
  peak = matmul_peak(backend, args.precision, with_torch=not args.skip_torch)
  info["matmul_peak_flop_per_s"] = peak
  # The device's peak at the row precision: the best of XLA's and torch's matmul (on the CPU
  # torch's BLAS is the faster one; a GPU's TF32/fp32 peak is XLA's at that precision).
  torch_key = "torch_bf16" if args.precision == "bf16" else "torch_fp32"
  row_peak = max(peak[peak["row_precision"]], peak.get(torch_key, 0.0))
  info["peak_used_flop_per_s"] = row_peak
  print("matmul peak ({0}x{0}): ".format(peak["n"]) + ", ".join(
      f"{k} {peak[k] / 1e9:.0f} GFLOP/s" for k in ("fp32_default", "fp32_highest", "bf16",
                                                    "torch_fp32", "torch_bf16") if k in peak)
      + f"; %peak uses {row_peak / 1e9:.0f} GFLOP/s", flush=True)

  seeds_override = [int(s) for s in args.seeds.split(",")] if args.seeds else None
  default_seeds = dict(DEFAULT_ROWS)
  rows: list[dict] = []
  out_path = args.out

  def write_json():
    if out_path:
      with open(out_path, "w") as f:
        json.dump({**info, "elapsed_s": time.time() - start, "rows": rows}, f, indent=1)

  def over_budget():
    return budget is not None and time.time() - start > budget

  for name in args.models:
    try:
      model = models.build(name, NUM_CLASSES, dtype=dtype)
      shapes = jax.eval_shape(functools.partial(model.init, train=False), jax.random.PRNGKey(0),
                              jnp.zeros((1,) + IMAGE, jnp.float32))
    except Exception as e:  # noqa: BLE001
      rows.append({"model": name, "seeds": 0, "impl": "-", "steps": 0,
                   "error": f"build: {type(e).__name__}: {e}"})
      print(f"{name}: could not build: {e}", flush=True)
      write_json()
      continue
    deep = is_deep(shapes)
    seed_counts = seeds_override or default_seeds.get(name) or ((1, 5) if deep else (5,))
    steps = auto_steps(backend, name, deep) if args.steps == "auto" else int(args.steps)
    cfg = engine.TrainConfig(batch_size=BATCH, learning_rate=LEARNING_RATE)
    n = steps * BATCH
    max_seeds = max(seed_counts)
    kx, ky = jax.random.split(jax.random.PRNGKey(7))
    x = jax.device_put(jax.random.normal(kx, (n,) + IMAGE, jnp.float32))
    y_all = jax.device_put(jax.random.randint(ky, (max_seeds, n), 0, NUM_CLASSES, jnp.int32))
    # What auto picks for this model here.
    variables = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    conv = models.uses_convolution(model, variables, x[:1])
    auto_loop = engine.choose_loop(cfg, model, variables, x[:1])
    auto_layout = execution.choose_seed_layout("auto", model, x[:1])
    auto_plans = {}
    for num_seeds in seed_counts:
      if num_seeds > 1 and not args.skip_engine and not over_budget():
        auto_plans[num_seeds] = measure_auto(model, cfg, num_seeds, x, y_all[:num_seeds])
    try:
      plain = models.build(name, NUM_CLASSES, dtype=dtype, forms="accelerator")
      flops_per_step = train_step_flops(engine.Trainer(plain, cfg), x, y_all)
    except Exception as e:  # noqa: BLE001
      print(f"{name}: cost analysis failed: {e}", flush=True)
      flops_per_step = None
    flops_per_sample = flops_per_step / BATCH if flops_per_step else None
    picks = (", ".join(f"S={k}: {p.name} (measured)" for k, (p, _) in auto_plans.items())
             or f"loop={auto_loop} seed_layout={auto_layout} (rule)")
    print(f"\n{name}: {steps} steps/epoch, auto picks {picks}, "
          f"{(flops_per_sample or 0) / 1e6:.2f} MFLOP/sample (train step)", flush=True)
    torch_result = None
    one_seed_rates = {}
    for num_seeds in seed_counts:
      y = y_all[:num_seeds]
      base = {"model": name, "seeds": num_seeds, "steps": steps,
              "flops_per_sample": flops_per_sample}
      model_rows = []
      if not args.skip_engine:
        for path in engine_paths(num_seeds, deep, args.sequential == "all",
                                 layouts.has_seed_batched_form(model)):
          auto = auto_plans.get(num_seeds)
          if auto is not None:
            default = path.order == "own" and path.plan() == auto[0]
          else:
            default = path.loop == auto_loop and path.order == "own"
          if args.paths == "default" and not default:
            continue
          row = {**base, "impl": "jax", "loop": path.loop, "layout": path.layout,
                 "threads": path.threads if path.layout == "sequential" else None,
                 "order": path.order if num_seeds > 1 else "-", "default": default}
          one_seed_rate = one_seed_rates.get(path.loop)
          projected = (num_seeds * n / one_seed_rate) if one_seed_rate else None
          slow_step = next((r for r in model_rows if r.get("loop") == "step"
                            and r.get("layout") == path.layout and r.get("order") == path.order
                            and r.get("threads") == row["threads"] and r.get("ms_per_step")),
                           None)
          if over_budget():
            row["skipped"] = "time budget"
          elif (path.loop == "scan" and backend == "cpu" and conv and slow_step is not None
                and slow_step["ms_per_step"] / num_seeds > 1e3 * layouts.CPU_SCAN_CONV_MAX_STEP_S
                and args.slow_cpu_scans == "skip"):
            row["skipped"] = (f"conv net on the CPU, {slow_step['ms_per_step'] / num_seeds:.0f} "
                              "ms per seed-step in the step loop: its scan takes minutes per step")
          elif (num_seeds > 1 and projected and max_epoch_s is not None
                and projected > 5 * max_epoch_s):
            row["skipped"] = (f"projected {projected:.0f} s per epoch from the 1-seed "
                              f"{path.loop} rate ({one_seed_rate:.1f} samples/s)")
          else:
            try:
              same_as = None
              if path.order == "shared" and path.loop == "scan" and max_epoch_s is not None:
                same_as = next((r for r in model_rows if r.get("loop") == "scan"
                                and r.get("layout") == "vmap" and r.get("order") == "own"
                                and r.get("times_s") and min(r["times_s"]) > max_epoch_s), None)
              row.update(run_engine_path(model, cfg, path, num_seeds, x, y, args.repeats,
                                         max_timed_s, max_epoch_s, same_as))
            except Exception as e:  # noqa: BLE001
              row["error"] = f"{type(e).__name__}: {str(e)[:300]}"
              row["traceback"] = traceback.format_exc()[-2000:]
          model_rows.append(summarize(row, flops_per_sample, row_peak))
          if num_seeds == 1 and row.get("samples_per_s"):
            one_seed_rates[path.loop] = row["samples_per_s"]
          print_row_progress(model_rows[-1])
          gc.collect()
          jax.clear_caches()
      if not args.skip_torch:
        row = {**base, "impl": "torch", "loop": "eager", "layout": "sequential", "order": "own"}
        if torch_result is None:
          if over_budget():
            torch_result = {"skipped": "time budget"}
          else:
            try:
              torch_result = run_torch(name, np.asarray(x), np.asarray(y_all[0]),
                                       args.precision, args.repeats, max_timed_s)
            except Exception as e:  # noqa: BLE001
              torch_result = {"error": f"{type(e).__name__}: {str(e)[:300]}",
                              "traceback": traceback.format_exc()[-2000:]}
        else:
          row["note"] = "seeds run one after another: the 1-seed rate, measured once"
        row.update(torch_result)
        if "times_s" in row:
          # S seeds in turn take S times as long: the total rate is the one-seed rate.
          row["times_s"] = [t * num_seeds for t in torch_result["times_s"]]
          row["warmup_s"] = torch_result["warmup_s"]
        summarize(row, flops_per_sample, row_peak)
        for r in model_rows:
          if r.get("samples_per_s") and row.get("samples_per_s"):
            r["vs_torch"] = r["samples_per_s"] / row["samples_per_s"]
        model_rows.append(row)
        print_row_progress(row)
      if num_seeds in auto_plans:
        model_rows.append(auto_row(base, *auto_plans[num_seeds], model_rows))
        print_auto_row(model_rows[-1])
      rows.extend(model_rows)
      write_json()
    del x, y_all
    gc.collect()

  print()
  print_table(rows)
  info["elapsed_s"] = time.time() - start
  write_json()
  print(f"\n{len(rows)} rows in {time.time() - start:.0f} s" +
        (f"; written to {out_path}" if out_path else ""))
  return 0


# What seed_layout='auto' measures before a training: bounded as for a T4 cell (500 epochs of 5
# seeds on 25,000 CIFAR images), in a cache of this run's own.
AUTO_TRAINING_SAMPLES = 500 * 5 * 25_000


def measure_auto(model, cfg: engine.TrainConfig, num_seeds: int, x, y):
  """(plan, record): what ``train.seed_layout=auto`` picks here, measured through
  ``execution.choose_plan`` as a training does (a fresh cache, so it measures)."""
  os.environ["LEARNJAX_CACHE_DIR"] = tempfile.mkdtemp(prefix="learnjax_bench_layouts_")
  trainer = engine.Trainer(model, cfg)
  keys = seed_keys(num_seeds, 1), seed_keys(num_seeds, 2)
  original = layouts.choose
  try:
    layouts.choose = functools.partial(original, training_samples=AUTO_TRAINING_SAMPLES)
    plan, record = execution.choose_plan(trainer, *keys, x, y, per_seed_x=False,
                                         seed_layout="auto", concurrent_seeds=0)
  finally:
    layouts.choose = original
  return plan, record


def auto_row(base: dict, plan, record: dict, model_rows: list[dict]) -> dict:
  """The row for what auto picked: its measuring cost, and the benchmark's own rate of the
  picked path against the fastest own-order path of this run."""
  own = [r for r in model_rows if r.get("impl") == "jax" and r.get("order") == "own"
         and r.get("samples_per_s")]
  picked = next((r for r in own if r.get("default")), None)
  fastest = max(own, key=lambda r: r["samples_per_s"], default=None)
  row = {**base, "impl": "auto", "loop": plan.loop, "layout": plan.seed_layout,
         "threads": plan.concurrent_seeds if plan.seed_layout == "sequential" else None,
         "order": "own", "plan": plan.name, "measure_s": record.get("measure_s"),
         "measure_complete": record.get("complete"), "auto_timings": record.get("timings")}
  if picked and fastest:
    row["samples_per_s"] = picked["samples_per_s"]
    row["fastest_path"] = (f"{fastest['layout']}/{fastest['loop']}"
                           + (f" x{fastest['threads']}" if fastest.get("threads") else ""))
    row["fastest_samples_per_s"] = fastest["samples_per_s"]
    row["vs_fastest"] = picked["samples_per_s"] / fastest["samples_per_s"]
  return row


def print_auto_row(r: dict) -> None:
  text = f"  auto  S={r['seeds']} picks {r['plan']} (measured in {r['measure_s']:.1f} s"
  text += "" if r.get("measure_complete") else ", cut by its budget"
  text += ")"
  if r.get("vs_fastest"):
    text += (f": {r['samples_per_s']:.0f} samples/s in this run, {r['vs_fastest']:.2f}x the "
             f"fastest path ({r['fastest_path']}, {r['fastest_samples_per_s']:.0f})")
  print(text, flush=True)


def print_row_progress(r: dict) -> None:
  threads = f" threads={r['threads']}" if r.get("threads") else ""
  what = (f"  {r['impl']:<5} S={r['seeds']} loop={r.get('loop')} layout={r.get('layout')}{threads} "
          f"order={r.get('order')}{' (auto)' if r.get('default') else ''}: ")
  if r.get("error"):
    print(what + "FAILED " + r["error"][:200], flush=True)
  elif r.get("skipped"):
    print(what + "skipped (" + r["skipped"] + ")", flush=True)
  else:
    times = ", ".join(f"{t:.2f}" for t in r["times_s"])
    print(what + f"{r['samples_per_s']:.0f} samples/s (epochs {times} s; first "
          f"{r['warmup_s']:.1f} s)", flush=True)


if __name__ == "__main__":
  sys.exit(main())
