"""The command line end to end, and its answers to bad input."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICK = ["--config=configs/quickstart.py", "--config.seeds=2", "--config.train.max_epochs=3",
         "--config.data.n1_size=200", "--config.data.n2_size=200", "--config.data.test_size=100"]


def _env():
  return {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}


def run(args, **kwargs):
  return subprocess.run([sys.executable, "-m", "learnjax.main", *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=600, **kwargs)


def test_end_to_end_writes_config_results_and_table_then_resumes(tmp_path):
  workdir = str(tmp_path / "run")
  proc = run(QUICK + [f"--workdir={workdir}"])
  assert proc.returncode == 0, proc.stderr
  assert "epoch" in proc.stdout and "samples/s" in proc.stdout      # progress lines
  assert "learnability %" in proc.stdout                            # the final table
  for variant in ("true", "random_labels", "random_images"):
    assert variant in proc.stdout.split("learnability %")[1]
  config = json.load(open(os.path.join(workdir, "config.json")))
  assert config["seeds"] == 2 and config["train"]["max_epochs"] == 3
  cells = json.load(open(os.path.join(workdir, "results.json")))["cells"]
  assert [c["variant"] for c in cells] == ["true", "random_labels", "random_images"]
  for cell in cells:
    assert len(cell["learnability"]["per_seed"]) == 2
    assert 0 <= cell["learnability"]["mean"] <= 100
    arrays = np.load(os.path.join(workdir, "cells", cell["cell"], "arrays.npz"))
    assert arrays["n1_preds_d3"].shape == (2, 100) and arrays["n2_preds_d3"].shape == (2, 100)
    assert arrays["n1_preds_d2"].shape == (2, 200)
    agree = 100 * (arrays["n1_preds_d3"] == arrays["n2_preds_d3"]).mean(1)
    np.testing.assert_allclose(agree, cell["learnability"]["per_seed"])
  # Run again: every cell is found finished and nothing is trained.
  again = run(QUICK + [f"--workdir={workdir}"])
  assert again.returncode == 0, again.stderr
  assert "3 already done" in again.stdout and "samples/s" not in again.stdout
  # Files get the mode the umask gives (mkstemp alone would give 0600).
  umask = os.umask(0o022)
  os.umask(umask)
  for name in ("config.json", "data.json", "results.json"):
    assert os.stat(os.path.join(workdir, name)).st_mode & 0o777 == 0o666 & ~umask
  # Gathering trains nothing, even with a planned cell unfinished.
  gathered = run(QUICK + [f"--workdir={workdir}", "--gather_only",
                          "--config.n2.model=mlp_2"])
  assert gathered.returncode == 0 and "samples/s" not in gathered.stdout, gathered.stderr
  os.remove(os.path.join(workdir, "cells", cells[0]["cell"], "result.json"))
  gathered = run(QUICK + [f"--workdir={workdir}", "--gather_only"])
  assert gathered.returncode == 1 and "samples/s" not in gathered.stdout
  assert "1 planned cells unfinished" in gathered.stdout
  assert len(json.load(open(os.path.join(workdir, "results.json")))["cells"]) == 2


def test_help_lists_every_config_field_with_its_default():
  proc = subprocess.run([sys.executable, "-m", "learnjax.main", "--help"], cwd=ROOT,
                        capture_output=True, text=True, timeout=120)
  assert "--config.train.learning_rate=0.01" in proc.stdout
  assert "--config.n1.snapshot_epochs=''" in proc.stdout and "python -m learnjax.config" in proc.stdout
  listing = subprocess.run([sys.executable, "-m", "learnjax.config"], cwd=ROOT,
                           capture_output=True, text=True, timeout=120).stdout
  assert "--config.train.plateau_patience=10" in listing and "optax reduce_on_plateau" in listing


def test_a_comma_list_of_batch_sizes_is_a_grid_axis_in_any_config(tmp_path):
  # quickstart's n1.batch_size is one integer; the list still reaches validation (which then
  # stops on the learning rate, before anything is trained).
  proc = run(QUICK + [f"--workdir={tmp_path}/w", "--config.n1.batch_size=64,32",
                      "--config.train.learning_rate=-1"])
  assert proc.returncode == 2 and "invalid literal" not in proc.stderr
  assert "train.learning_rate must be a positive" in proc.stderr
  from learnjax import sweep
  from learnjax.config import base_config
  config = base_config()
  with config.n1.ignore_type():
    config.n1.batch_size = "64,32"
  assert [job.batch_size for job, _ in sweep.plan(config)] == [64, 32]


@pytest.mark.parametrize("args, message", [
    (["--config.n1.model=resnet1000"], "unknown model 'resnet1000'"),
    (["--config.n1.model=shallow_cnn", "--config.n1.width=-4"], "width must be a positive"),
    (["--config.data.n1_size=5000"], "training images"),
    (["--config.data.variant=shuffled"], "unknown data variant"),
    (["--config.seeds=0"], "seeds must be a positive"),
    (["--config.n1.widht=3"], "bad config override"),
    (["--config.n1.width=abc"], "invalid literal"),
    (["--config.data.name=imagenet"], "unknown data set 'imagenet'"),
    (["--config.data.name=npz", "--config.data.npz_path=/nonexistent/x.npz"], "no such .npz file"),
    (["--config.data.name=cifar10", "--config.data.data_dir=/nonexistent/tfds"], "cifar10"),
    (["--config.train.devices=64"], "train.devices=64"),
    (["--task_index=3", "--num_tasks=2"], "task_index must be in"),
    (["--config.train.loop=fast"], "train.loop must be"),
    (["--config.train.concurrent_seeds=-1"], "train.concurrent_seeds must be"),
])
def test_bad_input_gets_one_error_line(tmp_path, args, message):
  proc = run(QUICK + [f"--workdir={tmp_path}"] + args)
  assert proc.returncode != 0
  assert "Traceback" not in proc.stderr
  errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1 and message in errors[0], proc.stderr


def test_npz_without_x_train_is_refused(tmp_path):
  path = tmp_path / "labels_only.npz"
  np.savez(path, y_train=np.zeros(4, int), x_test=np.zeros((2, 8, 8, 1), np.uint8),
           y_test=np.zeros(2, int))
  proc = run(QUICK + [f"--workdir={tmp_path}/w", "--config.data.name=npz",
                      f"--config.data.npz_path={path}"])
  assert proc.returncode != 0 and "Traceback" not in proc.stderr
  assert "lacks x_train" in proc.stderr


def test_corrupt_npz_is_refused(tmp_path):
  path = tmp_path / "corrupt.npz"
  path.write_bytes(b"PK\x03\x04 not really a zip")
  proc = run(QUICK + [f"--workdir={tmp_path}/w", "--config.data.name=npz",
                      f"--config.data.npz_path={path}"])
  assert proc.returncode == 2 and "Traceback" not in proc.stderr
  assert f"cannot read {path}" in proc.stderr


def test_missing_config_file_is_refused(tmp_path):
  proc = run(["--config=configs/no_such_experiment.py", f"--workdir={tmp_path}"])
  assert proc.returncode != 0 and "Traceback" not in proc.stderr
  assert "no_such_experiment.py" in proc.stderr


def test_the_config_file_is_executed_once(tmp_path):
  config = tmp_path / "c.py"
  count = tmp_path / "count"
  config.write_text(f"open({str(count)!r}, 'a').write('x')\n"
                    "from learnjax.config import base_config\n"
                    "def get_config():\n  return base_config()\n")
  proc = run([f"--config={config}", "--config.train.max_epochs=0", f"--workdir={tmp_path / 'w'}"])
  assert "train.max_epochs must be a positive integer" in proc.stderr
  assert count.read_text() == "x"


def test_comma_lists_of_batch_sizes_are_split_off_without_state():
  from learnjax import cli_input
  argv = ["main", "--config.n1.batch_size=32,64", "--config.seeds=2", "--config.n2.batch_size=8,16"]
  assert cli_input.split_list_overrides(argv) == (
      ["main", "--config.seeds=2"], [("n1.batch_size", "32,64"), ("n2.batch_size", "8,16")])
  assert cli_input.split_list_overrides(argv) == cli_input.split_list_overrides(argv)


def test_an_ascii_console_loses_no_work(tmp_path):
  """'±' and '≥' cannot be shown on an ASCII stdout: replaced, and every cell still finishes."""
  workdir = tmp_path / "w"
  proc = run(QUICK + ["--config.n2.model=mlp_1,mlp_2", "--config.data.variant=true",
                      f"--workdir={workdir}"], env={**os.environ, "PYTHONIOENCODING": "ascii"})
  assert proc.returncode == 0, proc.stderr
  assert "cell 2/2" in proc.stdout and " ? " in proc.stdout
  assert len(json.load(open(workdir / "results.json"))["cells"]) == 2


def test_a_failing_output_never_stops_the_run():
  from learnjax import progress
  seen = []

  def ascii_only(line):
    line.encode("ascii")
    seen.append(line)

  def closed(line):
    raise ValueError("I/O operation on closed file")
  progress.tolerant(ascii_only)("learnability 40.0 ± 3.0")
  progress.tolerant(closed)("a line")
  assert seen == ["learnability 40.0 ? 3.0"]


# Ctrl-C in every command: one line, exit code 130, nothing partial. The interruption is raised
# inside a write (after the temporary file is opened and filled), the worst moment for leftovers.
_INTERRUPT_IN_WRITE = """
import os, runpy, sys
calls = []
real_fsync = os.fsync
def fsync(fd):
  calls.append(fd)
  raise KeyboardInterrupt
os.fsync = fsync
{extra}
sys.argv = [{module!r}] + sys.argv[1:]
runpy.run_module({module!r}, run_name="__main__", alter_sys=True)
"""


@pytest.mark.slow
@pytest.mark.parametrize("module, args, extra", [
    ("learnjax.data.export", ["--config=configs/quickstart.py", "--out={tmp}/export.npz"], ""),
    ("learnjax.report", ["--workdir={tmp}/w", "--out={tmp}/report"], ""),
    ("learnjax.models", [], "import learnjax.models as m\n"
     "def size(*a, **k): raise KeyboardInterrupt\nm.size = size"),
    ("learnjax.main", ["--config=configs/quickstart.py", "--config.data.variant=true",
                       "--config.seeds=1", "--config.train.max_epochs=2",
                       "--config.data.n1_size=60", "--config.data.n2_size=60",
                       "--config.data.test_size=40", "--workdir={tmp}/run"], ""),
])
def test_ctrl_c_in_every_command_is_one_line_and_exit_130(tmp_path, module, args, extra):
  shutil.copytree(os.path.join(ROOT, "tests", "fixtures", "workdir_fingerprinted"), tmp_path / "w")
  before = sorted(os.listdir(tmp_path))
  code = _INTERRUPT_IN_WRITE.format(module=module, extra=extra)
  proc = subprocess.run([sys.executable, "-c", code, *[a.format(tmp=tmp_path) for a in args]],
                        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
  assert proc.returncode == 130, proc.stderr
  assert "Traceback" not in proc.stderr and "KeyboardInterrupt" not in proc.stderr, proc.stderr
  errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1 and "interrupted" in errors[0], proc.stderr
  leftovers = [os.path.join(r, f) for r, _, files in os.walk(tmp_path) for f in files
               if f.startswith(".tmp-") or f in ("export.npz", "report.md")]
  assert not leftovers, leftovers
  if module != "learnjax.main":
    assert sorted(os.listdir(tmp_path)) == before or module == "learnjax.report"
