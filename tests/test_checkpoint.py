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


def test_a_changed_seed_layout_resumes_the_interrupted_training_under_its_own(tmp_path,
                                                                             monkeypatch, capsys):
  """train.seed_layout (or train.devices) changed on an interrupted training: the checkpoint is
  resumed as it was grouped, never restarted from epoch 1 nor deleted; the N1 ends as an
  uninterrupted run with the first layout ends."""
  from learnjax import checkpoint, config as config_lib, sweep

  def config(layout):
    c = config_lib.base_config()
    for key, value in {"data.name": "digits", "data.variant": "true", "seeds": 2,
                       "train.max_epochs": 6, "train.stop_error": 0.0, "data.n1_size": 100,
                       "data.n2_size": 100, "data.test_size": 50, "n1.model": "mlp_1",
                       "n2.model": "mlp_1", "checkpoint_every_epochs": 1, "progress_seconds": 0.0,
                       "train.seed_layout": layout}.items():
      config_lib.set_field(c, key, value)
    return c

  def n1_preds(workdir):
    with np.load(os.path.join(workdir, "n1", "true__mlp_1__b64", "arrays.npz")) as data:
      return data["n1_preds_d3"], data["n1_preds_d2"]

  reference = str(tmp_path / "reference")
  sweep.train_and_evaluate(config("vmap"), reference, out=lambda line: None)
  workdir = str(tmp_path / "w")

  real_save = checkpoint.TrainingCheckpoint.save

  def save_then_stop_after_epoch_3(self, state, history):   # a SIGTERM during epoch 3
    real_save(self, state, history)
    if int(np.asarray(state.epoch).max()) >= 3:
      checkpoint.request_stop()

  monkeypatch.setattr(checkpoint.TrainingCheckpoint, "save", save_then_stop_after_epoch_3)
  try:
    with pytest.raises(checkpoint.Preempted):
      sweep.train_and_evaluate(config("vmap"), workdir, out=lambda line: None)
  finally:
    checkpoint.clear_stop_request()
  monkeypatch.undo()
  capsys.readouterr()
  stored = os.path.join(workdir, "checkpoints", "n1", "true__mlp_1__b64")
  assert os.listdir(stored) and "seeds0-1" in os.listdir(stored)
  lines = []
  sweep.train_and_evaluate(config("sequential"), workdir, out=lines.append)
  assert any("N1 true__mlp_1__b64: resuming its interrupted training (seeds 0-1)" in line
             for line in lines), lines
  n1_epochs = [line for line in capsys.readouterr().out.splitlines()
               if line.lstrip().startswith("N1 mlp_1") and "| epoch" in line]
  # Resumed where it stopped (after epoch 3 or 4), both seeds together as they began.
  assert n1_epochs and "seeds 0-1 of 2" in n1_epochs[0], n1_epochs[:2]
  assert not any(f"epoch    {e}/6" in n1_epochs[0] for e in (1, 2, 3)), n1_epochs[:2]
  for got, want in zip(n1_preds(workdir), n1_preds(reference)):
    np.testing.assert_array_equal(got, want)


def test_stored_seed_groups_are_kept_and_the_other_seeds_grouped_as_asked(tmp_path):
  from learnjax import checkpoint
  lines = []
  checkpoints = checkpoint.CheckpointSet(str(tmp_path), 1, out=lines.append, label="N1 x")
  five = [np.arange(5)]
  assert checkpoints.resume_groups(five, 5) is five and not lines   # nothing stored
  for name, step in (("seeds0-0", "7"), ("seeds1-1", "3"), ("seeds3-3", "2"), ("junk", "1")):
    os.makedirs(tmp_path / name / step)
  os.makedirs(tmp_path / "seeds2-2")   # begun, never saved: not a stored group
  groups = checkpoints.resume_groups(five, 5)
  assert [g.tolist() for g in groups] == [[0], [1], [2], [3], [4]]
  assert "resuming its interrupted training (seeds 0-0, seeds 1-1, seeds 3-3)" in lines[0]
  # Overlapping groups from two interrupted launches: the furthest trained wins.
  os.makedirs(tmp_path / "seeds0-4" / "9")
  assert [g.tolist() for g in checkpoints.resume_groups([np.arange(i, i + 1) for i in range(5)],
                                                        5)] == [[0, 1, 2, 3, 4]]
  # The grouping the settings ask for, where it is the stored one: unchanged, no line.
  lines.clear()
  planned = [np.arange(5)]
  assert checkpoints.resume_groups(planned, 5) is planned and not lines
