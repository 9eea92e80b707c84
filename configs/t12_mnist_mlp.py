r"""T12: MNIST, one-hidden-layer MLP N1 with 1..6 hidden units, N2 with 4 hidden units.

Measures how learnable tiny networks are: columns are N1's parameter count, learnability and N1's
test accuracy. D1 = first 30,000 MNIST training images, D2 = last 30,000, D3 = the 10,000 test images.

  python -m learnjax.main --config=configs/t12_mnist_mlp.py --workdir=/tmp/lj_runs/t12

With the data as a local .npz instead of tensorflow-datasets:

  python -m learnjax.main --config=configs/t12_mnist_mlp.py --workdir=/tmp/lj_runs/t12 \
      --config.data.name=npz --config.data.npz_path=mnist.npz

``:smoke`` runs the same grid on the embedded 8x8 digits with 2 seeds and 20 epochs (under a minute).
``:curve`` measures each N1's learnability curve: one N2 per size of D2's first 250, 500, ...,
30,000 examples (data.n2_size=geometric:250:30000:8), with the prequential code length of N1's
labels (``:curve,smoke``: the same on the embedded digits).
"""

from learnjax.config import base_config, check_arg, set_n2_sizes, make_smoke


def get_config(arg=None):
  check_arg(arg, ("smoke", "curve", "curve,smoke"))
  config = base_config()
  config.experiment = "T12"
  config.data.name = "mnist"
  config.data.variant = "true"
  config.n1.model = ",".join(f"mnist_mlp_{h}" for h in range(1, 7))
  config.n2.model = "mnist_mlp_4"
  if arg and "smoke" in arg:
    make_smoke(config, max_epochs=20)
  if arg and "curve" in arg:
    set_n2_sizes(config, "50,100,200,300" if "smoke" in arg else "geometric:250:30000:8")
  return config
