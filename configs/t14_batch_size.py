r"""T14: N1's batch size in {32, 64, 128, 256} for deep networks; N2 = VGG11 at batch 64. CIFAR-10.

N1 in {VGG11/13/16/19, ResNet18, DenseNet121, GoogLeNet}, true data. A cell that runs out of
accelerator memory is recorded as such and the sweep goes on.

  python -m learnjax.main --config=configs/t14_batch_size.py --workdir=/tmp/lj_runs/t14

``:smoke``: N1 = VGG11 at batch 32 and 64 on the embedded digits, 2 seeds, 2 epochs.
"""

from learnjax.config import base_config, check_arg, make_smoke


def get_config(arg=None):
  check_arg(arg)
  config = base_config()
  config.experiment = "T14"
  config.data.name = "cifar10"
  config.data.variant = "true"
  config.n1.model = "vgg11,vgg13,vgg16,vgg19,resnet18,densenet121,googlenet"
  with config.n1.ignore_type():  # a comma-separated list of batch sizes, swept
    config.n1.batch_size = "32,64,128,256"
  config.n2.model = "vgg11"
  config.n2.batch_size = 64
  if arg == "smoke":
    make_smoke(config, max_epochs=2, sizes=(128, 128, 100))
    config.n1.model = "vgg11"
    config.n1.batch_size = "32,64"
  return config
