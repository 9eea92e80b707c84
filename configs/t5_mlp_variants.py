r"""T5: MLP depth 1..5 (width 64) on random labels, random images and true data; N2 = N1. CIFAR-10.

  python -m learnjax.main --config=configs/t5_mlp_variants.py --workdir=/tmp/lj_runs/t5

``:smoke``: the same grid on the embedded digits, 2 seeds, 10 epochs.
``:curve``: each N1's learnability curve, one N2 per size of D2's first 250, 500, ..., 25,000
examples (data.n2_size=geometric:250:25000:7), with the prequential code length of N1's labels
(``:curve,smoke``: the same on the embedded digits).
"""

from learnjax.config import base_config, check_arg, set_n2_sizes, make_smoke


def get_config(arg=None):
  check_arg(arg, ("smoke", "curve", "curve,smoke"))
  config = base_config()
  config.experiment = "T5"
  config.data.name = "cifar10"
  config.data.variant = "random_labels,random_images,true"
  config.n1.model = ",".join(f"mlp_{d}" for d in range(1, 6))
  config.n2.model = "same"
  if arg and "smoke" in arg:
    make_smoke(config)
  if arg and "curve" in arg:
    set_n2_sizes(config, "50,100,200,300" if "smoke" in arg else "geometric:250:25000:7")
  return config
