"""Which code is a researcher's own: what a definition's identity follows beyond itself.

A registered definition (:mod:`learnjax.registration`) and a user's model (its fingerprint,
:mod:`learnjax.models.identity`) are identified by their code, and that code calls module-level
helpers and reads module-level constants by name. Those defined in the researcher's own modules
belong to the definition; those of learnjax, its libraries (JAX, Flax, NumPy, Optax) and the
standard library are versioned with their package. This module imports no JAX.
"""

from __future__ import annotations

import dis
import inspect
import sys
import types

# Packages whose objects are versioned with the package, not followed (the standard library too).
LIBRARIES = frozenset({"learnjax", "jax", "jaxlib", "flax", "numpy", "optax", "builtins"})
_PLAIN = (type(None), bool, int, float, complex, str, bytes)
_LOADS = frozenset({"LOAD_GLOBAL", "LOAD_NAME"})


def is_library(module_name: str | None) -> bool:
  """Whether a module (by its name) is learnjax's, one of its libraries' or the standard
  library's; ``__main__`` and anything else is the researcher's."""
  top = (module_name or "").partition(".")[0]
  return top in LIBRARIES or (top in sys.stdlib_module_names and top != "__main__")


def is_constant(value) -> bool:
  """A plain value (number, string, None) or a tuple, list, set or dict of plain values."""
  if isinstance(value, _PLAIN):
    return True
  if isinstance(value, (tuple, list, set, frozenset)):
    return all(is_constant(v) for v in value)
  if isinstance(value, dict):
    return all(is_constant(k) and is_constant(v) for k, v in value.items())
  return False


def is_user_definition(value) -> bool:
  """A function or class defined in a researcher's module (not a library's)."""
  return ((inspect.isfunction(value) or inspect.isclass(value))
          and not is_library(getattr(value, "__module__", None)))


def global_names(code: types.CodeType) -> list[str]:
  """The names ``code`` (and the code nested in it: comprehensions, lambdas, inner functions)
  loads from its module's globals, in first-use order."""
  names = []
  for instruction in dis.get_instructions(code):
    if instruction.opname in _LOADS and instruction.argval not in names:
      names.append(instruction.argval)
  for const in code.co_consts:
    if isinstance(const, types.CodeType):
      names.extend(n for n in global_names(const) if n not in names)
  return names


def references(function) -> list[tuple[str, object]]:
  """(name, value) of the module-level objects ``function`` reads by name that are the
  researcher's own: functions and classes of their modules, and constants of the function's
  module. Modules and library objects are left out."""
  function = inspect.unwrap(function)
  code = getattr(function, "__code__", None)
  namespace = getattr(function, "__globals__", None)
  if code is None or namespace is None:
    return []
  found = []
  for name in global_names(code):
    if name in namespace:
      value = namespace[name]
      if is_user_definition(value) or is_constant(value):
        found.append((name, value))
  return found
