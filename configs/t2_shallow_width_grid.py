r"""T2: shallow CNN width grid, N1 width x N2 width over {16, ..., 1024}^2, true data, CIFAR-10.

Each N1 is trained once per seed and learnt by all seven N2 widths (7 N1 and 49 N2 trainings per
seed). The report adds each N1's parameter count and test accuracy.

  python -m learnjax.main --config=configs/t2_shallow_width_grid.py --workdir=/tmp/lj_runs/t2

``:smoke``: widths 16 and 32 on the embedded digits, 2 seeds, 10 epochs.
"""

from learnjax.config import base_config, check_arg, make_smoke

WIDTHS = (16, 32, 64, 128, 256, 512, 1024)


def get_config(arg=None):
  check_arg(arg)
  config = base_config()
  config.experiment = "T2"
  config.data.name = "cifar10"
  config.data.variant = "true"
  config.n1.model = ",".join(f"shallow_cnn_{k}" for k in WIDTHS)
  config.n2.model = config.n1.model
  if arg == "smoke":
    make_smoke(config)
    config.n1.model = config.n2.model = "shallow_cnn_16,shallow_cnn_32"
  return config
