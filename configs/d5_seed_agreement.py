r"""D5: how much independently trained seeds of one network agree with each other.

For each N1 the report shows the k x k matrix of the percentage of D3 on which seed i's and seed
j's predictions agree, and the histogram of the number of distinct predictions the k seeds make per
test example. Only N1 is trained (``n2.model='none'``). Shallow CNN 1024 and VGG11, true data,
CIFAR-10, 5 seeds.

  python -m learnjax.main --config=configs/d5_seed_agreement.py --workdir=/tmp/lj_runs/d5

``:smoke``: shallow CNN 16 and MLP depth 1 on the embedded digits, 3 seeds, 10 epochs.
"""

from learnjax.config import base_config, check_arg, make_smoke


def get_config(arg=None):
  check_arg(arg)
  config = base_config()
  config.experiment = "D5"
  config.data.name = "cifar10"
  config.data.variant = "true"
  config.n1.model = "shallow_cnn_1024,vgg11"
  config.n2.model = "none"
  if arg == "smoke":
    make_smoke(config, seeds=3)
    config.n1.model = "shallow_cnn_16,mlp_1"
  return config
