r"""T13: MLP depth grid, N1 depth x N2 depth over 1..5 (width 64), true data, CIFAR-10.

  python -m learnjax.main --config=configs/t13_mlp_depth_grid.py --workdir=/tmp/lj_runs/t13

``:smoke``: the same 5 x 5 grid on the embedded digits, 2 seeds, 10 epochs.
"""

from learnjax.config import base_config, check_arg, make_smoke


def get_config(arg=None):
  check_arg(arg)
  config = base_config()
  config.experiment = "T13"
  config.data.name = "cifar10"
  config.data.variant = "true"
  config.n1.model = ",".join(f"mlp_{d}" for d in range(1, 6))
  config.n2.model = config.n1.model
  if arg == "smoke":
    make_smoke(config)
  return config
