"""Runs that survive: SIGKILL and SIGTERM mid-training, damaged checkpoints, two workers."""

import glob
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

# Each test trains in subprocesses and waits for checkpoints: long.
pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Long enough (no early stop) that a kill lands mid-training; small enough to run in seconds.
ARGS = ["--config=configs/quickstart.py", "--config.seeds=2", "--config.train.max_epochs=60",
        "--config.train.stop_error=0", "--config.data.n1_size=200", "--config.data.n2_size=200",
        "--config.data.test_size=100", "--config.checkpoint_every_epochs=2",
        "--config.data.variant=true,random_labels"]


def start(workdir, *extra):
  return subprocess.Popen([sys.executable, "-m", "learnjax.main", *ARGS, *extra,
                           f"--workdir={workdir}"], cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


def finish(workdir, *extra):
  proc = start(workdir, *extra)
  out, err = proc.communicate(timeout=600)
  assert proc.returncode == 0, err
  return out


def wait_for_checkpoint(workdir, min_step=4, timeout=300):
  deadline = time.time() + timeout
  while time.time() < deadline:
    steps = [int(os.path.basename(p)) for p in
             glob.glob(os.path.join(workdir, "checkpoints", "*", "*", "*", "[0-9]*"))
             if os.path.basename(p).isdigit()]
    if steps and max(steps) >= min_step:
      return
    time.sleep(0.05)
  raise AssertionError("no checkpoint appeared")


def arrays(workdir):
  out = {}
  for path in sorted(glob.glob(os.path.join(workdir, "cells", "*", "arrays.npz"))):
    with np.load(path) as data:
      out[os.path.basename(os.path.dirname(path))] = {k: data[k] for k in data.files}
  return out


def assert_same_results(a, b):
  assert a.keys() == b.keys() and a
  for cell in a:
    for key in a[cell]:
      np.testing.assert_array_equal(a[cell][key], b[cell][key], err_msg=f"{cell} {key}")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """The results of an uninterrupted run."""
  workdir = str(tmp_path_factory.mktemp("reference"))
  finish(workdir)
  return arrays(workdir)


def test_killed_runs_resume_to_the_uninterrupted_result(tmp_path, reference):
  workdir = str(tmp_path / "interrupted")
  # SIGKILL in N1's training, then again in a later training (N1 of the second row or an N2).
  for min_step in (4, 30):
    proc = start(workdir)
    wait_for_checkpoint(workdir, min_step)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # What a kill in the middle of a save leaves: a half-written temporary checkpoint folder.
    steps = [p for p in glob.glob(os.path.join(workdir, "checkpoints", "*", "*", "*", "[0-9]*"))
             if os.path.basename(p).isdigit()]
    latest = max(steps, key=lambda p: int(os.path.basename(p)))
    partial = f"{latest}0.orbax-checkpoint-tmp"
    shutil.copytree(latest, partial)
    files = [f for f in glob.glob(os.path.join(partial, "**"), recursive=True) if os.path.isfile(f)]
    for f in files[:3]:
      open(f, "wb").close()
  finish(workdir)
  assert_same_results(reference, arrays(workdir))
  assert not glob.glob(os.path.join(workdir, "checkpoints", "*", "*")), "finished units keep no checkpoints"


def test_sigterm_saves_state_and_exits_cleanly(tmp_path):
  workdir = str(tmp_path / "w")
  proc = start(workdir)
  wait_for_checkpoint(workdir, 4)
  proc.send_signal(signal.SIGTERM)
  out, err = proc.communicate(timeout=120)
  assert proc.returncode == 143, err
  assert "Traceback" not in err and "run the same command again to resume" in err
  resumed = finish(workdir)
  assert "learnability %" in resumed


def test_damaged_checkpoint_is_named_in_one_error_line(tmp_path):
  workdir = str(tmp_path / "w")
  proc = start(workdir)
  wait_for_checkpoint(workdir, 4)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  for path in glob.glob(os.path.join(workdir, "checkpoints", "*", "*", "*", "[0-9]*", "state", "**"),
                        recursive=True):
    if os.path.isfile(path):
      with open(path, "r+b") as f:
        f.truncate(max(0, os.path.getsize(path) // 3))
  proc = start(workdir)
  out, err = proc.communicate(timeout=300)
  assert proc.returncode == 2 and "Traceback" not in err
  lines = [line for line in err.splitlines() if line.startswith("error:")]
  assert len(lines) == 1 and "checkpoint" in lines[0] and workdir in lines[0], err


def test_two_workers_on_one_workdir_share_it_without_redoing_work(tmp_path, reference):
  workdir = str(tmp_path / "shared")
  first, second = start(workdir), start(workdir)
  outs = [p.communicate(timeout=600) for p in (first, second)]
  assert first.returncode == 0 and second.returncode == 0, outs
  # Two N1 rows and two cells in all: each trained by exactly one of the workers.
  assert sum(out.count("on D1 (") for out, _ in outs) == 2
  assert sum(out.count("on N1's labels") for out, _ in outs) == 2
  finish(workdir)  # a third launch finds everything done
  assert_same_results(reference, arrays(workdir))


def test_workdir_with_results_of_another_protocol_is_refused(tmp_path):
  workdir = str(tmp_path / "w")
  finish(workdir, "--config.train.max_epochs=2")
  proc = start(workdir, "--config.train.max_epochs=3")
  out, err = proc.communicate(timeout=300)
  assert proc.returncode == 2 and "different config" in err and "max_epochs" in err
