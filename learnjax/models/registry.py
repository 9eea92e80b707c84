"""The model registry: families of Flax modules and the named presets users select.

A *family* is a builder of Flax modules with hyper-parameters (``width``, ``depth``...); a
*preset* is a registry name (``resnet18``, ``shallow_cnn_256``, ``mlp_3``...) bound to a family
and fixed hyper-parameters. A user's model is one call, from any code the run imports (a config
file, say)::

    learnjax.models.register("my_net", lambda num_classes: MyNet(num_classes))

``builder(num_classes, **hparams)`` returns any ``flax.linen.Module`` that maps NHWC float images
to logits; learnjax asks nothing else of it. If its ``__call__`` takes ``train``, it is called
with ``train=True`` while training and ``train=False`` when predicting; otherwise it is called on
the images alone. In training, every variable collection its init makes besides ``params``
(BatchNorm's ``batch_stats``, any of its own) is updated, and the random numbers it asks for
(``self.make_rng('dropout')``, as ``nn.Dropout`` does, or any other stream) come from the seed's
own key, the epoch and the step (:mod:`learnjax.engine`); predictions draw none. learnjax's own
families register through :func:`register_native`, whose builders also take the compute
``dtype`` and ``forms`` (the CPU's equivalent layer forms, an internal choice of learnjax's
layers), and may take *optional* hyper-parameters (``dropout``) whose neutral value is the
model without them.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable

import flax.linen as nn

from learnjax import registration
from learnjax.errors import LearnjaxError
from learnjax.models import layers


class UnknownModelError(LearnjaxError, ValueError):
  """Raised for a model name or hyper-parameter the registry cannot build."""


@dataclasses.dataclass(frozen=True)
class Family:
  name: str
  builder: Callable[..., nn.Module]
  hparams: tuple[str, ...]   # the hyper-parameters a family name needs from the config
  native: bool = False       # learnjax's own: the builder also takes dtype and forms
  optional: tuple[str, ...] = ()   # hyper-parameters its presets take too (0: left out)


_FAMILIES: dict[str, Family] = {}
_PRESETS: dict[str, tuple[str, dict[str, Any]]] = {}


def register(name: str, builder: Callable[..., nn.Module], hparams: tuple[str, ...] = (),
             presets: dict[str, dict[str, Any]] | None = None) -> None:
  """Registers a model: ``builder(num_classes, **hparams)`` returns a Flax module.

  ``name`` is selectable as ``n1.model`` / ``n2.model`` (with ``n1.width`` / ``n1.depth`` /
  ``n1.dropout`` for the ``hparams`` it declares, among :data:`HPARAMS`); ``presets`` binds further
  names to fixed hyper-parameters. Registering the same definition again (a config file loaded
  twice) changes nothing; a name taken by another definition, learnjax's own names included, is
  refused (:mod:`learnjax.registration`): stored results are labelled by the model's name.
  """
  for taken in (name, *(presets or {})):
    entry = _entry(taken)
    if entry is not None and entry[-1].native:
      raise UnknownModelError(f"model name '{taken}' is one of learnjax's own "
                              f"({registration.origin(entry[-1].builder)}); choose another")
  unknown = [h for h in hparams if h not in HPARAMS]
  if unknown:
    raise UnknownModelError(f"model '{name}': hyper-parameters can be {', '.join(HPARAMS)} "
                            f"(config fields n1.width, n1.depth...), got {', '.join(unknown)}")
  _add(Family(name, builder, tuple(hparams)), presets)


def register_native(family: str, builder: Callable[..., nn.Module], hparams: tuple[str, ...] = (),
                    presets: dict[str, dict[str, Any]] | None = None,
                    optional: tuple[str, ...] = ()) -> None:
  """Registers one of learnjax's own families: ``builder(num_classes, dtype, forms, **hparams)``.
  ``optional``: rates (``dropout``) the family and its presets take when given and not 0."""
  _add(Family(family, builder, tuple(hparams), native=True, optional=tuple(optional)), presets)


# The hyper-parameters a config can give (n1.width, n1.depth, n1.dropout).
HPARAMS = ("width", "depth", "dropout")
RATES = ("dropout",)   # those that are rates in [0, 1) rather than positive integers


def _add(family: Family, presets) -> None:
  """Adds a family and its presets, after checking every name they take (all or none added). A
  preset may bear its family's name (``googlenet``): the name then means the preset."""
  entries = {family.name: ("family", family)}
  entries.update({name: ("preset", dict(kwargs), family) for name, kwargs in (presets or {}).items()})
  new = [name for name, entry in entries.items()
         if registration.admit("model", name, _entry(name), entry, lambda e: e[-1].builder)]
  _FAMILIES.setdefault(family.name, family)
  for name in new:
    if entries[name][0] == "preset":
      _PRESETS[name] = (family.name, entries[name][1])


def _entry(name: str):
  """What ``name`` stands for, as :func:`resolve` reads it (a preset first) and :func:`_add`
  compares it: ('family', Family) or ('preset', hyper-parameters, Family); None if free."""
  if name in _PRESETS:
    family, kwargs = _PRESETS[name]
    return ("preset", kwargs, _FAMILIES[family])
  return ("family", _FAMILIES[name]) if name in _FAMILIES else None


def preset_names() -> list[str]:
  """Every preset name, in registration order."""
  return list(_PRESETS)


def is_native(name: str) -> bool:
  """Whether model ``name`` (a preset or family) is one of learnjax's own."""
  family = _PRESETS[name][0] if name in _PRESETS else name
  return family in _FAMILIES and _FAMILIES[family].native


def family_names() -> list[str]:
  return list(_FAMILIES)


def hparams_of(name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
  """(the hyper-parameters model ``name`` takes, those that must be given): a preset takes only
  those it fixes (and needs none), a family needs every one it declares."""
  if name in _PRESETS:
    return tuple(_PRESETS[name][1]) + _FAMILIES[_PRESETS[name][0]].optional, ()
  if name in _FAMILIES:
    return _FAMILIES[name].hparams + _FAMILIES[name].optional, _FAMILIES[name].hparams
  resolve(name)  # raises: unknown model
  return (), ()


def resolve(name: str, **hparams) -> tuple[str, dict[str, Any]]:
  """(family, hyper-parameters) for a preset name, or a family name plus its hyper-parameters.

  ``hparams`` set to None are ignored, and so is an optional one (``dropout``) at 0; a preset
  given a conflicting hyper-parameter is an error.
  """
  given = {k: v for k, v in hparams.items() if v is not None}
  if name in _PRESETS:
    family, kwargs = _PRESETS[name]
    for key, value in given.items():
      if key in kwargs and kwargs[key] != value:
        raise UnknownModelError(
            f"model '{name}' fixes {key}={kwargs[key]}, but {key}={value} was given; "
            f"use the family name '{family}' with {key}={value} instead")
    return family, {**kwargs, **_optional(name, _FAMILIES[family], given)}
  if name in _FAMILIES:
    family = _FAMILIES[name]
    missing = [h for h in family.hparams if h not in given]
    if missing:
      raise UnknownModelError(f"model '{name}' needs {', '.join(missing)} to be set "
                              f"(e.g. --config.n1.{missing[0]}=...)")
    kwargs = {h: given[h] for h in family.hparams}
    for key, value in kwargs.items():
      if key in RATES:
        _check_rate(name, key, value)
      elif not isinstance(value, int) or value < 1:
        raise UnknownModelError(f"model '{name}': {key} must be a positive integer, got {value!r}")
    return name, {**kwargs, **_optional(name, family, given)}
  raise UnknownModelError(
      f"unknown model '{name}'; known models: {', '.join(preset_names())} "
      f"(families: {', '.join(family_names())}); `python -m learnjax.models` lists them")


def _check_rate(name: str, key: str, value) -> None:
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
    raise UnknownModelError(f"model '{name}': {key} must be a rate in [0, 1), got {value!r}")


def _optional(name: str, family: Family, given: dict) -> dict:
  """The optional hyper-parameters given to ``family`` away from their neutral 0."""
  chosen = {}
  for key in family.optional:
    if key in given:
      _check_rate(name, key, given[key])
      if given[key]:
        chosen[key] = float(given[key])
  return chosen


def build(name: str, num_classes: int, dtype=None, forms: str | None = None,
          **hparams) -> nn.Module:
  """The Flax module for a registry name (preset or family) with ``num_classes`` outputs.

  ``forms``: 'cpu' (the equivalent forms XLA's CPU backend runs faster) or 'accelerator' (the
  plain ones); by default those of the default backend (:func:`layers.default_forms`).
  """
  family, kwargs = resolve(name, **hparams)
  if not isinstance(num_classes, int) or num_classes < 2:
    raise UnknownModelError(f"num_classes must be an integer >= 2, got {num_classes!r}")
  forms = layers.default_forms() if forms is None else forms
  if forms not in layers.FORMS:
    raise UnknownModelError(f"forms must be one of {', '.join(layers.FORMS)}, got {forms!r}")
  entry = _FAMILIES[family]
  if entry.native:
    return entry.builder(num_classes=num_classes, dtype=dtype, forms=forms, **kwargs)
  return _user_module(name, entry.builder, num_classes, kwargs)


def _user_module(name: str, builder, num_classes: int, kwargs: dict) -> nn.Module:
  """A user's builder called with the number of classes (by name where it has that parameter)."""
  try:
    takes_name = "num_classes" in inspect.signature(builder).parameters
  except (TypeError, ValueError):   # a builtin or C callable: positional
    takes_name = False
  try:
    module = builder(num_classes=num_classes, **kwargs) if takes_name else builder(num_classes,
                                                                                 **kwargs)
  except Exception as e:  # noqa: BLE001  the user's code: one line naming the model
    raise UnknownModelError(f"model '{name}': its builder failed: {type(e).__name__}: {e}") from None
  if not isinstance(module, nn.Module):
    raise UnknownModelError(f"model '{name}': its builder returned {type(module).__name__}, not a "
                            "flax.linen.Module")
  return module if _takes_train(module) else _IgnoresTrain(module)


def _takes_train(module: nn.Module) -> bool:
  try:
    parameters = inspect.signature(module.__call__).parameters
  except (TypeError, ValueError):
    return False
  return "train" in parameters or any(p.kind == p.VAR_KEYWORD for p in parameters.values())


class _IgnoresTrain(nn.Module):
  """A module whose ``__call__`` has no ``train`` flag, called as learnjax calls every model."""
  inner: nn.Module

  def __call__(self, x, train: bool = False):
    del train
    return self.inner(x)


def canonical_name(name: str, **hparams) -> str:
  """A short, stable name for a model choice: the preset name, or family plus hparams, then the
  optional ones away from 0 (``mlp_1_dropout0.5``); at 0 the name is the model's without them."""
  family, kwargs = resolve(name, **hparams)
  optional = {k: kwargs.pop(k) for k in _FAMILIES[family].optional if k in kwargs}
  suffix = "".join(f"_{k}{v:g}" for k, v in sorted(optional.items()))
  if name in _PRESETS:
    return name + suffix
  for preset, (fam, kw) in _PRESETS.items():
    if fam == family and kw == kwargs:
      return preset + suffix
  return family + "".join(f"_{k}{v}" for k, v in sorted(kwargs.items())) + suffix


@dataclasses.dataclass(frozen=True)
class Size:
  params: int          # trainable parameters
  tensors: int         # parameter tensors (the paper's "layers")
  batch_stats: int     # BatchNorm running-statistic elements


def size(model: nn.Module, input_shape: tuple[int, ...]) -> Size:
  """Parameter counts of a model for one input shape (H, W, C), without computing anything."""
  import jax
  import jax.numpy as jnp
  import numpy as np
  shapes = jax.eval_shape(lambda x: model.init(jax.random.PRNGKey(0), x, train=False),
                          jax.ShapeDtypeStruct((1,) + tuple(input_shape), jnp.float32))
  count = lambda tree: int(sum(np.prod(leaf.shape) for leaf in jax.tree.leaves(tree)))
  return Size(params=count(shapes["params"]), tensors=len(jax.tree.leaves(shapes["params"])),
              batch_stats=count(shapes.get("batch_stats", {})))


def uses_convolution(model: nn.Module, variables, x_example) -> bool:
  """Whether the model's forward pass (evaluation mode) contains a convolution, found among the
  equations of its jaxpr and of every sub-jaxpr (scans, custom gradients, vmap rules)."""
  import jax
  jaxpr = jax.make_jaxpr(lambda v, x: model.apply(v, x, train=False))(variables, x_example)
  return any(eqn.primitive.name == "conv_general_dilated" for eqn in _equations(jaxpr.jaxpr))


def _equations(jaxpr):
  for eqn in jaxpr.eqns:
    yield eqn
    for value in eqn.params.values():
      for item in value if isinstance(value, (tuple, list)) else (value,):
        inner = getattr(item, "jaxpr", item)   # a ClosedJaxpr holds its Jaxpr
        if hasattr(inner, "eqns"):
          yield from _equations(inner)
