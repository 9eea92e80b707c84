r"""T8-T11: for one (N1, N2) pair, the 2x2 table of [N1 correct on D3] x [N2 agrees with N1].

In percent of D3, mean over seeds: does N2 copy N1 where N1 is right more than where it is wrong?
The argument picks the pair (N2 = N1's architecture), true data, CIFAR-10:

  :shallow (T8, shallow CNN 1024)  :vgg (T9, VGG11)  :resnet (T10, ResNet18)  :mlp (T11, MLP depth 5)

  python -m learnjax.main --config=configs/t8_t11_correct_vs_agree.py:vgg --workdir=/tmp/learnjax/t9

``:smoke``: shallow CNN 16 and MLP depth 1 on the embedded digits, 2 seeds, 10 epochs.
"""

from learnjax.config import base_config, check_arg, make_smoke

PAIRS = {"shallow": ("T8", "shallow_cnn_1024"), "vgg": ("T9", "vgg11"),
         "resnet": ("T10", "resnet18"), "mlp": ("T11", "mlp_5")}


def get_config(arg="shallow"):
  check_arg(arg, ("smoke",) + tuple(PAIRS))
  config = base_config()
  experiment, model = PAIRS.get(arg or "shallow", ("T8-T11", ""))
  config.experiment = experiment
  config.data.name = "cifar10"
  config.data.variant = "true"
  config.n1.model = model
  config.n2.model = "same"
  if arg == "smoke":
    make_smoke(config)
    config.n1.model = "shallow_cnn_16,mlp_1"
  return config
