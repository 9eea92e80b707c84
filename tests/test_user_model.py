"""A user's plain Flax module: registered with one call, trained from the command line and the API."""

import json
import os
import subprocess
import sys
import textwrap
import time

import flax.linen as nn
import numpy as np
import pytest

import learnjax
from learnjax import models

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Linear(nn.Module):
  """No dtype, no forms, no train flag: nothing learnjax-specific."""
  num_classes: int

  @nn.compact
  def __call__(self, x):
    return nn.Dense(self.num_classes)(x.reshape((x.shape[0], -1)))


class HiddenLayer(nn.Module):
  width: int
  num_classes: int

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = nn.relu(nn.Dense(self.width)(x.reshape((x.shape[0], -1))))
    del train
    return nn.Dense(self.num_classes)(x)


def hidden_layer(num_classes, width):
  return HiddenLayer(width, num_classes)


def test_a_plain_module_registers_and_builds_without_learnjax_fields():
  models.register("test_linear", Linear)   # the class itself: num_classes by name
  models.register("test_hidden", hidden_layer, hparams=("width",),
                  presets={"test_hidden_8": {"width": 8}})
  module = models.build("test_linear", 10)
  size = models.size(module, (8, 8, 1))
  assert size.params == 64 * 10 + 10 and size.batch_stats == 0
  assert models.size(models.build("test_hidden_8", 3), (4, 4, 1)).params == 16 * 8 + 8 + 8 * 3 + 3
  assert models.canonical_name("test_hidden", width=8) == "test_hidden_8"
  # learnjax's own names stay its own; a builder that fails is one error naming the model.
  with pytest.raises(models.UnknownModelError, match="learnjax's own"):
    models.register("mlp_1", Linear)
  models.register("test_broken", lambda num_classes: 1 / 0)
  with pytest.raises(models.UnknownModelError, match="test_broken.*ZeroDivisionError"):
    models.build("test_broken", 10)
  models.register("test_not_a_module", lambda num_classes: "mlp")
  with pytest.raises(models.UnknownModelError, match="not a flax.linen.Module"):
    models.build("test_not_a_module", 10)


def test_a_plain_module_trains_through_the_api():
  models.register("test_linear", Linear)
  models.register("test_hidden", hidden_layer, hparams=("width",),
                  presets={"test_hidden_8": {"width": 8}})
  r = learnjax.learnability(n1="test_hidden_8", n2="test_linear", data="digits", seeds=2,
                            n1_size=300, n2_size=300, test_size=200,
                            config={"train.max_epochs": 30, "train.learning_rate": 0.1})
  assert r.learnability.shape == (2,)
  # Trained, not at chance: the modules learnt the digits and N2 learnt N1.
  assert r.n1_test_accuracy.mean() > 50 and r.learnability.mean() > 50
  np.testing.assert_allclose(r.learnability, 100 * (r.n1_preds_d3 == r.n2_preds_d3).mean(1))


CONFIG = '''
"""A config that registers its own model."""
import flax.linen as nn
import learnjax.models
from learnjax.config import base_config


class Linear(nn.Module):
  num_classes: int

  @nn.compact
  def __call__(self, x):
    return nn.Dense(self.num_classes)(x.reshape((x.shape[0], -1)))


learnjax.models.register("my_linear", lambda num_classes: Linear(num_classes))


def get_config(arg=None):
  config = base_config()
  config.experiment = "user_model"
  config.seeds = 2
  config.data.variant = "true,random_labels"
  config.data.n1_size, config.data.n2_size, config.data.test_size = 300, 300, 200
  config.n1.model = "my_linear"
  config.n2.model = "same,mlp_1"
  config.train.max_epochs = 20
  config.train.learning_rate = 0.1
  return config
'''


def test_a_plain_module_registered_in_a_config_trains_from_the_command_line(tmp_path):
  path = tmp_path / "my_model.py"
  path.write_text(textwrap.dedent(CONFIG))
  workdir = tmp_path / "run"
  proc = subprocess.run([sys.executable, "-m", "learnjax.main", f"--config={path}",
                         f"--workdir={workdir}"], cwd=ROOT, capture_output=True, text=True,
                        timeout=600)
  assert proc.returncode == 0, proc.stderr
  cells = json.load(open(workdir / "results.json"))["cells"]
  assert sorted((c["variant"], c["n1_model"], c["n2_model"]) for c in cells) == sorted(
      (v, "my_linear", n2) for v in ("true", "random_labels") for n2 in ("my_linear", "mlp_1"))
  true = [c for c in cells if c["variant"] == "true"]
  assert all(c["n1_test_accuracy"]["mean"] > 50 for c in true)


# ---- a BatchNorm + Dropout module: trains, resumes bitwise, and is known by its definition -------

BN_DROPOUT = '''
"""A config that registers a BatchNorm + Dropout model."""
import flax.linen as nn
import learnjax.models
from learnjax.config import base_config


class MyNet(nn.Module):
  num_classes: int

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = nn.Dense(32)(x.reshape((x.shape[0], -1)))
    x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.8)(x))
    x = nn.Dropout(0.3, deterministic=not train)(x)
    return nn.Dense(self.num_classes)(x)


learnjax.models.register("my_net", MyNet)


def get_config(arg=None):
  config = base_config()
  config.seeds = 2
  config.data.variant = "true"
  config.data.n1_size, config.data.n2_size, config.data.test_size = 200, 200, 100
  config.n1.model = "my_net"
  config.n2.model = "mlp_1"
  config.train.max_epochs = 6
  config.train.stop_error = 0.0
  config.train.learning_rate = 0.1
  config.checkpoint_every_epochs = 1
  return config
'''


def launch(config_path, workdir, *extra, wait=True):
  args = [sys.executable, "-m", "learnjax.main", f"--config={config_path}", f"--workdir={workdir}",
          *extra]
  if not wait:
    return subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)


def n1_arrays(workdir):
  with np.load(os.path.join(workdir, "n1", "true__my_net__b64", "arrays.npz")) as data:
    return {k: data[k] for k in data.files}


def test_a_batchnorm_dropout_module_trains_from_the_api():
  ns = {}
  exec(compile(textwrap.dedent(BN_DROPOUT), "<bn_dropout>", "exec"), ns)   # registers my_net
  r = learnjax.learnability(n1="my_net", n2="mlp_1", data="digits", seeds=2, n1_size=200,
                            n2_size=200, test_size=100,
                            config={"train.max_epochs": 6, "train.learning_rate": 0.1})
  assert r.n1_test_accuracy.mean() > 50 and r.learnability.mean() > 40


def _loaded(tmp_path, name, source):
  """The module class of ``source``, run without registering it (its versions share a name)."""
  path = tmp_path / f"{name}.py"
  path.write_text(textwrap.dedent(source).replace('learnjax.models.register("my_net", MyNet)', ""))
  ns = {"__name__": name}
  exec(compile(path.read_text(), str(path), "exec"), ns)
  return ns["MyNet"]


def test_a_model_s_identity_is_its_code_not_its_comments(tmp_path):
  from learnjax.models import identity
  base = _loaded(tmp_path, "a", BN_DROPOUT)
  digest = lambda cls, **kw: identity.definition_digest(cls(10, **kw), (8, 8, 1))
  commented = _loaded(tmp_path, "b", BN_DROPOUT.replace(
      "  num_classes: int\n", '  """Doc."""\n\n  num_classes: int   # outputs\n').replace(
      "    return nn.Dense", "    # the head\n    return   nn.Dense"))
  edited = _loaded(tmp_path, "c", BN_DROPOUT.replace("nn.Dense(32)", "nn.Dense(32, use_bias=False)"))
  assert digest(base) == digest(commented) != digest(edited)
  assert identity.param_shapes(base(10), (8, 8, 1)) == (
      "BatchNorm_0/bias 32, BatchNorm_0/scale 32, Dense_0/bias 32, Dense_0/kernel 64x32, "
      "Dense_1/bias 10, Dense_1/kernel 32x10")
  assert identity.param_shapes(edited(10), (8, 8, 1)).count("bias") == 2


@pytest.mark.slow
def test_an_edited_model_under_the_same_name_is_refused_and_a_comment_is_not(tmp_path):
  path = tmp_path / "my_net.py"
  path.write_text(textwrap.dedent(BN_DROPOUT))
  workdir = tmp_path / "run"
  first = launch(path, workdir)
  assert first.returncode == 0, first.stderr
  cells = json.load(open(workdir / "results.json"))["cells"]
  assert [c["n1_model"] for c in cells] == ["my_net"] and cells[0]["n1_test_accuracy"]["mean"] > 50
  fingerprint = json.load(open(workdir / "n1" / "true__my_net__b64" / "fingerprint.json"))
  assert fingerprint["fields"]["n1.model_params"].startswith("BatchNorm_0/bias 32, ")
  # A comment and a docstring are no edit: the stored results are reused, nothing trains.
  path.write_text(textwrap.dedent(BN_DROPOUT).replace(
      "  num_classes: int\n", '  """My network."""\n  num_classes: int  # the outputs\n'))
  again = launch(path, workdir)
  assert again.returncode == 0 and ": training" not in again.stdout, again.stderr
  # Another dropout rate under the same name: refused in one line naming the model.
  before = sorted(os.listdir(workdir / "n1"))
  path.write_text(textwrap.dedent(BN_DROPOUT).replace("nn.Dropout(0.3", "nn.Dropout(0.5"))
  edited = launch(path, workdir)
  assert edited.returncode == 2 and "Traceback" not in edited.stderr, edited.stderr
  [line] = [l for l in edited.stderr.splitlines() if l.startswith("error:")]
  assert "another definition of model 'my_net'" in line and "n1.model_definition" in line
  assert sorted(os.listdir(workdir / "n1")) == before


# A module whose classes call module-level helpers of the researcher's own file.
WITH_HELPERS = BN_DROPOUT.replace(
    "class MyNet(nn.Module):", '''SCALE = 0.5


def activate(x):
  return nn.relu(x) * SCALE + shifted(x)


def shifted(x):
  """Another helper, called by the first."""
  return 0.0 * x


class MyNet(nn.Module):''').replace(
    "    x = nn.relu(nn.BatchNorm(", "    x = activate(nn.BatchNorm(")


def test_a_model_s_identity_follows_its_own_helpers_not_their_comments(tmp_path):
  from learnjax.models import identity
  digest = lambda name, source: identity.definition_digest(_loaded(tmp_path, name, source)(10),
                                                           (8, 8, 1))
  base = digest("h0", WITH_HELPERS)
  assert base != digest("h1", BN_DROPOUT)
  # Comments and docstrings in the helpers do not count; their code and constants do, also that
  # of a helper reached through another.
  assert digest("h2", WITH_HELPERS.replace("def shifted(x):", "def shifted(x):  # zero\n").replace(
      "  return nn.relu(x) * SCALE", "  # the activation\n  return nn.relu(x) * SCALE")) == base
  assert digest("h3", WITH_HELPERS.replace("nn.relu(x) * SCALE", "nn.tanh(x) * SCALE")) != base
  assert digest("h4", WITH_HELPERS.replace("SCALE = 0.5", "SCALE = 0.25")) != base
  assert digest("h5", WITH_HELPERS.replace("0.0 * x", "0.1 * x")) != base
  # A model without helpers has the digest it had before helpers were followed.
  assert identity.helper_definitions([_loaded(tmp_path, "h6", BN_DROPOUT)]) == []


@pytest.mark.slow
def test_an_edited_helper_of_a_model_is_refused_on_resume(tmp_path):
  path = tmp_path / "my_net.py"
  path.write_text(textwrap.dedent(WITH_HELPERS))
  workdir = tmp_path / "run"
  extra = ["--config.n2.model=none", "--config.train.max_epochs=2"]
  first = launch(path, workdir, *extra)
  assert first.returncode == 0, first.stderr
  before = sorted(os.listdir(workdir / "n1"))
  # The helper computes another function: same parameters, same class code, another model.
  path.write_text(textwrap.dedent(WITH_HELPERS).replace("nn.relu(x) * SCALE", "nn.tanh(x) * SCALE"))
  edited = launch(path, workdir, *extra)
  assert edited.returncode == 2 and "Traceback" not in edited.stderr, edited.stderr
  [line] = [l for l in edited.stderr.splitlines() if l.startswith("error:")]
  assert "another definition of model 'my_net'" in line and "n1.model_definition" in line
  assert sorted(os.listdir(workdir / "n1")) == before


@pytest.mark.slow
def test_a_batchnorm_dropout_training_killed_mid_run_resumes_bitwise(tmp_path):
  path = tmp_path / "my_net.py"
  path.write_text(textwrap.dedent(BN_DROPOUT))
  extra = ["--config.train.max_epochs=40", "--config.n2.model=none"]
  workdir = str(tmp_path / "killed")
  proc = launch(path, workdir, *extra, wait=False)
  in_flight = os.path.join(workdir, "checkpoints", "n1", "true__my_net__b64")
  deadline = time.time() + 300
  while not any(n.isdigit() and int(n) >= 3 for _, dirs, _ in os.walk(in_flight) for n in dirs):
    assert time.time() < deadline and proc.poll() is None
    time.sleep(0.05)
  proc.kill()
  proc.wait()
  assert not os.path.exists(os.path.join(workdir, "n1", "true__my_net__b64", "result.json"))
  resumed = launch(path, workdir, *extra)
  assert resumed.returncode == 0, resumed.stderr
  whole = launch(path, str(tmp_path / "whole"), *extra)
  assert whole.returncode == 0, whole.stderr
  a, b = n1_arrays(workdir), n1_arrays(str(tmp_path / "whole"))
  assert a.keys() == b.keys() and a
  for key in a:
    np.testing.assert_array_equal(a[key], b[key], err_msg=key)
