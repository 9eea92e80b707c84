r"""Quickstart: learnability on true data, random labels and random images, in about a minute.

An MLP (one hidden layer of 64 units) on the embedded 8x8 digits (750 images for D1, 750 for D2,
297 for D3), N2 = N1's architecture, 5 seeds, the full protocol (SGD 0.01, batch 64, plateau
schedule, stop below 1% training error or at 500 epochs).

  python -m learnjax.main --config=configs/quickstart.py --workdir=/tmp/learnjax/quickstart

Variants: ``:cnn`` uses the shallow CNN with 16 filters instead (a few minutes on a CPU).
"""

from learnjax.config import base_config, check_arg


def get_config(arg=None):
  check_arg(arg, ("cnn",))
  config = base_config()
  config.experiment = "quickstart"
  config.data.name = "digits"
  config.data.variant = "true,random_labels,random_images"
  config.n1.model = "mlp_1"
  config.n2.model = "same"
  if arg == "cnn":
    config.n1.model = "shallow_cnn_16"
  return config
