"""The learnjax model zoo. Importing this package registers every family."""

from learnjax.models import small  # noqa: F401  (registers shallow_cnn, mlp)
from learnjax.models.registry import (UnknownModelError, build, canonical_name,  # noqa: F401
                                      family_names, preset_names, resolve, size)
