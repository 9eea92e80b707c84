"""A registry name stands for one definition: the same one registered again is a no-op, another is
refused, through every registry a plugin joins and through the command line."""

import importlib
import os
import subprocess
import sys
import textwrap

import pytest

import learnjax.models
from learnjax import metrics, plugins, registration
from learnjax.data import variants
from learnjax.data.variants import registry as variant_registry
from learnjax.models import registry as model_registry
from learnjax.report import analyses

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PLUGIN = '''
"""A plugin with one entry in each registry."""
import flax.linen as nn
import jax.numpy as jnp

import learnjax.models
from learnjax import metrics
from learnjax.data import variants
from learnjax.report import analyses

WIDTH = 16


def hidden(x):
  return nn.relu(nn.Dense(WIDTH)(x.reshape((x.shape[0], -1))))


class {net}(nn.Module):
  """A two-layer net."""
  num_classes: int

  @nn.compact
  def __call__(self, x, train: bool = False):
    return nn.Dense(self.num_classes)(hidden(x))


learnjax.models.register("{name}", lambda num_classes: {net}(num_classes),
                         presets={{"{name}_preset": {{}}}})


def _first_label(x, y, keys, num_classes, fraction):
  return jnp.asarray(x), jnp.zeros((len(keys), len(y)), jnp.int32)


variants.register(variants.Variant(
    name="{name}_variant", title="one label", n1_data=_first_label, per_seed_images=False,
    construction="1", description="every label 0"))


@metrics.register("{name}_metric", title="N2 disagreement")
def disagreement(a):
  return 100.0 * (a["n1_preds_d3"] != a["n2_preds_d3"]).mean(-1)


@analyses.register("{name}_section", "A section", lambda ctx: True)
def _section(ctx):
  return "SECTION"
'''


@pytest.fixture
def registries(monkeypatch):
  """Copies of every registry that a test may add to without changing them for the others."""
  monkeypatch.setattr(model_registry, "_FAMILIES", dict(model_registry._FAMILIES))
  monkeypatch.setattr(model_registry, "_PRESETS", dict(model_registry._PRESETS))
  monkeypatch.setattr(variant_registry, "_VARIANTS", dict(variant_registry._VARIANTS))
  monkeypatch.setattr(metrics, "REGISTRY", dict(metrics.REGISTRY))
  monkeypatch.setattr(analyses, "REGISTRY", list(analyses.REGISTRY))


def _write(folder, module, name, net="Net"):
  text = textwrap.dedent(PLUGIN).format(name=name, net=net)
  path = folder / f"{module}.py"
  path.write_text(text)
  return path


def _import(path, monkeypatch):
  monkeypatch.syspath_prepend(str(path.parent))
  monkeypatch.delitem(sys.modules, path.stem, raising=False)
  plugins.load(str(path))
  return sys.modules[path.stem]


def test_the_same_definition_again_is_a_no_op(registries, tmp_path, monkeypatch):
  path = _write(tmp_path, "reg_plugin_same", "reg_same")
  module = _import(path, monkeypatch)
  first = model_registry._FAMILIES["reg_same"]
  assert variants.get("reg_same_variant").n1_data is module._first_label
  # The module run again (a reload, a config file loaded twice): every entry stays the first.
  module = importlib.reload(module)
  assert model_registry._FAMILIES["reg_same"] is first
  assert variants.get("reg_same_variant").n1_data is not module._first_label
  assert [a.name for a in analyses.REGISTRY].count("reg_same_section") == 1
  # So does an edit of comments, docstrings and layout only.
  path.write_text(path.read_text().replace('"""A two-layer net."""', "# two layers\n\n")
                  .replace("def hidden(x):", "def hidden(x):  # the hidden layer\n"))
  importlib.reload(module)
  assert model_registry._FAMILIES["reg_same"] is first
  learnjax.models.build("reg_same_preset", 10)


def test_an_edited_module_reloaded_is_refused_naming_it(registries, tmp_path, monkeypatch):
  path = _write(tmp_path, "reg_plugin_edit", "reg_edit")
  module = _import(path, monkeypatch)
  path.write_text(path.read_text().replace("return nn.Dense(self.num_classes)(hidden(x))",
                                           "return nn.Dense(self.num_classes)(hidden(x) * 2)"))
  with pytest.raises(registration.DuplicateRegistration,
                     match=r"model 'reg_edit' is already registered by reg_plugin_edit:<lambda>; "
                           r"reg_plugin_edit:<lambda> registers it again with a different "
                           r"definition \(its module changed"):
    importlib.reload(module)


@pytest.mark.parametrize("entry", ["model", "preset", "variant", "metric", "section"])
def test_another_definition_under_a_taken_name_is_refused(registries, tmp_path, monkeypatch,
                                                          entry):
  _import(_write(tmp_path, "reg_plugin_first", "reg_taken"), monkeypatch)
  before = (dict(model_registry._FAMILIES), dict(model_registry._PRESETS),
            dict(variant_registry._VARIANTS), dict(metrics.REGISTRY), list(analyses.REGISTRY))
  second = tmp_path / "second"
  second.mkdir()
  if entry == "model":         # another module's builder under the same model name
    path, registry, name = _write(second, "reg_plugin_second", "reg_taken", net="Other"), \
        "model", "reg_taken"
    origins = ("reg_plugin_first:<lambda>", "reg_plugin_second:<lambda>")
  else:                        # each other registry: only that entry is another module's
    path = second / "reg_plugin_second.py"
    registry, name, code = {
        "preset": ("model", "reg_taken_preset", 'learnjax.models.register("reg_other", lambda '
                   'num_classes: None, presets={"reg_taken_preset": {}})'),
        "variant": ("data variant", "reg_taken_variant", 'variants.register(variants.Variant('
                    'name="reg_taken_variant", title="t", n1_data=_first_label, '
                    'per_seed_images=False, construction="1", description="d"))'),
        "metric": ("metric", "reg_taken_metric", '@metrics.register("reg_taken_metric", '
                   'title="t")\ndef disagreement(a):\n  return 0 * a["y_d3"]'),
        "section": ("report analysis", "reg_taken_section", '@analyses.register('
                    '"reg_taken_section", "t", lambda ctx: True)\ndef _section(ctx):\n'
                    '  return "OTHER"'),
    }[entry]
    path.write_text("import learnjax.models\nfrom learnjax import metrics\nfrom learnjax.data "
                    "import variants\nfrom learnjax.report import analyses\n\n\n"
                    "def _first_label(x, y, keys, num_classes, fraction):\n  return x, y\n\n\n"
                    + code + "\n")
    origins = {"preset": ("reg_plugin_first:<lambda>", "reg_plugin_second:<lambda>"),
               "variant": ("reg_plugin_first:_first_label", "reg_plugin_second:_first_label"),
               "metric": ("reg_plugin_first:disagreement", "reg_plugin_second:disagreement"),
               "section": ("reg_plugin_first:_section", "reg_plugin_second:_section")}[entry]
  with pytest.raises(plugins.LearnjaxError) as refused:
    _import(path, monkeypatch)
  assert str(refused.value) == (
      f"plugin {path}: {registry} '{name}' is already registered by {origins[0]}; {origins[1]} "
      "registers a different definition under the same name; give one of them another name")
  # The first definitions are still those registered.
  after = (model_registry._FAMILIES, model_registry._PRESETS, variant_registry._VARIANTS,
           metrics.REGISTRY, analyses.REGISTRY)
  assert all(a == b for a, b in zip(after, before))


def test_learnjax_own_names_are_refused(registries):
  with pytest.raises(registration.DuplicateRegistration,
                     match="data variant 'true' is already registered by "
                           "learnjax.data.variants.paper:"):
    variants.register(variants.Variant(name="true", title="t", n1_data=lambda *a: a,
                                       per_seed_images=False, construction="1", description="d"))
  with pytest.raises(registration.DuplicateRegistration,
                     match="metric 'learnability' is already registered by learnjax.metrics:"):
    metrics.register("learnability", title="t")(lambda a: a)
  from learnjax.population import measures
  with pytest.raises(registration.DuplicateRegistration,
                     match="generalisation measure 'path_norm' is already registered by "
                           "learnjax.population.measures:"):
    measures.register("path_norm", title="t", source="s")(lambda net: net)
  taken = measures.REGISTRY["path_norm"]   # the same definition again: a no-op
  measures.register("path_norm", title=taken.title, source=taken.source,
                    orientation=taken.orientation, kind=taken.kind)(taken.compute)
  assert measures.REGISTRY["path_norm"] is taken
  with pytest.raises(learnjax.models.UnknownModelError, match="'mlp_1' is one of learnjax's own"):
    learnjax.models.register("mlp_1", lambda num_classes: None)
  # learnjax's own modules run again (a reload) change nothing; a preset may bear its family's name.
  families, presets = learnjax.models.family_names(), learnjax.models.preset_names()
  for module in ("learnjax.data.variants.zhang", "learnjax.models.small", "learnjax.models.googlenet"):
    importlib.reload(importlib.import_module(module))
  assert (learnjax.models.family_names(), learnjax.models.preset_names()) == (families, presets)
  assert "googlenet" in families and "googlenet" in presets
  assert learnjax.models.canonical_name("googlenet") == "googlenet"


def test_a_plugin_taking_a_taken_name_is_one_error_line_before_any_work(tmp_path):
  lab = tmp_path / "lab"
  lab.mkdir()
  _write(lab, "first_lab_plugin", "my_net")
  _write(lab, "second_lab_plugin", "my_net", net="MyNet")
  workdir = tmp_path / "wd"
  env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
  run = subprocess.run(
      [sys.executable, "-m", "learnjax.main", f"--config={ROOT}/configs/quickstart.py",
       f"--workdir={workdir}", "--config.plugins=first_lab_plugin.py,second_lab_plugin.py",
       "--config.n1.model=my_net"], cwd=lab, env=env, capture_output=True, text=True, timeout=300)
  assert run.returncode == 2, run.stderr[-3000:]
  assert run.stderr.splitlines() == [
      "error: plugin second_lab_plugin.py: model 'my_net' is already registered by "
      "first_lab_plugin:<lambda>; second_lab_plugin:<lambda> registers a different definition "
      "under the same name; give one of them another name"]
  assert not workdir.exists()
