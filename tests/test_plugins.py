"""A researcher's module outside the package, named by config.plugins: its model, variant, metric
and report section reach the command line, the report (without being named again) and the API."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from learnjax import plugins
from learnjax.errors import LearnjaxError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PLUGIN = '''
"""A researcher's own model, data variant, metric and report section."""
import flax.linen as nn
import numpy as np

import learnjax.models
from learnjax import metrics
from learnjax.data import variants
from learnjax.report import analyses


class TinyNet(nn.Module):
  num_classes: int

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = nn.relu(nn.Dense(16)(x.reshape((x.shape[0], -1))))
    return nn.Dense(self.num_classes)(x)


learnjax.models.register("tiny_net", TinyNet)


def _shifted(x, y, keys, num_classes, fraction):
  import jax.numpy as jnp
  labels = (jnp.asarray(y, jnp.int32) + 1) % num_classes
  return jnp.asarray(x), jnp.broadcast_to(labels, (len(keys), len(y)))


variants.register(variants.Variant(
    name="shifted_labels", title="labels shifted by one", n1_data=_shifted,
    per_seed_images=False, construction="1", description="each label replaced by the next class",
    order=5))


@metrics.register("n2_disagreement", title="N2 disagreement", console=True)
def n2_disagreement(a):
  """100 - learnability: the share of D3 on which N2 differs from N1."""
  return 100.0 * (a["n1_preds_d3"] != a["n2_preds_d3"]).mean(-1)


@analyses.register("plugin_section", "A section of the researcher's own", lambda ctx: True,
                   order=1)
def _section(ctx):
  return f"PLUGIN SECTION: {len(ctx.cells)} cells"
'''

ENV = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _run(args, cwd):
  return subprocess.run([sys.executable, *args], cwd=cwd, env=ENV, capture_output=True,
                        text=True, timeout=600)


def test_specs_and_an_unimportable_plugin_is_one_error(tmp_path):
  assert plugins.specs(" a.py, pkg.mod ,a.py,") == ["a.py", "pkg.mod"]
  with pytest.raises(LearnjaxError, match="no such file"):
    plugins.load(str(tmp_path / "missing.py"))
  with pytest.raises(LearnjaxError, match="no module named 'no_such_pkg_xyz'"):
    plugins.load("no_such_pkg_xyz.sub")
  broken = tmp_path / "broken_plugin_xyz.py"
  broken.write_text("raise RuntimeError('bad\\nthing')\n")
  with pytest.raises(LearnjaxError, match="broken_plugin_xyz.py failed while importing: "
                                          "RuntimeError: bad thing"):
    plugins.load(str(broken))


@pytest.mark.slow
def test_a_plugin_reaches_main_report_and_api(tmp_path):
  code = tmp_path / "lab"
  code.mkdir()
  (code / "my_plugin.py").write_text(textwrap.dedent(PLUGIN))
  elsewhere = tmp_path / "elsewhere"   # the report and the API run from another folder
  elsewhere.mkdir()
  workdir = tmp_path / "wd"
  common = ["--config.data.n1_size=200", "--config.data.n2_size=200", "--config.data.test_size=100",
            "--config.seeds=2", "--config.train.max_epochs=3"]
  run = _run(["-m", "learnjax.main", f"--config={ROOT}/configs/quickstart.py",
              f"--workdir={workdir}", "--config.plugins=my_plugin.py",
              "--config.data.variant=true,shifted_labels", "--config.n1.model=tiny_net",
              "--config.n2.model=mlp_1", *common], cwd=code)
  assert run.returncode == 0, run.stderr[-3000:]
  # The console table has the plugin's metric column and variant.
  assert "N2 disagreement %" in run.stdout and "shifted_labels" in run.stdout
  summary = json.loads((workdir / "results.json").read_text())["cells"]
  assert {c["variant"] for c in summary} == {"true", "shifted_labels"}
  for c in summary:
    learn, dis = c["learnability"]["per_seed"], c["n2_disagreement"]["per_seed"]
    assert [round(a + b, 6) for a, b in zip(learn, dis)] == [100.0, 100.0]
  record = json.loads((workdir / "plugins.json").read_text())["plugins"]
  assert record[0]["module"] == "my_plugin" and record[0]["file"] == str(code / "my_plugin.py")

  report = _run(["-m", "learnjax.report", f"--workdir={workdir}"], cwd=elsewhere)
  assert report.returncode == 0, report.stderr[-3000:]
  text = (workdir / "report" / "report.md").read_text()
  assert "PLUGIN SECTION: 2 cells" in text
  assert "N2 disagreement %" in text and "labels shifted by one" in text

  # The API: learnability() and run() import the plugin named in the config.
  api = _run(["-c", textwrap.dedent(f"""
      import json, learnjax
      r = learnjax.learnability("tiny_net", n2="mlp_1", seeds=2, n1_size=200, n2_size=200,
                                test_size=100, progress=None,
                                config={{"plugins": {str(code / "my_plugin.py")!r},
                                         "data.variant": "shifted_labels",
                                         "train.max_epochs": 3}})
      print(json.dumps(sorted(r.metrics)))
      """)], cwd=elsewhere)
  assert api.returncode == 0, api.stderr[-3000:]
  assert "n2_disagreement" in json.loads(api.stdout.strip().splitlines()[-1])

  # A plugin that cannot be imported: one error line, exit 2, before anything runs.
  bad = _run(["-m", "learnjax.main", f"--config={ROOT}/configs/quickstart.py",
              f"--workdir={tmp_path / 'wd2'}", "--config.plugins=nowhere/missing_plugin.py",
              *common], cwd=elsewhere)
  assert bad.returncode == 2 and bad.stderr.startswith("error: plugin nowhere/missing_plugin.py")
  assert len(bad.stderr.strip().splitlines()) == 1 and not (tmp_path / "wd2").exists()


@pytest.mark.parametrize("fixture", ["workdir_legacy", "workdir_fingerprinted"])
def test_a_stored_workdir_resumes_with_plugins_and_reports_them(tmp_path, fixture, monkeypatch):
  """config.plugins is not a protocol setting: a workdir stored without it resumes, training
  nothing, and records the plugin for its report."""
  import shutil

  from learnjax import sweep
  from learnjax.report.document import build_report
  from test_guard import FIXTURES, fixture_config

  from learnjax.report import analyses
  monkeypatch.setattr(analyses, "REGISTRY", list(analyses.REGISTRY))   # other tests keep theirs
  plugin = tmp_path / f"section_plugin_{fixture}.py"
  plugin.write_text(textwrap.dedent(f'''
      from learnjax.report import analyses
      analyses.register("{fixture}_section", "Fixture plugin", lambda ctx: True)(
          lambda ctx: "FIXTURE PLUGIN SECTION")
      '''))
  workdir = str(tmp_path / "w")
  shutil.copytree(os.path.join(FIXTURES, fixture), workdir)
  lines = []
  cells = sweep.train_and_evaluate(fixture_config(plugins=str(plugin)), workdir, out=lines.append)
  assert len(cells) == 2 and not [line for line in lines if ": training" in line]
  assert plugins.recorded(workdir)[0]["file"] == str(plugin)
  text = build_report(workdir)[0]
  assert "FIXTURE PLUGIN SECTION" in text and f"`section_plugin_{fixture}` ({plugin})" in text
