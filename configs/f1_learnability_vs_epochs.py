r"""F1: learnability and test error of N1 against its training epochs, shallow CNNs, CIFAR-10.

N1 keeps its predictions after each epoch in ``n1.snapshot_epochs``; an N2 (same architecture) is
trained on each snapshot's labels, so the report can plot learnability and N1's test error along
N1's training.

  python -m learnjax.main --config=configs/f1_learnability_vs_epochs.py --workdir=/tmp/lj_runs/f1

``:smoke``: shallow CNN 16 on the embedded digits, snapshots at epochs 1, 2, 5, 2 seeds, 10 epochs.
"""

from learnjax.config import base_config, check_arg, make_smoke


def get_config(arg=None):
  check_arg(arg)
  config = base_config()
  config.experiment = "F1"
  config.data.name = "cifar10"
  config.data.variant = "true"
  config.n1.model = "shallow_cnn_16,shallow_cnn_256,shallow_cnn_1024"
  config.n1.snapshot_epochs = "1,2,5,10,20,50,100,200"
  config.n2.model = "same"
  if arg == "smoke":
    make_smoke(config)
    config.n1.model = "shallow_cnn_16"
    config.n1.snapshot_epochs = "1,2,5"
  return config
