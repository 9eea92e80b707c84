r"""T1: deep networks on random labels, random images and true data; N2 = N1's architecture.

Learnability of VGG11/13/16/19, ResNet18/34, PreActResNet18, DPN26, DenseNet121 and GoogLeNet per data
variant, and N1's test accuracy on true data. CIFAR-10, 5 seeds, the full protocol.

  python -m learnjax.main --config=configs/t1_deep_variants.py --workdir=/tmp/lj_runs/t1

``:smoke``: VGG11 and ResNet18 only, on the embedded digits, 2 seeds, 2 epochs (a few minutes on a CPU).
"""

from learnjax.config import base_config, check_arg, make_smoke

DEEP = "vgg11,vgg13,vgg16,vgg19,resnet18,resnet34,preact_resnet18,dpn26,densenet121,googlenet"


def get_config(arg=None):
  check_arg(arg)
  config = base_config()
  config.experiment = "T1"
  config.data.name = "cifar10"
  config.data.variant = "random_labels,random_images,true"
  config.n1.model = DEEP
  config.n2.model = "same"
  if arg == "smoke":
    make_smoke(config, max_epochs=2, sizes=(128, 128, 100))
    config.n1.model = "vgg11,resnet18"
  return config
