r"""T12: MNIST, one-hidden-layer MLP N1 with 1..6 hidden units, N2 with 4 hidden units.

Measures how learnable tiny networks are: columns are N1's parameter count, learnability and N1's
test accuracy. D1 = first 30,000 MNIST training images, D2 = last 30,000, D3 = the 10,000 test images.

  python -m learnjax.main --config=configs/t12_mnist_mlp.py --workdir=/tmp/learnjax/t12

With the data as a local .npz instead of tensorflow-datasets:

  python -m learnjax.main --config=configs/t12_mnist_mlp.py --workdir=/tmp/learnjax/t12 \
      --config.data.name=npz --config.data.npz_path=mnist.npz

``:smoke`` runs the same grid on the embedded 8x8 digits with 2 seeds and 20 epochs (under a minute).
"""

from learnjax.config import base_config, check_arg, make_smoke


def get_config(arg=None):
  check_arg(arg)
  config = base_config()
  config.experiment = "T12"
  config.data.name = "mnist"
  config.data.variant = "true"
  config.n1.model = ",".join(f"mnist_mlp_{h}" for h in range(1, 7))
  config.n2.model = "mnist_mlp_4"
  if arg == "smoke":
    make_smoke(config, max_epochs=20)
  return config
