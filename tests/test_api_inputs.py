"""The Python API answers bad arguments as the command line does: one clear exception, before
any training and before the workdir is touched.

Every exception is a :class:`learnjax.errors.ArgumentError`, both a ``ValueError`` (what Python
callers catch) and a ``LearnjaxError`` (what the command line prints as one line). Training is
replaced by a function that fails the test, so a case passes only if it is refused first.
"""

from __future__ import annotations

import os
import pathlib

import ml_collections
import numpy as np
import pytest

import learnjax
from learnjax import config as config_lib
from learnjax.errors import ArgumentError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZES = dict(n1_size=300, n2_size=300, test_size=200)


def constant(columns, value=0.0):
  """A predict function returning an (N, columns) array of ``value``."""
  return lambda images: np.full((len(images), columns), value)


def logits_with_nan(images):
  out = np.eye(10)[np.arange(len(images)) % 10]
  out[3, 4] = np.nan
  return out


LEARNABILITY = [
    # What an N1 predict function returns.
    ("labels as an (N, 1) column", dict(n1=constant(1)), "n1 .* returned an \\(300, 1\\) column"),
    ("all-NaN logits", dict(n1=constant(10, np.nan)), "n1 .* 300 of 300 rows not finite"),
    ("one NaN logit", dict(n1=logits_with_nan), "n1 .* 1 of 300 rows not finite"),
    ("infinite logits", dict(n1=constant(10, np.inf)), "n1 .* not finite"),
    ("fewer columns than classes", dict(n1=constant(3)), "n1 .* 3 columns .* 10 classes"),
    ("more columns than classes", dict(n1=constant(12)), "n1 .* 12 columns .* 10 classes"),
    ("NaN labels", dict(n1=lambda images: np.full(len(images), np.nan)), "n1 .* not all finite"),
    ("float labels", dict(n1=lambda images: np.zeros(len(images))), "n1 .* integer labels"),
    ("labels of the wrong length", dict(n1=(np.zeros(5, int), np.zeros(200, int))),
     "n1 .* d2 has 5 labels"),
    ("n1 neither a name nor a function", dict(n1=42), "n1 must be a model name"),
    # Seeds.
    ("seeds True", dict(seeds=True), "seeds must be a positive count"),
    ("seeds 0", dict(seeds=0), "seeds must be an integer >= 1"),
    ("seeds with a repeat", dict(seeds=[0, 1, 1]), "seeds lists a seed index twice"),
    ("seeds negative", dict(seeds=[0, -1]), "seeds must be a positive count"),
    ("seeds a string", dict(seeds="3"), "seeds must be a positive count"),
    ("seeds of floats", dict(seeds=[0.5]), "seeds must be a positive count"),
    ("negative seed", dict(seed=-1), "seed must be an integer >= 0"),
    ("seed 10^20", dict(seed=10**20), "seed must be an integer >= 0 and at most 4294967295"),
    ("seed True", dict(seed=True), "seed must be an integer"),
    # Sizes and config overrides.
    ("n1_size 0", dict(n1_size=0), "n1_size must be an integer >= 1"),
    ("test_size a float", dict(test_size=2.5), "test_size must be an integer >= 1"),
    ("nested config", dict(config={"train": {"max_epochs": 2}}), "'train' is a block"),
    ("config a list", dict(config=[("train.max_epochs", 2)]), "must be a dict of dotted"),
    ("unknown config field", dict(config={"train.max_epoch": 3}),
     "unknown config field 'train.max_epoch'"),
    ("config value of the wrong type", dict(config={"train.max_epochs": "ten"}),
     "config field train.max_epochs"),
    ("config value out of range", dict(config={"train.learning_rate": float("nan")}),
     "train.learning_rate must be a finite number"),
    ("comma list of batch sizes", dict(config={"n1.batch_size": "32,64"}),
     "is a list; learnability\\(\\) measures one N1 and one N2"),
    ("comma list of models", dict(n2=None, config={"n2.model": "mlp_1,mlp_2"}), "is a list"),
    # config= and the arguments give one setting two ways: they must agree.
    ("config seeds against seeds", dict(seeds=5, config={"seeds": 3}),
     "config\\['seeds'\\]=3 and seeds=5 disagree"),
    ("config n1.model against n1", dict(config={"n1.model": "mlp_2"}),
     "config\\['n1.model'\\]='mlp_2' and n1='mlp_1' disagree"),
    ("config n1.model beside a predict function", dict(n1=constant(10),
                                                       config={"n1.model": "mlp_2"}),
     "config\\['n1.model'\\]='mlp_2' names a model, but n1 is a function"),
    ("config n2.model against n2", dict(config={"n2.model": "mlp_2"}), "and n2='mlp_1' disagree"),
    ("config seed against seed", dict(seed=1, config={"seed": 2}), "and seed=1 disagree"),
    ("config n1_size against n1_size", dict(config={"data.n1_size": 100}),
     "config\\['data.n1_size'\\]=100 and n1_size=300 disagree"),
    ("config data.name against data", dict(config={"data.name": "mnist"}),
     "and data='digits' disagree"),
    ("config n2_size against n2_size", dict(n2_size=[100, 200], config={"data.n2_size": "100,300"}),
     "and n2_size=\\[100, 200\\] disagree"),
    ("n2_size a float array", dict(n2_size=np.array([100.5, 200.0])),
     "n2_size must be a positive integer"),
    ("progress a string", dict(progress="yes"), "progress must be a function"),
    ("width a model ignores", dict(n2="mlp_1", config={"n2.width": 8}),
     "model 'mlp_1' fixes width=64"),
    ("width on vgg11", dict(n2="vgg11", config={"n2.width": 8}), "n2.width=8 is not used"),
    ("family without its width", dict(n2="mlp"), "model 'mlp' of config.n2.model needs width"),
    ("width with a predict function", dict(n1=constant(10), config={"n1.width": 8}),
     "n1.width=8 is not used by model 'predictions'"),
    ("n2 not a name", dict(n2=3), "n2 must be a model name"),
    ("n2 same without an N1 name", dict(n1=constant(10), n2="same"), "n2='same' needs"),
    # Data.
    ("data of three arrays", dict(data=(1, 2, 3)), "data as arrays"),
    ("data a number", dict(data=3), "data must be a data set name"),
    ("data a missing Path", dict(data=pathlib.Path("no_such.npz")), "no such .npz file"),
]


@pytest.fixture
def no_training(monkeypatch):
  from learnjax import training, sweep

  def trained(*args, **kwargs):
    raise AssertionError("trained before the bad argument was refused")
  monkeypatch.setattr(training, "train_n1", trained)
  monkeypatch.setattr(training, "train_n2", trained)
  monkeypatch.setattr(sweep.Experiment, "run", trained)


@pytest.mark.parametrize("kwargs, message", [c[1:] for c in LEARNABILITY],
                         ids=[c[0] for c in LEARNABILITY])
def test_learnability_refuses_before_training(kwargs, message, no_training):
  arguments = {"n1": "mlp_1", "data": "digits", "n2": "mlp_1", "seeds": 1, **SIZES, **kwargs}
  with pytest.raises(ValueError, match=message) as caught:
    learnjax.learnability(**arguments)
  assert isinstance(caught.value, learnjax.LearnjaxError)


def smoke():
  return config_lib.make_smoke(config_lib.base_config(), max_epochs=1, seeds=1)


RUN = [
    ("a dict as config", lambda: dict(config={"seeds": 2}), "config must be an ml_collections"),
    ("a number as config", lambda: dict(config=3), "config must be an ml_collections"),
    ("a missing config file", lambda: dict(config=os.path.join(ROOT, "configs", "nope.py")),
     "no such config file"),
    ("a config file argument unknown",
     lambda: dict(config=os.path.join(ROOT, "configs", "quickstart.py:bogus")),
     "get_config\\('bogus'\\) raised ValueError"),
    ("nested overrides", lambda: dict(overrides={"train": {"max_epochs": 2}}), "is a block"),
    ("overrides a list", lambda: dict(overrides=["train.max_epochs=2"]), "must be a dict"),
    ("unknown override", lambda: dict(overrides={"n3.model": "x"}), "unknown config field"),
    ("an override out of range", lambda: dict(overrides={"seeds": 0}),
     "config.seeds must be a positive integer"),
    ("a list of batch sizes with a repeat", lambda: dict(overrides={"n1.batch_size": "32,32"}),
     "n1.batch_size lists 32 twice"),
    ("a seed beyond 32 bits", lambda: dict(overrides={"seed": 2**32}),
     "config.seed must be at most 4294967295"),
    ("npz_path without data.name=npz", lambda: dict(overrides={"data.npz_path": "d.npz"}),
     "is read only with data.name=npz"),
    ("task_index beyond num_tasks", lambda: dict(task_index=3, num_tasks=2),
     "task_index must be an integer >= 0 and at most 1"),
    ("num_tasks 0", lambda: dict(num_tasks=0), "num_tasks must be an integer >= 1"),
    ("task_index True", lambda: dict(task_index=True), "task_index must be an integer"),
    ("workdir a number", lambda: dict(workdir=3), "workdir must be a folder path"),
    ("out not callable", lambda: dict(out="log.txt"), "out must be a function"),
]


@pytest.mark.parametrize("make, message", [c[1:] for c in RUN], ids=[c[0] for c in RUN])
def test_run_refuses_before_training_and_writes_nothing(make, message, no_training, tmp_path):
  workdir = tmp_path / "w"
  arguments = {"config": smoke(), "workdir": str(workdir), **make()}
  with pytest.raises(ValueError, match=message) as caught:
    learnjax.run(**arguments)
  assert isinstance(caught.value, learnjax.LearnjaxError)
  assert not workdir.exists()


def test_run_takes_a_comma_list_of_batch_sizes_as_the_command_line_does(monkeypatch, tmp_path):
  from learnjax import sweep
  planned = []
  monkeypatch.setattr(sweep, "train_and_evaluate",
                      lambda config, *args, **kwargs: planned.extend(
                          job.id for job, _ in sweep.plan(config)))
  learnjax.run(smoke(), str(tmp_path / "w"), overrides={"n1.batch_size": "32,64"}, out=None)
  assert [p.split("__")[2] for p in planned] == ["b32", "b64"] * (len(planned) // 2)


def test_learnability_takes_a_pathlib_path(tmp_path, digits_pool, no_training, monkeypatch):
  """A Path to an .npz is read as its string would be (training replaced: only the loading)."""
  path = tmp_path / "d.npz"
  np.savez(path, x_train=digits_pool.x_train, y_train=digits_pool.y_train,
           x_test=digits_pool.x_test, y_test=digits_pool.y_test)
  with pytest.raises(AssertionError, match="trained before"):
    learnjax.learnability("mlp_1", data=path, n2="mlp_1", seeds=1, **SIZES)


class _Measured(Exception):
  """Raised in place of N1's training, with what it would have trained."""


@pytest.fixture
def measured(monkeypatch):
  from learnjax import training

  def train_n1(splits, trainer, variant, seed, seed_indices, **kwargs):
    raise _Measured(dict(model=trainer.model, seeds=list(seed_indices), seed=seed,
                         d1=len(splits.d1), d2=len(splits.d2), on_epoch=kwargs.get("on_epoch")))
  monkeypatch.setattr(training, "train_n1", train_n1)


def _arguments_of(**kwargs):
  with pytest.raises(_Measured) as caught:
    learnjax.learnability(**{"data": "digits", **kwargs})
  return caught.value.args[0]


@pytest.mark.parametrize("kwargs, expect", [
    (dict(n1="mlp_1", config={"seeds": 3}), dict(seeds=[0, 1, 2])),
    (dict(n1="mlp_1", seeds=3, config={"seeds": 3}), dict(seeds=[0, 1, 2])),
    (dict(n1="mlp_1", seeds=[0, 1, 2], config={"seeds": 3}), dict(seeds=[0, 1, 2])),
    (dict(n1="mlp_1"), dict(seeds=[0, 1, 2, 3, 4], seed=0)),
    (dict(config={"n1.model": "mlp_2", "seed": 7, "data.n1_size": 200}),
     dict(depth=2, seed=7, d1=200)),
    (dict(n1="mlp_2", config={"n1.model": "mlp_2"}), dict(depth=2)),
    (dict(n1="mlp_1", n1_size=250, config={"data.n1_size": 250}), dict(d1=250)),
])
def test_config_and_arguments_give_a_setting_either_way(measured, kwargs, expect):
  got = _arguments_of(progress=None, **kwargs)
  if "depth" in expect:
    assert got["model"].depth == expect.pop("depth")
  assert {k: got[k] for k in expect} == expect


def test_any_sequence_of_integers_is_a_size_list_and_progress_takes_booleans(measured):
  for sizes in (np.array([100, 200, 400]), range(100, 401, 150), (np.int64(100), 400)):
    got = _arguments_of(n1="mlp_1", n2_size=sizes, progress=False)
    assert got["d2"] == 400 and got["on_epoch"] is None
  assert _arguments_of(n1="mlp_1", config={"data.n2_size": np.array([100, 300])},
                       n2_size=[100, 300], progress=True)["on_epoch"] is not None


def test_a_config_dict_is_not_taken_for_a_configdict():
  assert not isinstance({"seeds": 2}, ml_collections.ConfigDict)
  assert issubclass(ArgumentError, ValueError) and issubclass(ArgumentError, learnjax.LearnjaxError)
