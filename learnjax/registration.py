"""One rule for every registry a researcher's module joins: a name stands for one definition.

learnjax's registries (models, data variants, metrics, report analyses, population measures) are
asked by name, and stored results are labelled by those names. A second registration under a
taken name is therefore accepted only when it is the *same definition*: the same module and
qualified name and the same compiled code (comments, docstrings and line positions aside), with
the same settings, calling the same helpers of the researcher's own (:mod:`learnjax.user_code`). That is what happens when a module runs twice (a config file loaded again,
``importlib.reload`` of an unchanged file), and it is a no-op: the first entry stays. Anything else
(a plugin's variant named ``true``, two plugins both registering ``my_net``, an edited module
reloaded) is one :class:`DuplicateRegistration` naming the registry, the name and both
definitions' origins. This module imports no JAX.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
import types
from typing import Any, Callable

from learnjax import user_code
from learnjax.errors import LearnjaxError


class DuplicateRegistration(LearnjaxError, ValueError):
  """A registry name taken by a different definition."""


def admit(registry: str, name: str, taken: Any, entry: Any,
          origin_of: Callable[[Any], Any] = lambda e: e) -> bool:
  """Whether ``entry`` is to be added under ``name``: True when the name is free (``taken`` is
  None), False when ``taken`` is the same definition (nothing to do); otherwise raises.

  ``registry`` names the registry in the message ('model', 'data variant'); ``origin_of(entry)``
  is the function or class that says where an entry was defined.
  """
  if taken is None:
    if not user_code.is_library(origin(origin_of(entry)).partition(":")[0]):
      _REGISTERED[registry, name] = (entry, _describe(entry))
    return True
  recorded = _REGISTERED.get((registry, name))
  before = recorded[1] if recorded is not None and _is(recorded[0], taken) else _describe(taken)
  if taken is entry or before == _describe(entry):
    return False
  first, second = origin(origin_of(taken)), origin(origin_of(entry))
  if first == second:
    how = (f"{second} registers it again with a different definition (its module changed since it "
           "was first imported: start a new Python process to use the new one)")
  else:
    how = f"{second} registers a different definition under the same name"
  raise DuplicateRegistration(f"{registry} '{name}' is already registered by {first}; {how}; "
                              "give one of them another name")


# (registry, name) -> (a researcher's entry, its description when it was registered). A module run
# again shares its globals with the first run: the first entry's helpers as they were then.
_REGISTERED: dict[tuple[str, str], tuple[Any, Any]] = {}


def same_definition(a: Any, b: Any) -> bool:
  """Whether two registry entries are one definition (see the module docstring)."""
  return a is b or _describe(a) == _describe(b)


def _is(a: Any, b: Any) -> bool:
  """Whether two entries are the same objects (an entry may be a new tuple of the same parts)."""
  if isinstance(a, tuple) and isinstance(b, tuple):
    return len(a) == len(b) and all(_is(x, y) for x, y in zip(a, b))
  return a is b or (isinstance(a, dict) and a == b)


def _describe(entry: Any) -> Any:
  return _shape(entry, set())


def origin(obj: Any) -> str:
  """'module:qualname' of a function or class (of the function a partial or a wrapper holds, of
  the class of any other object)."""
  while isinstance(obj, functools.partial):
    obj = obj.func
  obj = inspect.unwrap(obj) if callable(obj) else obj
  obj = getattr(obj, "__func__", obj)   # a bound method, a classmethod
  if not (inspect.isfunction(obj) or inspect.isclass(obj) or inspect.isbuiltin(obj)):
    obj = type(obj)
  return f"{getattr(obj, '__module__', None) or '?'}:{getattr(obj, '__qualname__', repr(obj))}"


def _shape(obj: Any, active: set) -> Any:
  """A comparable, address-free description of ``obj``'s definition. ``active``: the ids being
  described (a method's ``__class__`` cell refers back to its class)."""
  if obj is None or isinstance(obj, (bool, int, str, bytes)):
    return obj
  if isinstance(obj, (float, complex)):
    return repr(obj)   # nan equals nan
  if id(obj) in active:
    return ("cycle", origin(obj))
  active = active | {id(obj)}
  if isinstance(obj, (tuple, list)):
    return (type(obj).__name__, tuple(_shape(x, active) for x in obj))
  if isinstance(obj, (set, frozenset)):
    return ("set", tuple(sorted((_shape(x, active) for x in obj), key=repr)))
  if isinstance(obj, dict):
    return ("dict", tuple(sorted(((repr(k), _shape(v, active)) for k, v in obj.items()),
                                 key=lambda kv: kv[0])))
  if isinstance(obj, functools.partial):
    return ("partial", _shape(obj.func, active), _shape(obj.args, active),
            _shape(obj.keywords, active))
  if isinstance(obj, (staticmethod, classmethod, types.MethodType)):
    return (type(obj).__name__, _shape(obj.__func__, active))
  if isinstance(obj, property):
    return ("property", _shape(obj.fget, active), _shape(obj.fset, active))
  if inspect.isfunction(obj):
    function = inspect.unwrap(obj)
    closure = tuple(_cell(c, active) for c in function.__closure__ or ())
    used = tuple((name, _shape(value, active)) for name, value in user_code.references(function))
    return ("function", origin(function), _code(function.__code__, function.__doc__),
            _shape(function.__defaults__, active), _shape(function.__kwdefaults__, active), closure,
            used)
  if inspect.isclass(obj):
    members = tuple((k, _shape(v, active)) for k, v in sorted(vars(obj).items())
                    if _is_code(v))
    fields = tuple((f.name, str(f.type), _shape(f.default, active))
                   for f in dataclasses.fields(obj)) if dataclasses.is_dataclass(obj) else ()
    return ("class", origin(obj), tuple(origin(b) for b in obj.__bases__), fields, members)
  if isinstance(obj, types.ModuleType):
    return ("module", obj.__name__)
  if dataclasses.is_dataclass(obj):
    return ("instance", origin(type(obj)),
            tuple((f.name, _shape(getattr(obj, f.name), active)) for f in dataclasses.fields(obj)))
  if inspect.isbuiltin(obj) or inspect.isroutine(obj):
    return ("builtin", origin(obj))
  return ("object", origin(type(obj)), re.sub(r" at 0x[0-9a-fA-F]+", "", repr(obj)))


def _is_code(value) -> bool:
  return (inspect.isfunction(inspect.unwrap(value) if callable(value) else value)
          or isinstance(value, (staticmethod, classmethod, property)))


def _cell(cell, active: set):
  try:
    return _shape(cell.cell_contents, active)
  except ValueError:   # an empty cell
    return ("empty",)


def _code(code: types.CodeType, doc: str | None):
  """The compiled code without its positions (line numbers) or its docstring."""
  consts = code.co_consts
  if doc is not None and consts and consts[0] == doc:
    consts = consts[1:]
  return (code.co_code, code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars,
          code.co_argcount, code.co_kwonlyargcount, code.co_flags,
          tuple(_code(c, None) if isinstance(c, types.CodeType) else _shape(c, set())
                for c in consts))
