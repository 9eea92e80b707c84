r"""T7: the class distribution of N1's predictions on D2, per network and data variant.

The report shows, for each N1, the percentage of D2 given to each class: networks trained on random
labels or images often collapse onto a few classes, which makes them easy to learn. CIFAR-10.

  python -m learnjax.main --config=configs/t7_class_distribution.py --workdir=/tmp/learnjax/t7

N2 is trained too (N2 = N1), so the workdir also holds the learnability behind each distribution.
``:smoke``: shallow CNN 16 and MLP depth 1 on the embedded digits, 2 seeds, 10 epochs.
"""

from learnjax.config import base_config, check_arg, make_smoke


def get_config(arg=None):
  check_arg(arg)
  config = base_config()
  config.experiment = "T7"
  config.data.name = "cifar10"
  config.data.variant = "random_labels,random_images,true"
  config.n1.model = "shallow_cnn_16,shallow_cnn_1024,vgg11,resnet18"
  config.n2.model = "same"
  if arg == "smoke":
    make_smoke(config)
    config.n1.model = "shallow_cnn_16,mlp_1"
  return config
