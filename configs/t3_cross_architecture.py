r"""T3: cross-architecture learnability, N1 x N2 over the deep zoo, true data, CIFAR-10.

N1 in {DPN26, ResNet18, ResNet34, VGG11/13/16/19, GoogLeNet, DenseNet121} x N2 in {VGG11, ResNet18,
GoogLeNet, DenseNet121}. The report adds N1's parameter count, its number of parameter tensors (the
paper's "layers") and its test accuracy.

  python -m learnjax.main --config=configs/t3_cross_architecture.py --workdir=/tmp/lj_runs/t3

``:smoke``: N1 in {ResNet18, VGG11} x N2 in {VGG11, ResNet18} on the digits, 2 seeds, 2 epochs.
"""

from learnjax.config import base_config, check_arg, make_smoke


def get_config(arg=None):
  check_arg(arg)
  config = base_config()
  config.experiment = "T3"
  config.data.name = "cifar10"
  config.data.variant = "true"
  config.n1.model = "dpn26,resnet18,resnet34,vgg11,vgg13,vgg16,vgg19,googlenet,densenet121"
  config.n2.model = "vgg11,resnet18,googlenet,densenet121"
  if arg == "smoke":
    make_smoke(config, max_epochs=2, sizes=(128, 128, 100))
    config.n1.model = "resnet18,vgg11"
    config.n2.model = "vgg11,resnet18"
  return config
