"""What a user's model *is*, for the fingerprints: its parameter shapes and a digest of its definition.

A model registered outside learnjax is known to learnjax only by the name it was registered under,
and a researcher edits their module between launches. Its identity is therefore:

* its parameter shapes (``'Dense_0/kernel 64x32, ...'``) for the data's image shape, and
* a digest of its definition: the hyper-parameters the builder gave the module (its fields), the
  code of every Flax module class its init goes through (the top module and each submodule,
  flax's own and learnjax's layers excepted), and the researcher's own module-level functions,
  classes and constants those classes read by name, and those these read in turn
  (:mod:`learnjax.user_code`; those of learnjax, JAX, Flax, NumPy, Optax and the standard library
  are versioned with their package). Code is its source parsed and dumped as a syntax tree (so
  comments, docstrings, blank lines and formatting do not count, and any change of code, a default
  or a constant does); a dataclass field is its name, annotation and default; a constant its value.

learnjax's own models have no digest: their definitions are those of the learnjax release, pinned
by its tests, and a refactor that leaves their numbers equal (another form of a layer) must not
refuse stored results.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import inspect
import re
import textwrap

import flax.linen as nn
import jax
import jax.numpy as jnp

from learnjax import user_code

# Classes of these packages are versioned with the package, not digested.
_LIBRARIES = ("flax.", "learnjax.")


def param_shapes(module: nn.Module, input_shape) -> str:
  """'Dense_0/kernel 64x32, Dense_0/bias 32, ...' of ``module``'s params for (H, W, C) images."""
  shapes = jax.eval_shape(lambda x: module.init(jax.random.PRNGKey(0), x, train=False),
                          jax.ShapeDtypeStruct((1,) + tuple(input_shape), jnp.float32))
  flat = jax.tree_util.tree_flatten_with_path(shapes["params"])[0]
  return ", ".join(f"{'/'.join(_key(k) for k in path)} {'x'.join(map(str, leaf.shape)) or '1'}"
                   for path, leaf in flat)


def _key(entry) -> str:
  return str(getattr(entry, "key", getattr(entry, "name", entry)))


def module_classes(module: nn.Module, input_shape) -> list[type]:
  """Every module class ``module``'s init calls into (itself included), in first-call order."""
  seen = []

  def record(next_fun, args, kwargs, context):
    if type(context.module) not in seen:
      seen.append(type(context.module))
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(record):
    jax.eval_shape(lambda x: module.init(jax.random.PRNGKey(0), x, train=False),
                   jax.ShapeDtypeStruct((1,) + tuple(input_shape), jnp.float32))
  return seen if type(module) in seen else [type(module), *seen]


def _without_docstrings(tree: ast.AST) -> ast.AST:
  for node in ast.walk(tree):
    body = getattr(node, "body", None)
    if (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module))
        and body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)):
      node.body = body[1:] or [ast.Pass()]
  return tree


def normalised_source(function) -> str:
  """A function's code as a syntax tree dump: blind to comments, docstrings and layout."""
  try:
    source = textwrap.dedent(inspect.getsource(function))
    tree = _without_docstrings(ast.parse(source))
  except (OSError, TypeError, SyntaxError, IndentationError):
    code = getattr(function, "__code__", None)   # no source on disk: the compiled code's own
    return repr(code.co_code) + repr(code.co_consts) if code is not None else repr(function)
  return ast.dump(tree, annotate_fields=False, include_attributes=False)


def class_definition(cls: type) -> str:
  """The fields (name, annotation, default) and the methods' code of a module class."""
  parts = [cls.__qualname__]
  if dataclasses.is_dataclass(cls):
    for f in dataclasses.fields(cls):
      if f.name in ("parent", "name"):
        continue
      default = f.default if f.default is not dataclasses.MISSING else "(required)"
      parts.append(f"field {f.name}: {f.type} = {_plain_repr(default)}")
  for name, value in sorted(vars(cls).items()):
    function = getattr(value, "__func__", value)
    function = getattr(function, "__wrapped__", function)
    if inspect.isfunction(function):
      parts.append(f"def {name}: {normalised_source(function)}")
  return "\n".join(parts)


def _plain_repr(value) -> str:
  """repr without memory addresses (a function given as a field)."""
  return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(value))


def _methods(cls: type) -> list:
  functions = []
  for value in vars(cls).values():
    function = getattr(value, "__func__", value)
    function = getattr(function, "__wrapped__", function)
    if inspect.isfunction(function):
      functions.append(function)
  return functions


def helper_definitions(classes: list[type]) -> list[str]:
  """The definitions of the researcher's module-level functions, classes and constants that the
  classes' methods read by name, and those they read in turn, in first-use order; the classes
  themselves are left out (digested as classes)."""
  seen = {id(cls) for cls in classes}
  parts, queue = [], [f for cls in classes for f in _methods(cls)]
  while queue:
    function = queue.pop(0)
    for name, value in user_code.references(function):
      if inspect.isfunction(value) or inspect.isclass(value):
        if id(value) in seen:
          continue
        seen.add(id(value))
        where = value.__qualname__   # not its module's name: a renamed file is the same model
        if inspect.isclass(value):
          parts.append(f"class {where}: {class_definition(value)}")
          queue.extend(_methods(value))
        else:
          parts.append(f"def {where}: {normalised_source(value)}")
          queue.append(value)
      else:
        key = ("constant", id(function.__globals__), name)
        if key not in seen:
          seen.add(key)
          parts.append(f"constant {name} = {_plain_repr(value)}")
  return parts


def definition_digest(module: nn.Module, input_shape) -> str:
  """sha256 of the module's fields, the definitions of its own classes (not flax's or
  learnjax's) and of the researcher's helpers they read (:func:`helper_definitions`)."""
  parts = [_plain_repr(module)]
  classes = [cls for cls in module_classes(module, input_shape)
             if not cls.__module__.startswith(_LIBRARIES)]
  parts.extend(class_definition(cls) for cls in classes)
  parts.extend(helper_definitions(classes))
  return hashlib.sha256("\n\n".join(parts).encode()).hexdigest()


def identity(module: nn.Module, input_shape) -> dict:
  """{'params': shapes, 'definition': digest}: what names a user's model in a fingerprint."""
  return {"params": param_shapes(module, input_shape),
          "definition": definition_digest(module, input_shape)}

