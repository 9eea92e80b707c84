r"""Zhang et al. (2017) corruptions: learnability as D1 is corrupted step by step. CIFAR-10.

True data, partial labels at fractions 0.2 ... 0.8, random labels, shuffled pixels, Gaussian and
random images (docs/protocol.md section 2), for the shallow CNN with 16 filters and the one-layer
MLP, N2 = N1, 5 seeds, the full protocol. The fractions are one grid axis: a dose-response over
other fractions is ``--config.data.corrupt_fraction=0,0.1,0.5,0.9,1``.

  python -m learnjax.main --config=configs/zhang_corruptions.py --workdir=/tmp/lj_runs/zhang

``:smoke``: the same grid on the embedded digits, 2 seeds, 10 epochs.
"""

from learnjax.config import base_config, check_arg, make_smoke


def get_config(arg=None):
  check_arg(arg)
  config = base_config()
  config.experiment = "zhang_corruptions"
  config.data.name = "cifar10"
  config.data.variant = ("true,partial_labels,random_labels,shuffled_pixels,gaussian,"
                         "random_images")
  config.data.corrupt_fraction = "0.2,0.4,0.6,0.8"
  config.n1.model = "shallow_cnn_16,mlp_1"
  config.n2.model = "same"
  if arg == "smoke":
    make_smoke(config)
  return config
