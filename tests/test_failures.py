"""A failure of the machine is never a result: memory, a full disk, a lost device, shared rows.

Each failure is injected where it happens (the checkpoint library's write, the engine's training
step), so these run anywhere; ``test_a_real_full_disk`` uses a small tmpfs where one can be
mounted.
"""

import errno
import json
import os
import shutil
import subprocess
import sys
import threading
import time

import jax
import numpy as np
import pytest

from learnjax import checkpoint, config as config_lib, engine, failures, store as store_lib, sweep

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny(**fields):
  config = config_lib.base_config()
  for key, value in {"data.name": "digits", "data.variant": "true", "seeds": 1,
                     "train.max_epochs": 2, "data.n1_size": 60, "data.n2_size": 60,
                     "data.test_size": 40, "n1.model": "mlp_1", "n2.model": "mlp_1,mlp_2",
                     "checkpoint_every_epochs": 1, **fields}.items():
    config_lib.set_field(config, key, value)
  return config


def launch(config, workdir, **kwargs):
  lines = []
  outcome = sweep.launch(config, str(workdir), out=lines.append, **kwargs)
  return outcome, lines


def cell_ids(workdir):
  return sorted(os.listdir(os.path.join(workdir, "cells"))) if os.path.isdir(
      os.path.join(workdir, "cells")) else []


def oom():
  return jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to "
                                    "allocate 8589934592 bytes.")


def orbax_disk_full(path="/w/checkpoints/n1/x/seeds0-0/1"):
  """What the checkpoint library raises when the disk fills: its own type, 'RESOURCE_EXHAUSTED'."""
  return ValueError(f'RESOURCE_EXHAUSTED: Error writing "done/0" in OCDBT database at local file '
                    f'"{path}": Failed to write 11207 bytes to file 21: No space left on device '
                    "[os_error_code='28']")


# Classification by cause.

@pytest.mark.parametrize("make, kind", [
    (lambda: OSError(errno.ENOSPC, "No space left on device"), failures.STORAGE),
    (lambda: OSError(errno.EDQUOT, "Disk quota exceeded"), failures.STORAGE),
    (lambda: OSError(errno.EIO, "Input/output error"), failures.STORAGE),
    (lambda: failures.StorageError("/w/x", orbax_disk_full()), failures.STORAGE),
    (oom, failures.OUT_OF_MEMORY),
    (lambda: MemoryError(), failures.OUT_OF_MEMORY),
    (lambda: jax.errors.JaxRuntimeError("UNAVAILABLE: TPU device lost"), failures.DEVICE),
    (lambda: jax.errors.JaxRuntimeError("INTERNAL: CUDA error: an illegal memory access"),
     failures.DEVICE),
    # Not the machine: a bug, an input, or another library's words for something else.
    (orbax_disk_full, None),
    (lambda: ValueError("RESOURCE_EXHAUSTED: Out of memory"), None),
    (lambda: jax.errors.JaxRuntimeError("INVALID_ARGUMENT: shapes differ"), None),
    (lambda: RuntimeError("Out of memory"), None),
])
def test_failures_are_told_by_their_cause(make, kind):
  assert failures.classify(make()) == kind


def test_a_failed_write_is_never_out_of_memory_whatever_its_library_says():
  with pytest.raises(failures.StorageError) as caught:
    with failures.writing("/w/checkpoints/n1/x/seeds0-0/1"):
      raise orbax_disk_full()
  error = caught.value
  assert failures.classify(error) == failures.STORAGE and error.errno == errno.ENOSPC
  assert "No space left on device" in failures.message(failures.STORAGE, error)
  assert "memory" not in failures.message(failures.STORAGE, error)
  # A bug inside a write keeps its type and traceback.
  with pytest.raises(TypeError):
    with failures.writing("/w/x"):
      raise TypeError("bad argument")
  # The cause chain counts: an OSError behind another library's error is a storage failure.
  try:
    try:
      raise OSError(errno.ENOSPC, "No space left on device", "/w/results.json")
    except OSError as e:
      raise RuntimeError("RESOURCE_EXHAUSTED: write failed") from e
  except RuntimeError as e:
    assert failures.classify(e) == failures.STORAGE
    assert failures.message(failures.STORAGE, e).endswith(
        "No space left on device: /w/results.json")


def test_exit_codes_are_distinct_from_success_and_bad_input():
  codes = [*failures.EXIT_CODES.values(), failures.EXIT_ROWS_ELSEWHERE, failures.EXIT_INTERRUPTED]
  assert len(set(codes)) == len(codes) and not {0, 1, 2} & set(codes)


# A full disk: recorded as an attempt, the launch stops, a later launch measures every cell.

@pytest.mark.slow
def test_a_full_disk_in_a_checkpoint_is_an_attempt_and_a_later_launch_measures_every_cell(
    tmp_path, monkeypatch):
  workdir = str(tmp_path / "w")
  real_save = checkpoint.TrainingCheckpoint.manager

  class FullDisk:
    def __init__(self, manager):
      self._manager = manager

    def __getattr__(self, name):
      return getattr(self._manager, name)

    def save(self, *args, **kwargs):
      raise orbax_disk_full()

  monkeypatch.setattr(checkpoint.TrainingCheckpoint, "manager",
                      property(lambda self: FullDisk(real_save.fget(self))))
  with pytest.raises(failures.MachineFailure) as caught:
    launch(tiny(), workdir)
  assert caught.value.kind == failures.STORAGE and caught.value.exit_code == 4
  assert "No space left on device" in str(caught.value) and "memory" not in str(caught.value)
  assert cell_ids(workdir) == []   # nothing stored as a result
  store = store_lib.Store(workdir)
  assert {a["failure"] for a in store.attempts("cells")} == {failures.STORAGE}
  assert len(store.attempts("cells")) == 2 and store.attempt("n1", "true__mlp_1__b64")
  monkeypatch.undo()
  outcome, lines = launch(tiny(), workdir)   # the disk has room again
  assert outcome.exit_code == 0 and outcome.last_line() is None
  assert any("stopped in an earlier launch (2 cannot write to the workdir): retried" in line
             for line in lines), lines
  assert len(outcome.cells) == 2 and all(c["status"] == "ok" for c in outcome.cells)
  assert store.attempts("cells") == [] and store.attempts("n1") == []


# Out of memory: the sweep goes on, the cell is retried by the next launch unless told not to.

@pytest.mark.slow
def test_out_of_memory_is_an_attempt_retried_unless_told_not_to(tmp_path, monkeypatch):
  workdir = str(tmp_path / "w")
  real_train = engine.Trainer.train

  def train(self, *args, **kwargs):
    if "mlp_2" in type(self.model).__name__.lower() or getattr(self.model, "depth", 1) == 2:
      raise oom()
    return real_train(self, *args, **kwargs)

  monkeypatch.setattr(engine.Trainer, "train", train)
  import learnjax
  with pytest.warns(failures.MachineFailureWarning, match="1 cell not measured \\(out of memory"):
    cells = learnjax.run(tiny(), workdir, out=None)   # the API: the measured cells, and a warning
  assert [c["n2_model"] for c in cells] == ["mlp_1"]
  from learnjax.report.document import build_report
  assert "OOM" in build_report(workdir, None)[0]   # the report marks where memory ran out
  shutil.rmtree(os.path.join(workdir, "attempts"))
  outcome, lines = launch(tiny(), workdir)
  assert outcome.exit_code == failures.EXIT_CODES[failures.OUT_OF_MEMORY]
  assert [c["n2_model"] for c in outcome.cells] == ["mlp_1"]
  assert "out of memory" in outcome.last_line() and "retries" in outcome.last_line()
  assert cell_ids(workdir) == ["true__mlp_1__b64__mlp_1__b64"]
  [attempt] = store_lib.Store(workdir).attempts("cells")
  assert attempt["cell"] == "true__mlp_1__b64__mlp_2__b64" and attempt["failure"] == "out_of_memory"
  # Told not to retry (a cell known to be too big): left, and the launch is complete.
  outcome, lines = launch(tiny(), workdir, retry_out_of_memory=False)
  assert outcome.exit_code == 0 and outcome.not_retried == ["true__mlp_1__b64__mlp_2__b64"]
  assert not any(": training" in line for line in lines)
  # A larger machine: the next launch retries it, and measures it.
  monkeypatch.undo()
  outcome, lines = launch(tiny(), workdir)
  assert outcome.exit_code == 0 and len(outcome.cells) == 2
  assert any("1 out of memory" in line and "retried" in line for line in lines), lines
  assert store_lib.Store(workdir).attempts("cells") == []


@pytest.mark.slow
def test_cells_stored_as_out_of_memory_by_an_earlier_version_are_retried(tmp_path):
  workdir = str(tmp_path / "w")
  outcome, _ = launch(tiny(), workdir)
  assert outcome.exit_code == 0
  store = store_lib.Store(workdir)
  # What an earlier learnjax stored for a full disk it took for memory.
  cell = "true__mlp_1__b64__mlp_2__b64"
  result, _ = store.load("cells", cell)
  shutil.rmtree(os.path.join(workdir, "cells", cell))
  store.save("cells", cell, {k: result[k] for k in ("cell", "variant", "n1_model", "n2_model")}
             | {"status": "out_of_memory", "error": "RESOURCE_EXHAUSTED: Error writing"}, {})
  outcome, lines = launch(tiny(), workdir)
  assert any("stored as 'out of memory' by an earlier learnjax" in line and "trained again" in line
             for line in lines), lines
  assert any(line.startswith(f"N2 {cell}: training") for line in lines)
  assert outcome.exit_code == 0 and {c["status"] for c in outcome.cells} == {"ok"}


# Shared N1 rows: a launch waits for the process training its row, then trains its own cells.

@pytest.mark.slow
def test_a_launch_waits_for_a_shared_row_then_trains_its_own_cells(tmp_path, monkeypatch):
  workdir = str(tmp_path / "w")
  launch(tiny(**{"n2.model": "mlp_1"}), workdir)   # the row's N1 and one N2
  store = store_lib.Store(workdir)
  monkeypatch.setattr(sweep.Experiment, "WAIT_POLL_SECONDS", 0.05)
  monkeypatch.setattr(sweep.Experiment, "WAIT_LINE_SECONDS", 0.0)
  lines, result = [], {}
  held, release = threading.Event(), threading.Event()

  def other_process():   # holds the row as another launch training it would
    with open(os.path.join(workdir, "locks", "true__mlp_1__b64.lock"), "a") as f:
      import fcntl
      fcntl.flock(f, fcntl.LOCK_EX)
      held.set()
      release.wait(60)

  holder = threading.Thread(target=other_process)
  holder.start()
  held.wait(10)
  config = tiny(**{"n2.model": "mlp_2"})
  # Without waiting: nothing trained, and a code a job array tells from success.
  outcome, no_wait = launch(config, workdir, wait_for_rows=False)
  assert outcome.exit_code == failures.EXIT_ROWS_ELSEWHERE == 75
  assert outcome.rows_elsewhere == ["true__mlp_1__b64"] and not outcome.cells
  assert "run the same command again" in outcome.last_line()
  worker = threading.Thread(target=lambda: result.update(
      outcome=sweep.launch(config, workdir, out=lines.append)))
  worker.start()
  deadline = time.time() + 30
  while not any("waiting for it" in line for line in lines) and time.time() < deadline:
    time.sleep(0.05)
  assert any("another process is training this row; waiting for it" in line for line in lines)
  assert worker.is_alive()
  release.set()
  holder.join()
  worker.join(120)
  outcome = result["outcome"]
  assert outcome.exit_code == 0 and [c["n2_model"] for c in outcome.cells] == ["mlp_2"]
  assert store.has("cells", "true__mlp_1__b64__mlp_2__b64")


# The command line: the exit code and the last line say which failure.

# learnjax.main under a file size limit the process sets on itself first: a write past it fails
# with EFBIG, as on a full disk. (Not a preexec_fn: forking this multithreaded process to run
# Python before exec can deadlock the child.)
_LIMITED_MAIN = ("import resource, runpy, sys\n"
                 "limit = int(sys.argv.pop(1))\n"
                 "resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))\n"
                 "sys.argv[0] = 'learnjax.main'\n"
                 "runpy.run_module('learnjax.main', run_name='__main__', alter_sys=True)\n")


def _main(workdir, *extra, file_size_limit=None, cwd=ROOT):
  env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
  command = [sys.executable, "-m", "learnjax.main"]
  if file_size_limit is not None:   # it would truncate the tests' shared compilation cache
    env["JAX_ENABLE_COMPILATION_CACHE"] = "false"
    command = [sys.executable, "-c", _LIMITED_MAIN, str(file_size_limit)]
  args = [f"--config={ROOT}/configs/quickstart.py", "--config.data.variant=true",
          "--config.seeds=1", "--config.train.max_epochs=2", "--config.data.n1_size=60",
          "--config.data.n2_size=60", "--config.data.test_size=40",
          "--config.checkpoint_every_epochs=1", f"--workdir={workdir}", *extra]
  return subprocess.run([*command, *args], cwd=cwd, env=env, capture_output=True, text=True,
                        timeout=600)


@pytest.mark.slow
@pytest.mark.parametrize("limit", [8_000, 1_200])
def test_a_full_disk_exits_4_with_one_line_and_a_later_launch_resumes(tmp_path, limit):
  """Every write past ``limit`` bytes fails (a checkpoint's first), as a full disk would; each
  of the checkpoint's concurrent writes may fail, in an order that varies from run to run."""
  workdir = str(tmp_path / "w")
  proc = _main(workdir, file_size_limit=limit)
  assert proc.returncode == 4, proc.stderr
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith("error: ") and "cannot write to the workdir" in last, proc.stderr
  assert "memory" not in last and "Traceback" not in proc.stderr
  assert not os.path.isdir(os.path.join(workdir, "cells")) or cell_ids(workdir) == []
  leftovers = [r for r, dirs, _ in os.walk(workdir) for d in dirs if "orbax-checkpoint-tmp" in d]
  assert not leftovers, leftovers   # the failed write's partial checkpoint freed its space
  proc = _main(workdir)
  assert proc.returncode == 0, proc.stderr
  with open(os.path.join(workdir, "results.json")) as f:
    assert [c["status"] for c in json.load(f)["cells"]] == ["ok"]


def test_the_echoes_of_a_failed_orbax_write_are_kept_off_stderr(tmp_path):
  """A full disk fails every concurrent write of a checkpoint: orbax logs the first with its
  traceback, and asyncio each later one ('Task exception was never retrieved') whenever its task
  is collected, a moment that varies from run to run. The command line keeps both off stderr
  (the failure is its one error line) and every other record."""
  import asyncio
  import gc
  import importlib.util
  import logging

  from learnjax import cli_input

  def module(folder, source):   # a coroutine defined in a file under that folder
    path = tmp_path / folder / "writer.py"
    path.parent.mkdir(parents=True)
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"writer_{folder.replace('/', '_')}", path)
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded

  source = ("import errno\nasync def write():\n"
            "  raise OSError(errno.EFBIG, 'File too large')\n")
  records = []

  class Keep(logging.Handler):
    def emit(self, record):
      records.append(record)

  handler = Keep()
  handler.addFilter(cli_input.not_an_orbax_echo)
  logger = logging.getLogger("asyncio")
  logger.addHandler(handler)
  try:
    for folder in ("site-packages/orbax/checkpoint", "site-packages/other"):
      loop = asyncio.new_event_loop()
      task = loop.create_task(module(folder, source).write())
      loop.run_until_complete(asyncio.sleep(0))   # it fails; nobody asks for its exception
      loop.close()
      del task
      gc.collect()                                 # asyncio logs it now, with its traceback
  finally:
    logger.removeHandler(handler)
  [kept] = records
  assert "Task exception was never retrieved" in kept.getMessage()
  assert "site-packages/other" in kept.getMessage()
  orbax_own = logging.LogRecord("absl", logging.ERROR, "/x/orbax/checkpoint/future.py", 1,
                                "_SignalingThread.run() raised an exception", None, None)
  warning = logging.LogRecord("absl", logging.WARNING, "/x/orbax/checkpoint/future.py", 1,
                              "a warning", None, None)
  assert not cli_input.not_an_orbax_echo(orbax_own) and cli_input.not_an_orbax_echo(warning)


def _tmpfs(path, size="2m"):
  os.makedirs(path, exist_ok=True)
  try:
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path], check=True,
                   capture_output=True, timeout=30)
  except (OSError, subprocess.SubprocessError):
    pytest.skip("no tmpfs can be mounted here (needs root)")


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux" or os.geteuid() != 0, reason="mounts a tmpfs")
def test_a_real_full_disk_moved_to_a_big_one_ends_with_every_cell_measured(tmp_path):
  small = str(tmp_path / "small")
  _tmpfs(small)
  try:
    with open(os.path.join(small, "filler"), "wb") as f:
      f.write(b"\0" * (2048 - 200) * 1024)
    proc = _main(os.path.join(small, "w"), "--config.seeds=2")
    assert proc.returncode in (0, 4), proc.stderr
    if proc.returncode == 4:
      assert "No space left on device" in proc.stderr.splitlines()[-1]
    shutil.copytree(os.path.join(small, "w"), str(tmp_path / "big"))
  finally:
    subprocess.run(["umount", small], capture_output=True, timeout=30)
  proc = _main(str(tmp_path / "big"), "--config.seeds=2")
  assert proc.returncode == 0, proc.stderr
  with open(tmp_path / "big" / "results.json") as f:
    assert [c["status"] for c in json.load(f)["cells"]] == ["ok"]


@pytest.mark.slow
def test_two_launches_sharing_an_n1_row_with_other_n2_models_both_train_their_cells(tmp_path):
  workdir = str(tmp_path / "w")
  env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
  args = [sys.executable, "-m", "learnjax.main", f"--config={ROOT}/configs/quickstart.py",
          "--config.data.variant=true", "--config.seeds=1", "--config.train.max_epochs=30",
          "--config.train.stop_error=0", "--config.data.n1_size=300", "--config.data.n2_size=60",
          "--config.data.test_size=40", f"--workdir={workdir}"]
  first = subprocess.Popen(args + ["--config.n2.model=mlp_1"], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
  time.sleep(2)
  second = subprocess.Popen(args + ["--config.n2.model=mlp_2"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
  outs = [p.communicate(timeout=600) for p in (first, second)]
  assert first.returncode == 0 and second.returncode == 0, outs
  assert cell_ids(workdir) == ["true__mlp_1__b64__mlp_1__b64", "true__mlp_1__b64__mlp_2__b64"]
  assert sum(out.count("on D1 (") for out, _ in outs) == 1   # one N1, trained once
