r"""T4: shallow CNN widths on random labels, random images and true data; N2 = N1. CIFAR-10.

Learnability of the shallow CNN (5x5 conv with k filters, ReLU, 2x2 max-pool, Linear) for
k in {16, ..., 1024}, per data variant, with N2 = N1's architecture; N1's test accuracy on true data.

  python -m learnjax.main --config=configs/t4_shallow_variants.py --workdir=/tmp/lj_runs/t4

``:smoke``: widths 16 and 64 on the embedded digits, 2 seeds, 10 epochs.
"""

from learnjax.config import base_config, check_arg, make_smoke

WIDTHS = (16, 32, 64, 128, 256, 512, 1024)


def get_config(arg=None):
  check_arg(arg)
  config = base_config()
  config.experiment = "T4"
  config.data.name = "cifar10"
  config.data.variant = "random_labels,random_images,true"
  config.n1.model = ",".join(f"shallow_cnn_{k}" for k in WIDTHS)
  config.n2.model = "same"
  if arg == "smoke":
    make_smoke(config)
    config.n1.model = "shallow_cnn_16,shallow_cnn_64"
  return config
