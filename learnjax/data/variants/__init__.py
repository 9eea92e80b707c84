"""Data variants (docs/protocol.md section 2): a registry of entries, one per variant.

``paper`` registers the paper's variants, ``zhang`` the corruptions of Zhang et al. (2017); a new
variant is one :class:`Variant` passed to :func:`register`, from a module imported here or from
a config file. Importing this package does not import JAX.
"""

from learnjax.data.variants.registry import (LEGACY_CONSTRUCTION, Variant, find,  # noqa: F401
                                             fraction_id, get, n1_training_data, names,
                                             register)
from learnjax.data.variants import paper  # noqa: F401,E402  (true, random_labels, random_images...)
from learnjax.data.variants import zhang  # noqa: F401,E402  (partial_labels, shuffled_pixels...)
