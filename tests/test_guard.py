"""A stored number is used only under the settings and data that made it: interrupted trainings,
concurrent launches, missing or foreign records, and workdirs written by earlier versions."""

import dataclasses
import errno
import fcntl
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from learnjax import checkpoint, config as config_lib, fields, guard, storage, sweep, validation
from learnjax.data import sources
from learnjax.errors import LearnjaxError
from learnjax.report.document import build_report

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
# The command that made the fixtures (tests/fixtures/README.md).
FIXTURE_ARGS = ["--config.data.variant=true", "--config.seeds=1", "--config.train.max_epochs=2",
                "--config.data.n1_size=60", "--config.data.n2_size=60",
                "--config.data.test_size=40", "--config.n2.model=same,mlp_2"]


def quickstart(**fields):
  spec = importlib.util.spec_from_file_location("quickstart", f"{ROOT}/configs/quickstart.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  for key, value in fields.items():
    config_lib.set_field(config, key.replace("__", "."), value)
  return config


def fixture_config(**fields):
  return quickstart(**{"data__variant": "true", "seeds": 1, "train__max_epochs": 2,
                      "data__n1_size": 60, "data__n2_size": 60, "data__test_size": 40,
                      "n2__model": "same,mlp_2", **fields})


def tree(folder) -> dict:
  """Every file of a folder with its bytes."""
  out = {}
  for root, _, files in os.walk(folder):
    for name in files:
      with open(os.path.join(root, name), "rb") as f:
        out[os.path.relpath(os.path.join(root, name), folder)] = f.read()
  return out


def run(config, workdir):
  """The experiment's cells and the lines it printed."""
  lines = []
  cells = sweep.train_and_evaluate(config, workdir, out=lines.append)
  return cells, lines


def trained(lines) -> list[str]:
  return [line for line in lines if ": training" in line]


def refused(config, workdir, match):
  """The launch is refused with ``match`` before it trains, and the workdir is left as it was."""
  before = tree(workdir)
  lines = []
  with pytest.raises(LearnjaxError, match=match):
    sweep.train_and_evaluate(config, workdir, out=lines.append)
  assert not trained(lines)
  assert tree(workdir) == before


# The fingerprint itself.

def test_settings_leave_out_execution_paths_grid_and_neutral_fields():
  base = guard.settings(config_lib.base_config())
  changed = config_lib.base_config()
  changed.train.loop, changed.train.devices, changed.progress_seconds = "step", 1, 1.0
  changed.data.npz_path, changed.n1.model, changed.experiment = "/elsewhere/d.npz", "mlp_1", "x"
  assert guard.settings(changed) == base
  assert "train.precision" not in base and "train.learning_rate" in base
  changed.train.learning_rate = 0.05
  assert (guard.describe_changes(base, guard.settings(changed))
          == "train.learning_rate: 0.01 -> 0.05")


def test_describe_changes_names_a_few_fields_and_shortens_hashes():
  old = {f"f{i}": i for i in range(8)} | {"data.train_images": "a" * 64}
  new = {f"f{i}": i + 1 for i in range(8)} | {"data.train_images": "b" * 64}
  text = guard.describe_changes(old, new)
  assert text.startswith("data.train_images: sha256 aaaaaaaa.. -> sha256 bbbbbbbb.., f0: 0 -> 1")
  assert text.endswith("and 4 more")
  assert guard.describe_changes({"a": 1}, {}) == "a: 1 -> (unset)"
  assert guard.describe_changes(old, dict(old)) == ""


def test_a_field_added_later_at_its_neutral_value_changes_no_fingerprint(monkeypatch):
  """A release adding a field (listed in config.NEUTRAL) keeps every stored fingerprint."""
  old = json.loads(config_lib.base_config().to_json())  # a config.json written before the field
  new = config_lib.base_config()
  new.train.new_switch = "off"
  monkeypatch.setitem(config_lib.NEUTRAL, "train.new_switch", "off")
  assert guard.settings(new) == guard.settings(old)
  new.train.new_switch = "on"
  assert guard.describe_changes(guard.settings(old), guard.settings(new)) == (
      "train.new_switch: off -> on")   # left out at its neutral value: read as that value


def test_the_replay_recipe_reads_a_config_json_written_before_a_field_existed(tmp_path):
  with open(os.path.join(FIXTURES, "workdir_legacy", "config.json")) as f:
    stored = json.load(f)
  del stored["train"]["precision"]  # as a release before train.precision wrote it
  path = tmp_path / "config.json"
  path.write_text(json.dumps(stored))
  config = config_lib.stored_config(str(path))
  validation.check_config(config)
  assert config.train.precision == "default" and config.train.max_epochs == 2
  assert guard.settings(config) == guard.settings(stored)
  stored["train"]["from_the_future"] = 1
  path.write_text(json.dumps(stored))
  with pytest.raises(ValueError, match="fields this learnjax does not know"):
    config_lib.stored_config(str(path))


def test_create_once_lets_one_of_two_launches_create_the_record(tmp_path, monkeypatch):
  path = str(tmp_path / "config.json")
  assert storage.create_once(path, b"first")
  assert not storage.create_once(path, b"second")
  assert open(path, "rb").read() == b"first"

  def no_links(*args):  # gcsfuse
    raise OSError(errno.EPERM, "Operation not permitted")
  monkeypatch.setattr(os, "link", no_links)
  other = str(tmp_path / "data.json")
  assert storage.create_once(other, b"one") and not storage.create_once(other, b"two")
  assert open(other, "rb").read() == b"one"
  assert sorted(os.listdir(tmp_path)) == ["config.json", "data.json"]  # no temporary left


def test_a_url_workdir_is_refused():
  with pytest.raises(LearnjaxError, match="is a URL; learnjax writes to a folder"):
    validation.check_workdir("gs://bucket/learnjax/t4")


# 4. Foreign or damaged record files, and no results: refused, the files untouched.

@pytest.mark.parametrize("name, content, match", [
    ("config.json", b"not json {", "config.json is not a learnjax config"),
    ("config.json", b'{"model": "resnet50", "lr": 0.1}\n', "is not a learnjax config"),
    ("config.json", b"[1, 2]", "is not a learnjax config"),
    ("data.json", b'{"dataset": "digits"', "data.json is damaged"),
    ("data.json", b'{"dataset": "digits"}', r"data.json is damaged \(it lacks num_classes"),
])
def test_a_foreign_or_damaged_record_is_refused_and_kept(tmp_path, name, content, match):
  workdir = str(tmp_path / "w")
  os.makedirs(workdir)
  with open(os.path.join(workdir, name), "wb") as f:
    f.write(content)
  refused(fixture_config(), workdir, match)
  assert tree(workdir) == {name: content}
  with pytest.raises(LearnjaxError, match=match):  # the command line's check before JAX
    validation.check_data(fixture_config(), workdir)


# The fixtures: workdirs written by earlier versions resume, report, and refuse a change.

@pytest.mark.slow
@pytest.mark.parametrize("fixture", ["workdir_legacy", "workdir_fingerprinted"])
def test_a_workdir_of_an_earlier_version_resumes_reports_and_refuses_changes(tmp_path, fixture):
  workdir = str(tmp_path / fixture)
  shutil.copytree(os.path.join(FIXTURES, fixture), workdir)
  stored = tree(workdir)
  markdown, _ = build_report(workdir, None)
  assert "mlp_2" in markdown
  cells, lines = run(fixture_config(), workdir)
  assert not trained(lines) and len(cells) == 2
  # results.json keeps every stored number and gains each metric added since, as a fresh
  # workdir's has them; learnjax.run returns the same.
  before = json.loads(stored["results.json"])["cells"]
  after = json.loads(tree(workdir)["results.json"])["cells"]
  assert [c["cell"] for c in after] == [c["cell"] for c in before]
  for old, new in zip(before, after):
    assert {k: new[k] for k in old} == old
  assert json.loads(json.dumps(cells)) == after
  fresh, _ = run(fixture_config(), str(tmp_path / "fresh"))
  from learnjax import metrics
  for old_cell, fresh_cell in zip(after, fresh):
    fresh_metrics = set(fresh_cell) & set(metrics.names())
    with np.load(os.path.join(workdir, "cells", old_cell["cell"], "arrays.npz")) as arrays:
      stored = set(arrays.files)
    # Only what needs arrays the earlier version did not store (the nets' probabilities) is left.
    assert "n1_log_probs_d3" not in stored
    assert fresh_metrics - set(old_cell) <= {"kl_n1_n2"}, fresh_metrics - set(old_cell)
    assert {"kappa", "learnability"} <= set(old_cell)
  refused(fixture_config(train__learning_rate=0.05), workdir,
          r"holds results computed with a different config \(train.learning_rate: 0.01 -> 0.05\)")
  # A new grid point joins: the N1 is reused, one cell is added.
  cells, lines = run(fixture_config(n2__model="mlp_2", n2__batch_size=32), workdir)
  assert [line.split(":")[0] for line in trained(lines)] == ["N2 true__mlp_1__b64__mlp_2__b32"]
  assert build_report(workdir, None)[0]


@pytest.mark.slow
def test_a_config_json_written_before_a_field_existed_still_resumes(tmp_path):
  workdir = str(tmp_path / "w")
  shutil.copytree(os.path.join(FIXTURES, "workdir_fingerprinted"), workdir)
  path = os.path.join(workdir, "config.json")
  with open(path) as f:
    stored = json.load(f)
  del stored["train"]["precision"], stored["train"]["shared_order"]
  with open(path, "w") as f:
    json.dump(stored, f)
  cells, lines = run(fixture_config(), workdir)
  assert not trained(lines) and len(cells) == 2


# 3. A workdir that lost config.json or data.json: its units' own fingerprints decide.

@pytest.mark.slow
def test_a_lost_config_json_is_judged_by_the_units_fingerprints(tmp_path):
  workdir = str(tmp_path / "w")
  shutil.copytree(os.path.join(FIXTURES, "workdir_fingerprinted"), workdir)
  record = tree(workdir)["config.json"]
  os.remove(os.path.join(workdir, "config.json"))
  refused(fixture_config(train__learning_rate=0.05), workdir,
          r"n1/true__mlp_1__b64 \(a stored result\) was computed with other settings "
          r"\(train.learning_rate: 0.01 -> 0.05\)")
  refused(fixture_config(seeds=2), workdir, r"\(seeds: 1 -> 2\)")
  assert not os.path.exists(os.path.join(workdir, "config.json"))
  cells, lines = run(fixture_config(), workdir)
  assert not trained(lines) and len(cells) == 2
  # Rewritten: it describes the units again, every stored field as it was, a grid axis as its
  # list (fields this release added since the fixture was written appear at their defaults).
  old, new = (config_lib.flatten(json.loads(b)) for b in (record, tree(workdir)["config.json"]))
  listed = lambda k, v: fields.as_list(v) if k in fields.list_fields() and k != "data.n2_size" else v
  assert {k: listed(k, new.get(k)) for k in old} == {k: listed(k, v) for k, v in old.items()}
  assert set(new) - set(old) <= set(config_lib.flatten(config_lib.base_config()))
  assert guard.settings(json.loads(tree(workdir)["config.json"])) == guard.settings(
      json.loads(record))
  assert "mlp_2" in build_report(workdir, None)[0]


@pytest.mark.slow
def test_a_lost_data_json_is_judged_by_the_units_fingerprints(tmp_path, monkeypatch):
  workdir = str(tmp_path / "w")
  shutil.copytree(os.path.join(FIXTURES, "workdir_fingerprinted"), workdir)
  os.remove(os.path.join(workdir, "data.json"))
  pool = sources.load_pool(fixture_config().data)
  relabelled = dataclasses.replace(pool, y_train=(pool.y_train + 1) % 10)
  with monkeypatch.context() as patch:
    patch.setattr(sources, "load_pool", lambda data_config: relabelled)
    refused(fixture_config(), workdir, r"was computed with other settings \(data.train_labels: "
            r"sha256 \w{8}.. -> sha256 \w{8}..\)")
  assert not os.path.exists(os.path.join(workdir, "data.json"))
  cells, lines = run(fixture_config(), workdir)
  assert not trained(lines) and len(cells) == 2


def test_a_legacy_unit_without_its_record_is_never_adopted(tmp_path):
  workdir = str(tmp_path / "w")
  shutil.copytree(os.path.join(FIXTURES, "workdir_legacy"), workdir)
  os.remove(os.path.join(workdir, "config.json"))
  refused(fixture_config(), workdir, "written by an older learnjax without a fingerprint, and the "
          "config.json of the workdir, which would vouch for its settings, is missing")


# 1. An interrupted first training, then a changed setting or data: refused, never resumed.

def digits_npz(path, relabel=False):
  d = np.load(os.path.join(ROOT, "learnjax", "data", "digits.npz"))
  y = d["y_train"][:150].copy()
  if relabel:
    y[100:] = (y[100:] + 1) % 10
  np.savez(path, x_train=d["x_train"][:150], y_train=y, x_test=d["x_test"][:50],
           y_test=d["y_test"][:50])


def interrupt_after_one_epoch(config, workdir):
  """A launch stopped (as by SIGTERM) at the end of its first epoch: a checkpoint is left."""
  def out(line):
    if ": training" in line:
      checkpoint.request_stop()
  try:
    with pytest.raises(checkpoint.Preempted):
      sweep.train_and_evaluate(config, workdir, out=out)
  finally:
    checkpoint.clear_stop_request()


@pytest.mark.slow
def test_an_interrupted_training_resumes_only_under_its_own_settings_and_data(tmp_path):
  npz = str(tmp_path / "d.npz")
  digits_npz(npz)

  def config(**fields):
    return quickstart(**{"data__variant": "true", "seeds": 1, "train__max_epochs": 3,
                         "train__stop_error": 0.0, "data__name": "npz", "data__npz_path": npz,
                         "data__n1_size": 60, "data__n2_size": 60, "data__test_size": 40,
                         "checkpoint_every_epochs": 1, **fields})

  workdir = str(tmp_path / "w")
  interrupt_after_one_epoch(config(), workdir)
  in_flight = os.path.join(workdir, "checkpoints", "n1", "true__mlp_1__b64")
  assert os.path.exists(os.path.join(in_flight, "fingerprint.json"))
  assert not os.path.exists(os.path.join(workdir, "n1"))
  refused(config(train__learning_rate=0.05), workdir, r"holds unfinished trainings begun with a "
          r"different config \(train.learning_rate: 0.01 -> 0.05\)")
  digits_npz(npz, relabel=True)
  refused(config(), workdir, r"holds unfinished trainings begun on other data \(training "
          r"labels: sha256")
  # Without the workdir's record, the checkpoint's own fingerprint refuses both.
  records = {n: tree(workdir)[n] for n in ("config.json", "data.json")}
  for name in records:
    os.remove(os.path.join(workdir, name))
  refused(config(), workdir, r"checkpoints/n1/true__mlp_1__b64 \(an unfinished training\) was "
          r"computed with other settings \(data.train_labels: sha256")
  digits_npz(npz)
  refused(config(train__learning_rate=0.05), workdir,
          r"\(an unfinished training\) was computed with other settings "
          r"\(train.learning_rate: 0.01 -> 0.05\); run with those settings to resume it")
  # The same settings and data, the .npz reached by another path: resumed, as if uninterrupted.
  moved = str(tmp_path / "elsewhere" / "d.npz")
  os.makedirs(os.path.dirname(moved))
  shutil.copy(npz, moved)
  cells, lines = run(config(data__npz_path=moved), workdir)
  assert tree(workdir)["data.json"] == records["data.json"]  # the same data, by its hashes
  reference, _ = run(config(), str(tmp_path / "uninterrupted"))
  assert [c["learnability"] for c in cells] == [c["learnability"] for c in reference]
  stored = np.load(os.path.join(workdir, "n1", "true__mlp_1__b64", "arrays.npz"))
  again = np.load(os.path.join(tmp_path, "uninterrupted", "n1", "true__mlp_1__b64", "arrays.npz"))
  for key in stored.files:
    np.testing.assert_array_equal(stored[key], again[key], err_msg=key)


KILLED = ["--config=configs/quickstart.py", "--config.data.variant=true", "--config.seeds=1",
          "--config.train.max_epochs=60", "--config.train.stop_error=0",
          "--config.data.n1_size=60", "--config.data.n2_size=60", "--config.data.test_size=40",
          "--config.checkpoint_every_epochs=1"]


def main(workdir, *extra):
  return subprocess.run([sys.executable, "-m", "learnjax.main", *KILLED, *extra,
                         f"--workdir={workdir}"], cwd=ROOT, capture_output=True, text=True,
                        timeout=600)


def one_error(proc) -> str:
  assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
  [line] = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
  assert ": training" not in proc.stdout
  return line


@pytest.mark.slow
def test_a_training_killed_mid_run_resumes_under_its_own_settings_only(tmp_path):
  workdir = str(tmp_path / "w")
  proc = subprocess.Popen([sys.executable, "-m", "learnjax.main", *KILLED, f"--workdir={workdir}"],
                          cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 300
  in_flight = os.path.join(workdir, "checkpoints", "n1", "true__mlp_1__b64", "seeds0-0")
  while not (os.path.isdir(in_flight) and any(n.isdigit() and int(n) >= 2
                                              for n in os.listdir(in_flight))):
    assert time.time() < deadline and proc.poll() is None
    time.sleep(0.05)
  proc.kill()
  proc.wait()
  before = tree(workdir)
  line = one_error(main(workdir, "--config.train.learning_rate=0.05"))
  assert "holds unfinished trainings begun with a different config (train.learning_rate: " \
         "0.01 -> 0.05)" in line
  os.remove(os.path.join(workdir, "config.json"))
  line = one_error(main(workdir, "--config.train.learning_rate=0.05"))
  assert "(an unfinished training) was computed with other settings (train.learning_rate: " \
         "0.01 -> 0.05)" in line
  assert tree(workdir) == {k: v for k, v in before.items() if k != "config.json"}
  resumed = main(workdir)  # the same settings: the checkpoint's fingerprint vouches for it
  assert resumed.returncode == 0, resumed.stderr
  assert os.path.exists(os.path.join(workdir, "config.json"))
  with open(os.path.join(workdir, "n1", "true__mlp_1__b64", "result.json")) as f:
    assert json.load(f)["epochs"] == [60]


# 2. Two launches on one fresh workdir at once: other settings refused, the same settings join.

CONCURRENT = ["--config=configs/quickstart.py", "--config.data.variant=true,random_labels",
              "--config.seeds=1", "--config.train.max_epochs=150", "--config.train.stop_error=0",
              "--config.data.n1_size=60", "--config.data.n2_size=60",
              "--config.data.test_size=40", "--config.checkpoint_every_epochs=0"]


def launch(workdir, *extra):
  return subprocess.Popen([sys.executable, "-m", "learnjax.main", *CONCURRENT, *extra,
                           f"--workdir={workdir}"], cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_a_second_launch_with_other_settings_is_refused_and_one_with_the_same_joins(tmp_path):
  workdir = str(tmp_path / "w")
  first = launch(workdir)
  deadline = time.time() + 300
  while not os.path.exists(os.path.join(workdir, "config.json")):
    assert time.time() < deadline and first.poll() is None, first.stderr.read()
    time.sleep(0.05)
  other = launch(workdir, "--config.train.learning_rate=0.05")
  same = launch(workdir)
  out, err = other.communicate(timeout=600)
  assert other.returncode == 2, err
  assert "with a different config (train.learning_rate: 0.01 -> 0.05)" in err
  assert ": training" not in out
  outs = []
  for proc in (first, same):
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    outs.append(out)
  # Every N1 trained exactly once, by one of the two, and every cell stored.
  trainings = sorted(line.split(":")[0] for out in outs for line in out.splitlines()
                     if line.startswith("N1 ") and ": training" in line)
  assert trainings == ["N1 random_labels__mlp_1__b64", "N1 true__mlp_1__b64"]
  with open(os.path.join(workdir, "results.json")) as f:
    assert len(json.load(f)["cells"]) == 2


# Without locks (a gcsfuse mount): rows owned by task index need none.

def test_rows_split_by_task_index_need_no_locks(tmp_path, monkeypatch):
  def no_locks(*args):
    raise OSError(errno.ENOLCK, "No locks available")
  monkeypatch.setattr(fcntl, "flock", no_locks)
  monkeypatch.setattr(fcntl, "lockf", no_locks)
  config = fixture_config(n2__model="none")
  experiment = sweep.Experiment(config, str(tmp_path / "w"), out=lambda line: None)
  experiment.guard.open()
  with pytest.raises(LearnjaxError, match="supports neither flock nor lockf"):
    experiment.run(0, 1)
  assert experiment.run(0, 1, lock_rows=False) == []  # N1 only: no cells
  assert experiment.store.has("n1", "true__mlp_1__b64")
