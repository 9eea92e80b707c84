r"""Generalisation measures over a population of MLPs (Jiang et al. 2020's protocol for learnjax).

The population is every combination of the axes of ``population.axes`` (N1's settings), each N1
trained with ``seeds`` seeds to the stop criterion (``train.stop_error``); every N1's learnability
is measured with one N2 setup (``n2.model``, trained with the config's ``train`` block whatever the
N1's settings). Each registered measure is then scored against the generalisation gap: Kendall's
tau, psi per axis and Psi, K and the robust sign error (docs/protocol.md, "Generalisation
measures over a population").

  python -m learnjax.population --config=configs/generalisation_measures.py --workdir=/tmp/lj_runs/gm

Real MNIST (tensorflow-datasets, or from an .npz file with ``--config.data.name=npz
--config.data.npz_path=PATH/mnist.npz``): ``configs/generalisation_measures.py:mnist`` (the default): 64 MLPs (depth 1, 2 x width 64,
256 x batch 32, 128 x learning rate 0.02, 0.1 x weight decay 0, 0.001 x dropout 0, 0.2), 2 seeds,
|D1| = 500, |D2| = |D3| = 1000, small enough for a CPU.
``:cifar10``: MLPs on CIFAR-10 (tfds) at full size over seven axes, for accelerators.
``:smoke``: 32 small MLPs on the embedded digits over five axes (depth, width, learning rate,
weight decay, dropout), 2 seeds.
"""

from learnjax.config import base_config, check_arg

import ml_collections


def population_block(axes: str) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict({
      # FIELD=V1,V2;FIELD=...: N1's settings; the population is every combination
      "axes": axes,
      # N1's initial and final parameters stored with it (measures added later need no
      # retraining); False: the parameter measures are computed when each N1 finishes
      "store_params": True,
      "examples": 1000,        # examples of D1 the margin and flatness measures read
      "bound": 0.1,            # training-error increase the flatness and sharpness searches allow
      "noise_samples": 5,      # noise draws per sigma (PAC-Bayes flatness)
      "search_steps": 10,      # halvings of the log-scale bisection (sigma within 1.6 %)
      "ascent_steps": 10,      # gradient-ascent steps of the sharpness search
      # several N2 sizes ('250,500,1000', the largest = data.n2_size): a learnability curve per
      # N1, giving the code length of its labels; '' measures learnability at |D2| only
      "curve": "",
  })


def get_config(arg=None):
  check_arg(arg, ("smoke", "mnist", "cifar10"))
  config = base_config()
  config.experiment = "generalisation measures"
  config.seeds = 2
  config.n1.model = "mlp"
  config.n1.width = 64
  config.n1.depth = 1
  config.n2.model = "mlp_1"          # the fixed N2 setup: MLP width 64, depth 1, batch 64
  config.checkpoint_every_epochs = 0
  # The stop criterion on all of D1 in evaluation mode after each epoch: a network with dropout
  # reaches it as the gap's training accuracy sees it (the running error carries the masks' noise).
  config.train.error_measure = "full"
  if arg == "cifar10":
    config.data.name = "cifar10"
    config.seeds = 3
    config.data.n2_size = 10000
    config.population = population_block(
        "n1.depth=1,2,3;n1.width=256,1024;n1.batch_size=32,128;train.learning_rate=0.01,0.05;"
        "train.weight_decay=0,0.0005;n1.dropout=0,0.25;data.n1_size=10000,25000")
    config.population.examples = 5000
    return config
  if arg in (None, "", "mnist"):
    config.data.name = "mnist"
    config.data.n2_size = 1000
    config.data.test_size = 1000
    config.train.max_epochs = 200
    config.train.learning_rate = 0.05   # N2's (N1's is an axis)
    config.data.n1_size = 500
    config.population = population_block(
        "n1.depth=1,2;n1.width=64,256;n1.batch_size=32,128;train.learning_rate=0.02,0.1;"
        "train.weight_decay=0,0.001;n1.dropout=0,0.2")
    return config
  # smoke: the embedded digits (1797 images: D1 <= 600, D2 500, D3 297)
  config.data.name = "digits"
  config.data.n2_size = 500
  config.data.test_size = 297
  config.train.max_epochs = 60
  config.train.stop_error = 0.02
  config.train.learning_rate = 0.05   # N2's (N1's is an axis)
  config.population = population_block(
      "n1.depth=1,2;n1.width=16,64;train.learning_rate=0.05,0.1;train.weight_decay=0,0.001;"
      "n1.dropout=0,0.2")
  config.data.n1_size = 300
  config.population.examples = 300
  return config
