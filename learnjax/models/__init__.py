"""The learnjax model zoo. Importing this package registers every family of learnjax's own;
``register(name, builder)`` adds a user's Flax module (see :mod:`learnjax.models.registry`)."""

from learnjax.models import small  # noqa: F401  (registers shallow_cnn, mlp)
from learnjax.models import vgg  # noqa: F401  (registers vgg: vgg11 .. vgg19)
from learnjax.models import resnet  # noqa: F401  (registers resnet, preact_resnet)
from learnjax.models import dpn  # noqa: F401  (registers dpn: dpn26)
from learnjax.models import densenet  # noqa: F401  (registers densenet: densenet121)
from learnjax.models import googlenet  # noqa: F401  (registers googlenet)
from learnjax.models.registry import (HPARAMS, UnknownModelError, build, canonical_name,  # noqa: F401
                                      family_names, hparams_of, is_native, preset_names, register, resolve,
                                      size,
                                      uses_convolution)
