r"""T5: MLP depth 1..5 (width 64) on random labels, random images and true data; N2 = N1. CIFAR-10.

  python -m learnjax.main --config=configs/t5_mlp_variants.py --workdir=/tmp/learnjax/t5

``:smoke``: the same grid on the embedded digits, 2 seeds, 10 epochs.
"""

from learnjax.config import base_config, check_arg, make_smoke


def get_config(arg=None):
  check_arg(arg)
  config = base_config()
  config.experiment = "T5"
  config.data.name = "cifar10"
  config.data.variant = "random_labels,random_images,true"
  config.n1.model = ",".join(f"mlp_{d}" for d in range(1, 6))
  config.n2.model = "same"
  if arg == "smoke":
    make_smoke(config)
  return config
