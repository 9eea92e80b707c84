r"""T7: the class distribution of N1's predictions on D2, per network and data variant.

The report shows, for each N1, the percentage of D2 given to each class: networks trained on random
labels or images often collapse onto a few classes, which makes them easy to learn. The paper's
four N1s (DenseNet121, GoogLeNet, shallow CNN 1024, shallow CNN 16) on random labels, random images
and true data, CIFAR-10, 5 seeds, the full protocol. Only N1 is trained (``n2.model='none'``): a
class distribution needs no N2.

  python -m learnjax.main --config=configs/t7_class_distribution.py --workdir=/tmp/lj_runs/t7

``:smoke``: the same four networks and three variants on the embedded digits, 2 seeds, 2 epochs
(a few minutes on a CPU).

  python -m learnjax.main --config=configs/t7_class_distribution.py:smoke --workdir=/tmp/lj_runs/t7s
"""

from learnjax.config import base_config, check_arg, make_smoke

NETWORKS = "densenet121,googlenet,shallow_cnn_1024,shallow_cnn_16"


def get_config(arg=None):
  check_arg(arg)
  config = base_config()
  config.experiment = "T7"
  config.data.name = "cifar10"
  config.data.variant = "random_labels,random_images,true"
  config.n1.model = NETWORKS
  config.n2.model = "none"
  if arg == "smoke":
    make_smoke(config, max_epochs=2, sizes=(128, 128, 100))
  return config
