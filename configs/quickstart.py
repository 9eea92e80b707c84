r"""Quickstart: learnability on true data, random labels and random images, in about a minute.

An MLP (one hidden layer of 64 units) on the embedded 8x8 digits (750 images for D1, 750 for D2,
297 for D3), N2 = N1's architecture, 5 seeds, the full protocol (SGD 0.01, batch 64, plateau
schedule, stop below 1% training error or at 500 epochs).

  python -m learnjax.main --config=configs/quickstart.py --workdir=/tmp/lj_runs/quickstart

Variants: ``:cnn`` uses the shallow CNN with 16 filters instead (a few minutes on a CPU);
``:smoke`` draws learnability curves in about a minute of CPU time: 2 seeds, 20 epochs, one N2 per size
of D2's first 50, 100, 200 and 400 examples (data.n2_size=geometric:50:400:4), with the
prequential code length of N1's labels.
"""

from learnjax.config import base_config, check_arg, set_n2_sizes


def get_config(arg=None):
  check_arg(arg, ("cnn", "smoke"))
  config = base_config()
  config.experiment = "quickstart"
  config.data.name = "digits"
  config.data.variant = "true,random_labels,random_images"
  config.n1.model = "mlp_1"
  config.n2.model = "same"
  if arg == "cnn":
    config.n1.model = "shallow_cnn_16"
  if arg == "smoke":
    config.seeds, config.train.max_epochs = 2, 20
    config.data.n1_size, config.data.test_size = 300, 297
    set_n2_sizes(config, "geometric:50:400:4")
  return config
