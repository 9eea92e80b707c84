"""Bad input, one row per case: exit code 2, one ``error:`` line, no traceback, results untouched.

A workdir holding earlier results (a tiny run on an .npz of digits) is made once per session and
copied into every case's folder; each case runs the command line in a subprocess (several at once)
from that folder, so the .npz path ``d.npz`` is the case's own copy and can be replaced. After the
run, every file and folder of the workdir must be as before: a refused input changes nothing.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import shutil
import subprocess
import sys
from typing import Callable

import numpy as np
import pytest

# A trained run and about a hundred command lines in subprocesses.
pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE = [f"--config={ROOT}/configs/quickstart.py", "--config.data.variant=true",
        "--config.seeds=2", "--config.train.max_epochs=2", "--config.data.name=npz",
        "--config.data.npz_path=d.npz", "--config.data.n1_size=100", "--config.data.n2_size=100",
        "--config.data.test_size=100", "--workdir=w"]


def digits(n_train=300, n_test=100) -> dict:
  d = np.load(os.path.join(ROOT, "learnjax", "data", "digits.npz"))
  return {"x_train": d["x_train"][:n_train], "y_train": d["y_train"][:n_train],
          "x_test": d["x_test"][:n_test], "y_test": d["y_test"][:n_test]}


def npz(name: str, **changes) -> Callable:
  """A setup writing ``name`` as digits with ``changes`` (None drops a key)."""
  def setup(folder):
    arrays = {**digits(), **changes}
    np.savez(os.path.join(folder, name), **{k: v for k, v in arrays.items() if v is not None})
  return setup


def with_label(value, dtype=np.int64, key="y_train"):
  y = digits()[key].astype(dtype)
  y[7] = value
  return {key: y}


def config_file(body: str) -> Callable:
  def setup(folder):
    with open(os.path.join(folder, "c.py"), "w") as f:
      f.write(body)
  return setup


def write(name: str, data: bytes) -> Callable:
  def setup(folder):
    with open(os.path.join(folder, name), "wb") as f:
      f.write(data)
  return setup


def remove(name: str) -> Callable:
  def setup(folder):
    os.remove(os.path.join(folder, name))
  return setup


def foreign_workdir(folder):
  """A folder holding another program's config.json and nothing else."""
  os.makedirs(os.path.join(folder, "new"))
  write("new/config.json", b'{"epochs": 3}')(folder)


def object_arrays(folder):
  arrays = digits()
  arrays["x_train"] = np.array([x for x in arrays["x_train"]] + [None], dtype=object)[:-1]
  np.savez(os.path.join(folder, "obj.npz"), **arrays, allow_pickle=True)


def upscaled(folder):
  """d.npz replaced under the same path: the same digits at 16x16."""
  arrays = digits()
  for k in ("x_train", "x_test"):
    arrays[k] = arrays[k].repeat(2, 1).repeat(2, 2)
  np.savez(os.path.join(folder, "d.npz"), **arrays)


def relabelled(folder):
  """d.npz replaced under the same path: same images, the labels of D2 shifted by one."""
  arrays = digits()
  arrays["y_train"] = arrays["y_train"].copy()
  arrays["y_train"][200:] = (arrays["y_train"][200:] + 1) % 10
  np.savez(os.path.join(folder, "d.npz"), **arrays)


ROOT_USER = os.geteuid() == 0


def read_only_dir(folder):
  os.makedirs(os.path.join(folder, "ro"))
  os.chmod(os.path.join(folder, "ro"), 0o555)


# As root, permissions do not stop writes: sysfs does.
READ_ONLY = "/sys/kernel" if ROOT_USER else "ro"
UNCREATABLE = "/sys/learnjax-test/run" if ROOT_USER else "ro/run"


@dataclasses.dataclass
class Case:
  id: str
  args: list[str]
  expect: str
  module: str = "learnjax.main"
  base: bool = True                 # prefix BASE (the earlier run's command)
  setup: Callable | None = None
  preexec: Callable | None = None
  strict: bool = True               # the workdir unchanged, no file added
  absent: str = ""                  # a misleading phrase the error line must not hold


def config_case(case_id: str, args: list[str], expect: str, **kwargs) -> Case:
  """A case with its own --config (BASE has one too)."""
  return Case(case_id, args + ["--workdir=w"], expect, base=False, **kwargs)


def settings(field: str, value: str, expect: str, case_id: str | None = None) -> Case:
  return Case(case_id or f"{field}={value}", [f"--config.{field}={value}"], expect)


CASES = [
    # Settings: non-finite, out of range, mistyped.
    settings("train.learning_rate", "nan", "train.learning_rate must be a finite number"),
    settings("train.learning_rate", "inf", "train.learning_rate must be a finite number"),
    settings("train.learning_rate", "0", "train.learning_rate must be a positive"),
    settings("train.learning_rate", "-0.1", "train.learning_rate must be a positive"),
    settings("train.momentum", "-0.5", "train.momentum must be in [0, 1)"),
    settings("train.momentum", "1.0", "train.momentum must be in [0, 1)"),
    settings("train.momentum", "nan", "train.momentum must be a finite number"),
    settings("train.weight_decay", "-0.1", "train.weight_decay must be a number >= 0"),
    settings("train.plateau_patience", "0", "train.plateau_patience must be an integer >= 1"),
    settings("train.plateau_patience", "-3", "train.plateau_patience must be an integer >= 1"),
    settings("train.plateau_factor", "0", "train.plateau_factor must be in (0, 1)"),
    settings("train.plateau_factor", "1", "train.plateau_factor must be in (0, 1)"),
    settings("train.plateau_factor", "1.5", "train.plateau_factor must be in (0, 1)"),
    settings("train.stop_error", "nan", "train.stop_error must be a finite number"),
    settings("train.stop_error", "1", "train.stop_error must be in [0, 1)"),
    settings("train.stop_error", "-0.01", "train.stop_error must be in [0, 1)"),
    settings("checkpoint_every_epochs", "-1", "checkpoint_every_epochs must be 0"),
    settings("train.eval_batch_size", "0", "train.eval_batch_size must be a positive integer"),
    settings("train.eval_batch_size", "-5", "train.eval_batch_size must be a positive integer"),
    settings("train.max_epochs", "0", "train.max_epochs must be a positive integer"),
    settings("train.devices", "-1", "train.devices must be 0"),
    settings("train.concurrent_seeds", "-1", "train.concurrent_seeds must be 0"),
    settings("train.loop", "fast", "train.loop must be one of auto, scan, step"),
    settings("train.seed_layout", "diagonal", "train.seed_layout must be one of"),
    settings("train.error_measure", "final", "train.error_measure must be one of"),
    settings("train.precision", "fp8", "train.precision must be one of"),
    settings("train.shared_order", "maybe", "--config.train.shared_order"),
    settings("progress_seconds", "-1", "progress_seconds must be a number >= 0"),
    settings("seeds", "0", "config.seeds must be a positive integer"),
    settings("seeds", "-2", "config.seeds must be a positive integer"),
    settings("seed", "-1", "config.seed must be an integer >= 0"),
    settings("data.n1_size", "0", "data.n1_size must be a positive integer"),
    settings("data.n1_size", "5000", "need 5100 training images, but d.npz has 300"),
    settings("data.test_size", "1000", "D3 (1000) is larger than the 100 test images"),
    # Grid lists.
    settings("n1.snapshot_epochs", "50", "asks for epoch 50, beyond train.max_epochs=2"),
    settings("n1.snapshot_epochs", "0,1", "snapshot_epochs must be positive epochs"),
    settings("n1.snapshot_epochs", "1,1", "n1.snapshot_epochs lists 1 twice"),
    settings("n1.snapshot_epochs", "one", "n1.snapshot_epochs must be integers"),
    settings("n1.model", "mlp_1,mlp_1", "n1.model lists 'mlp_1' twice"),
    settings("n1.model", "mlp_1,", "n1.model='mlp_1,' has an empty element"),
    settings("n1.model", "", "config.n1.model is empty"),
    settings("n2.model", "mlp_1,mlp_1", "n2.model lists 'mlp_1' twice"),
    settings("data.variant", "true,true", "data.variant lists 'true' twice"),
    settings("data.variant", ",true", "has an empty element"),
    settings("n1.batch_size", "64,64", "n1.batch_size lists 64 twice"),
    settings("n1.batch_size", "64,abc", "n1.batch_size must be integers"),
    settings("n1.batch_size", "64,0", "n1.batch_size must be positive integers"),
    settings("n2.batch_size", "32,32", "n2.batch_size lists 32 twice"),
    # Names and types.
    settings("n1.model", "resnet1000", "unknown model 'resnet1000'"),
    Case("negative width", ["--config.n1.model=shallow_cnn", "--config.n1.width=-4"],
         "n1.width must be a positive integer"),
    settings("n1.widht", "3", "bad config override: 'widht' Did you mean width"),
    settings("n1.width", "abc", "invalid literal for int() with base 10: 'abc'"),
    settings("data.variant", "shuffled", "unknown data variant 'shuffled'"),
    Case("data.name=imagenet", ["--config.data.name=imagenet", "--config.data.npz_path="],
         "unknown data set 'imagenet': neither digits, npz nor"),
    settings("data.name", "", "data.name is empty"),
    Case("more devices than present", ["--config.train.devices=64"], "train.devices=64"),
    Case("task index", ["--task_index=3", "--num_tasks=2"], "task_index must be in"),
    Case("positional argument", ["extra"], "unexpected arguments: extra"),
    # The data: shapes, dtypes, labels and class count.
    Case("npz object arrays", ["--config.data.npz_path=obj.npz"], "holds Python objects",
         setup=object_arrays),
    Case("npz zero channels", ["--config.data.npz_path=e.npz"],
         "height, width and channels > 0",
         setup=npz("e.npz", x_train=np.zeros((300, 8, 8, 0), np.uint8),
                   x_test=np.zeros((100, 8, 8, 0), np.uint8))),
    Case("npz flat images", ["--config.data.npz_path=e.npz"], "x_train must be images (N, H, W, C)",
         setup=npz("e.npz", x_train=np.zeros((300, 64), np.uint8))),
    Case("npz float images", ["--config.data.npz_path=e.npz"], "x_train must be uint8 pixels",
         setup=npz("e.npz", x_train=np.zeros((300, 8, 8, 1), np.float32))),
    Case("npz float labels", ["--config.data.npz_path=e.npz"], "y_train must be a 1-d array of "
         "integer labels", setup=npz("e.npz", y_train=np.zeros(300, np.float32))),
    Case("npz train/test shapes differ", ["--config.data.npz_path=e.npz"], "differ in shape",
         setup=npz("e.npz", x_test=np.zeros((100, 9, 9, 1), np.uint8))),
    Case("npz fewer labels than images", ["--config.data.npz_path=e.npz"],
         "x_train has 300 images but y_train 299 labels",
         setup=npz("e.npz", y_train=digits()["y_train"][:299])),
    Case("npz label 5,000,000", ["--config.data.npz_path=e.npz"],
         "largest label is 5000000, which would mean 5,000,001 classes",
         setup=npz("e.npz", **with_label(5_000_000))),
    Case("npz label 2^32+3", ["--config.data.npz_path=e.npz"], "largest label is 4294967299",
         setup=npz("e.npz", **with_label(2**32 + 3))),
    Case("npz label 12 among 0..9", ["--config.data.npz_path=e.npz"],
         "means 13 classes, but no image has label 10, 11", setup=npz("e.npz", **with_label(12))),
    Case("npz negative label", ["--config.data.npz_path=e.npz"], "labels must be 0..C-1, found -1",
         setup=npz("e.npz", **with_label(-1, key="y_test"))),
    Case("npz label beyond num_classes", ["--config.data.npz_path=e.npz"],
         "label 12 is outside 0..9 (10 classes)",
         setup=npz("e.npz", num_classes=np.array(10), **with_label(12))),
    Case("npz class_names and num_classes disagree", ["--config.data.npz_path=e.npz"],
         "num_classes 10 but 3 class_names",
         setup=npz("e.npz", num_classes=np.array(10), class_names=np.array(["a", "b", "c"]))),
    Case("npz num_classes not a number", ["--config.data.npz_path=e.npz"],
         "num_classes must be one integer", setup=npz("e.npz", num_classes=np.array([10, 10]))),
    Case("npz without x_train", ["--config.data.npz_path=e.npz"], "e.npz lacks x_train",
         setup=npz("e.npz", x_train=None)),
    Case("npz corrupt", ["--config.data.npz_path=e.npz"], "cannot read e.npz",
         setup=write("e.npz", b"PK\x03\x04 not really a zip")),
    Case("npz missing", ["--config.data.npz_path=none.npz"], "no such .npz file: none.npz"),
    Case("npz path empty", ["--config.data.npz_path="], "data.name=npz needs"),
    Case("tfds set not prepared", ["--config.data.name=cifar10", "--config.data.npz_path=",
                                   "--config.data.data_dir=/nonexistent/tfds"],
         "cifar10 is not prepared"),
    # The data changed under the same path: the workdir's results were computed on the old data.
    Case("data replaced by other images", ["--config.n2.model=mlp_2"],
         "holds results computed on other data (image shape: [8, 8, 1] -> [16, 16, 1]",
         setup=upscaled),
    Case("data replaced by other labels", ["--config.n2.model=mlp_2"],
         "holds results computed on other data (training labels: sha256", setup=relabelled),
    Case("other protocol", ["--config.train.max_epochs=3"],
         "holds results computed with a different config (train.max_epochs: 2 -> 3)"),
    # The workdir.
    Case("workdir is a file", ["--workdir=f"], "--workdir f is a file", setup=write("f", b"x")),
    Case("workdir under a file", ["--workdir=f/run"], "f is a file, not a folder",
         setup=write("f", b"x")),
    Case("workdir uncreatable", [f"--workdir={UNCREATABLE}"], "cannot create --workdir",
         setup=read_only_dir),
    Case("workdir read-only", [f"--workdir={READ_ONLY}"], "is not writable",
         setup=read_only_dir),
    Case("workdir empty", ["--workdir="], "--workdir is empty"),
    Case("gather_only where nothing ran", ["--workdir=new", "--gather_only"],
         "holds no plan.json"),
    # A full disk is no bad input: tests/test_failures.py (exit code 4).
    # Config files.
    config_case("config syntax error", ["--config=c.py"], "config file c.py: syntax error at line 1",
         setup=config_file("def get_config(:\n  pass\n")),
    config_case("config without get_config", ["--config=c.py"], "config file c.py defines no get_config()",
         setup=config_file("x = 1\n")),
    config_case("config get_config raises", ["--config=c.py"],
         "config file c.py: get_config() raised ValueError: boom",
         setup=config_file("def get_config():\n  raise ValueError('boom')\n")),
    config_case("config module raises", ["--config=c.py"], "config file c.py failed while loading",
         setup=config_file("import no_such_module_x\n")),
    config_case("config returns a dict", ["--config=c.py"], "get_config returned dict",
         setup=config_file("def get_config():\n  return {'seeds': 2}\n")),
    config_case("config returns None", ["--config=c.py"], "get_config returned NoneType",
         setup=config_file("def get_config():\n  pass\n")),
    config_case("config lacks a field", ["--config=c.py"], "config file c.py: the config lacks "
         "train.learning_rate", setup=config_file(
             "from learnjax.config import base_config\ndef get_config():\n  c = base_config()\n"
             "  del c.train['learning_rate']\n  return c\n")),
    config_case("config with a bad value", ["--config=c.py"], "train.learning_rate must be a finite",
         setup=config_file(
             "from learnjax.config import base_config\ndef get_config():\n  c = base_config()\n"
             "  c.train.learning_rate = float('nan')\n  return c\n")),
    config_case("config file missing", ["--config=configs/no_such.py"],
         "config file configs/no_such.py does not exist"),
    config_case("config argument unknown", [f"--config={ROOT}/configs/quickstart.py:bogus"],
         "get_config('bogus') raised ValueError: unknown config argument 'bogus'"),
    config_case("config empty", ["--config="], "--config is empty"),
    # The other command lines.
    Case("models --num_classes 0", ["--num_classes", "0"], "--num_classes must be at least 2",
         module="learnjax.models", base=False),
    Case("models --input_shape 8,8", ["--input_shape", "8,8"], "--input_shape must be three",
         module="learnjax.models", base=False),
    Case("models --input_shape a,b,c", ["--input_shape", "a,b,c"], "--input_shape must be three",
         module="learnjax.models", base=False),
    Case("tfds_source without the data", ["--name", "mnist", "--data_dir", "/nonexistent/tfds"],
         "mnist is not prepared", module="learnjax.data.tfds_source", base=False),
    Case("report of a workdir without results", ["--workdir=new"], "new",
         module="learnjax.report", base=False),
    Case("report of a workdir that is a file", ["--workdir=f"], "workdir f is a file",
         module="learnjax.report", base=False, setup=write("f", b"x")),
    Case("report reference malformed", ["--workdir=w", "--reference=r.json"],
         "cannot read reference file r.json",
         module="learnjax.report", base=False, setup=write("r.json", b"{not json"),
         absent="delete"),  # the user's own file
    # The workdir's record and its units' fingerprints (learnjax.guard).
    Case("config.json not JSON", [], "w/config.json is not a learnjax config",
         setup=write("w/config.json", b"{oops")),
    Case("config.json of another program", [], "w/config.json is not a learnjax config",
         setup=write("w/config.json", b'{"model": "resnet50", "lr": 0.1}')),
    Case("fresh workdir holding another program's config.json", ["--workdir=new"],
         "new/config.json is not a learnjax config", setup=foreign_workdir),
    Case("data.json damaged", ["--config.n2.model=mlp_2"], "w/data.json is damaged",
         setup=write("w/data.json", b'{"dataset": "npz"'), absent="other data"),
    Case("config.json lost, other settings", ["--config.seeds=3"],
         "(a stored result) was computed with other settings (seeds: 2 -> 3)",
         setup=remove("w/config.json")),
    Case("data.json lost, other data", ["--config.n2.model=mlp_2"],
         "(a stored result) was computed with other settings (data.train_labels: sha256",
         setup=lambda folder: (remove("w/data.json")(folder), relabelled(folder))),
    Case("workdir a URL", ["--workdir=gs://bucket/run"], "--workdir gs://bucket/run is a URL"),
]


# Inputs that the chosen options would ignore, seeds and names that would break later, damaged
# records, and the export and model-listing command lines.
EXPORT = [f"--config={ROOT}/configs/quickstart.py", "--config.data.name=npz",
          "--config.data.npz_path=w/in.npz", "--config.data.n1_size=100",
          "--config.data.n2_size=100", "--config.data.test_size=100"]


def in_workdir(folder):
  """w/in.npz, a copy of d.npz inside the workdir (whose every byte the test compares), and
  w/p.npz, predictions of D2 and D3, w/dir.npz a folder and w/link.npz a link to w/in.npz."""
  npz(os.path.join("w", "in.npz"))(folder)
  np.savez(os.path.join(folder, "w", "p.npz"), d2=np.zeros(100, np.int64), d3=np.zeros(100, np.int64))
  os.makedirs(os.path.join(folder, "w", "dir.npz"))
  os.symlink("in.npz", os.path.join(folder, "w", "link.npz"))


def predictions_file(folder):
  np.savez(os.path.join(folder, "p.npz"), d2=np.zeros(100, np.int64), d3=np.zeros(100, np.int64))


def in_w(name: str, data: bytes) -> Callable:
  return write(os.path.join("w", name), data)


def first_cell(data: bytes) -> Callable:
  """The workdir's first cell's result.json replaced by ``data``."""
  def setup(folder):
    cells = os.path.join(folder, "w", "cells")
    with open(os.path.join(cells, sorted(os.listdir(cells))[0], "result.json"), "wb") as f:
      f.write(data)
  return setup


def export_case(case_id: str, out: str, expect: str, setup: Callable = in_workdir) -> Case:
  return Case(case_id, EXPORT + [f"--out={out}"], expect, module="learnjax.data.export",
              base=False, setup=setup)


def in_workdir_and_read_only(folder):
  in_workdir(folder)
  read_only_dir(folder)


CASES += [
    # Settings the chosen options would ignore: refused, never silently dropped.
    settings("data.name", "digits", "data.npz_path='d.npz' is read only with data.name=npz",
             case_id="npz_path without data.name=npz"),
    settings("n1.predictions", "p.npz", "n1.predictions='p.npz' is read only with "
             "n1.model=predictions"),
    settings("n1.name", "mine", "n1.name='mine' is read only with n1.model=predictions"),
    Case("width on vgg11", ["--config.n1.model=vgg11", "--config.n1.width=64"],
         "n1.width=64 is not used by model 'vgg11'"),
    Case("depth on the shallow CNN family", ["--config.n1.model=shallow_cnn",
                                             "--config.n1.width=16", "--config.n1.depth=3"],
         "n1.depth=3 is not used by model 'shallow_cnn'"),
    Case("depth on a shallow CNN preset", ["--config.n2.model=shallow_cnn_16",
                                           "--config.n2.depth=2"],
         "n2.depth=2 is not used by model 'shallow_cnn_16'"),
    Case("width on n2.model=same", ["--config.n2.model=same", "--config.n2.width=8"],
         "n2.width=8 is not used by model 'same'"),
    Case("width on an N1 given as predictions", ["--config.n1.model=predictions",
                                                 "--config.n1.predictions=p.npz",
                                                 "--config.n1.width=8"],
         "n1.width=8 is not used by model 'predictions'", setup=predictions_file),
    Case("n2 family without its width", ["--config.n2.model=mlp"],
         "model 'mlp' of config.n2.model needs width, depth (e.g. --config.n2.width=",
         absent="n1.width"),
    # Seeds and names that would fail (or be truncated) later.
    settings("seed", str(10**20), "config.seed must be at most 4294967295"),
    settings("seed", str(2**32), "config.seed must be at most 4294967295"),
    Case("n1.name not a path component", ["--config.n1.model=predictions",
                                          "--config.n1.predictions=p.npz",
                                          "--config.n1.name=my/net"],
         "config.n1.name 'my/net' must be a plain name", setup=predictions_file),
    Case("n1.name a parent folder", ["--config.n1.model=predictions",
                                     "--config.n1.predictions=p.npz", "--config.n1.name=.."],
         "config.n1.name '..' must be a plain name", setup=predictions_file),
    # Damaged records.
    Case("plan.json a list", ["--gather_only"], "plan.json is not a learnjax plan",
         setup=in_w("plan.json", b"[]")),
    Case("plan.json without cell ids", ["--gather_only"], "plan.json is not a learnjax plan",
         setup=in_w("plan.json", b'{"cells": 3}')),
    Case("cell result.json a list", ["--config.n2.model=mlp_1,mlp_2"],
         "is not the learnjax result of cells", setup=first_cell(b"[]")),
    Case("cell result.json empty", ["--config.n2.model=mlp_1,mlp_2"],
         "is not the learnjax result of cells", setup=first_cell(b"{}")),
    Case("cell result.json empty, gathered", ["--gather_only"],
         "is not the learnjax result of cells", setup=first_cell(b"{}")),
    Case("cell result.json a list, reported", ["--workdir=w"], "is not the learnjax result of cells",
         module="learnjax.report", base=False, setup=first_cell(b"[]")),
    # Misleading messages.
    Case("npz without test images", ["--config.data.npz_path=e.npz"],
         "e.npz: x_test holds no images", absent="test_size",
         setup=npz("e.npz", x_test=digits()["x_test"][:0], y_test=digits()["y_test"][:0])),
    # The export: never over an input, a folder or an unwritable file.
    export_case("export over the data set", "w/in.npz", "is the file of the data set"),
    export_case("export over a link to the data set", "w/link.npz", "is the file of the data set"),
    export_case("export over a predictions file", "w/p.npz", "holds learnjax input"),
    export_case("export to a folder", "w/dir.npz", "--out w/dir.npz is a folder"),
    export_case("export unwritable", f"{READ_ONLY}/x.npz", "cannot write --out",
                setup=in_workdir_and_read_only),
    Case("models --num_classes abc", ["--num_classes", "abc"],
         "--num_classes must be an integer, got 'abc'", module="learnjax.models", base=False),
    Case("models unknown argument", ["--bogus"], "unrecognized arguments: --bogus",
         module="learnjax.models", base=False),
    # 'none' (N1 only) is a whole experiment's choice, not one N2 among others.
    Case("n2.model none beside a model", ["--config.n2.model=none,mlp_1"],
         "lists 'none' (N1 only, no N2) beside N2 models"),
]


@dataclasses.dataclass
class Outcome:
  returncode: int
  stderr: str
  unchanged: bool
  difference: str


def snapshot(folder: str) -> dict:
  tree = {}
  for root, dirs, files in os.walk(folder):
    for d in dirs:
      tree[os.path.relpath(os.path.join(root, d), folder) + "/"] = None
    for f in files:
      with open(os.path.join(root, f), "rb") as fh:
        tree[os.path.relpath(os.path.join(root, f), folder)] = fh.read()
  return tree


def compare(before: dict, after: dict, strict: bool) -> str:
  changed = sorted(k for k in before if after.get(k, b"gone") != before[k])
  added = sorted(set(after) - set(before))
  if not strict:  # a launch that failed mid-run: no earlier result changes, no new result
    changed = [k for k in changed if k.startswith(("n1/", "cells/", "results.json"))]
    added = [k for k in added if k.endswith("result.json")]
  return ", ".join(f"changed {k}" for k in changed) + ", ".join(f"added {k}" for k in added)


@pytest.fixture(scope="session")
def earlier(tmp_path_factory):
  """A folder with d.npz and w/, a workdir holding a finished tiny run on it."""
  folder = str(tmp_path_factory.mktemp("earlier"))
  npz("d.npz")(folder)
  proc = subprocess.run([sys.executable, "-m", "learnjax.main", *BASE], cwd=folder, env=_env(),
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr
  return folder


def _env():
  return {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _run(case: Case, earlier: str, folder: str) -> Outcome:
  shutil.copytree(earlier, folder)
  if case.setup:
    case.setup(folder)
  before = snapshot(os.path.join(folder, "w"))
  args = (BASE if case.base else []) + case.args
  proc = subprocess.run([sys.executable, "-m", case.module, *args], cwd=folder, env=_env(),
                        capture_output=True, text=True, timeout=600, preexec_fn=case.preexec)
  difference = compare(before, snapshot(os.path.join(folder, "w")), case.strict)
  if os.path.isdir(os.path.join(folder, "ro")):
    os.chmod(os.path.join(folder, "ro"), 0o755)  # so that pytest can remove it
  return Outcome(proc.returncode, proc.stderr, not difference, difference)


@pytest.fixture(scope="session")
def outcomes(earlier, tmp_path_factory):
  """Every case run once, a few at a time."""
  root = tmp_path_factory.mktemp("cases")
  with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
    futures = {case.id: pool.submit(_run, case, earlier, str(root / f"case{i}"))
               for i, case in enumerate(CASES)}
    return {case_id: future.result() for case_id, future in futures.items()}


def test_the_cases_are_distinct_and_many():
  assert len({c.id for c in CASES}) == len(CASES) >= 60


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gets_one_error_line_and_changes_nothing(case, outcomes):
  outcome = outcomes[case.id]
  assert outcome.returncode == 2, outcome.stderr
  assert "Traceback" not in outcome.stderr, outcome.stderr
  errors = [line for line in outcome.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1, outcome.stderr
  assert case.expect in errors[0], errors[0]
  assert not case.absent or case.absent not in errors[0], errors[0]
  assert errors[0].count("'") % 2 == 0, errors[0]  # no quote left open
  assert outcome.unchanged, outcome.difference


def test_a_file_system_without_flock_gets_lockf_or_one_clear_error(tmp_path, monkeypatch):
  import errno
  import fcntl

  from learnjax.errors import LearnjaxError
  from learnjax.store import Store

  def no_flock(*args):
    raise OSError(errno.ENOLCK, "No locks available")

  store = Store(str(tmp_path))
  monkeypatch.setattr(fcntl, "flock", no_flock)
  with store.claim("row") as mine:  # lockf (POSIX record locks, which NFS forwards) instead
    assert mine
  monkeypatch.setattr(fcntl, "lockf", no_flock)
  with pytest.raises(LearnjaxError, match="supports neither flock nor lockf"):
    with store.claim("row"):
      pass
