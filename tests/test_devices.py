"""Seeds spread over several devices give the same results as on one (4 CPU devices)."""

import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = textwrap.dedent("""
    import jax, numpy as np, ml_collections
    from learnjax import engine, models, training
    from learnjax.data import sources, splits
    assert jax.local_device_count() == 4, jax.local_devices()
    pool = sources.load_pool(ml_collections.ConfigDict({"name": "digits"}))
    sp = splits.make_splits(pool, 200, 200, 100)
    cfg = engine.TrainConfig(max_epochs=3)
    for model, variant, layout in (("mlp_1", "random_images", "vmap"),
                                   ("shallow_cnn_16", "true", "vmap"),
                                   ("shallow_cnn_16", "true", "sequential")):
      out = {}
      for devices in (1, 4):
        trainer = engine.Trainer(models.build(model, 10), cfg)
        n1 = training.train_n1(sp, trainer, variant, 0, np.arange(4), seed_layout=layout,
                               devices=devices)
        n2 = training.train_n2(sp, trainer, n1.preds_d2, 0, np.arange(4), seed_layout=layout,
                               devices=devices)
        out[devices] = (n1, n2)
      (a1, a2), (b1, b2) = out[1], out[4]
      np.testing.assert_array_equal(a1.preds_d2, b1.preds_d2)
      np.testing.assert_array_equal(a1.preds_d3, b1.preds_d3)
      np.testing.assert_array_equal(a2.preds_d3, b2.preds_d3)
      np.testing.assert_allclose(a1.history["train_error"], b1.history["train_error"])
      print("same", model, variant, layout)
    # A seed count the devices cannot divide, asked for explicitly, is refused clearly.
    from learnjax.errors import LearnjaxError
    try:
      training.train_n1(sp, engine.Trainer(models.build("mlp_1", 10), cfg), "true", 0,
                        np.arange(5), seed_layout="vmap", devices=4)
    except LearnjaxError as e:
      print("refused:", e)
""")


@pytest.mark.slow
def test_four_devices_match_one():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True,
                        text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.count("same") == 3
  assert "refused: 5 seeds cannot be split evenly over 4 devices" in proc.stdout
