"""A population's definition: its hyper-parameter axes, its networks, and each network's config.

``population.axes`` names config fields and their values, ``'n1.depth=1,2;train.learning_rate=
0.01,0.05'``: the population is every combination (a full grid, as Jiang et al. 2020 train). Any
N1 setting can be an axis (depth, width, batch size, learning rate, |D1|...). N2 is one fixed setup
for the whole population: the axes change N1's settings only, and N2 trains with the config's own
``n2`` and ``train`` blocks. Plain Python, no JAX.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import re

import ml_collections

from learnjax import config as config_lib, validation
from learnjax.errors import LearnjaxError

# Short names of the usual axes: network names and table columns.
SHORT = {"n1.depth": "depth", "n1.width": "width", "n1.batch_size": "batch",
         "train.learning_rate": "lr", "data.n1_size": "d1", "train.weight_decay": "wd",
         "n1.dropout": "dropout", "train.momentum": "momentum"}
# Fields an axis may not take: they name the population's structure or N2's setup.
NOT_AXES = ("n2.", "seed", "seeds", "data.name", "data.npz_path", "data.data_dir",
            "data.n2_size", "data.test_size", "data.variant", "n1.model", "population")


@dataclasses.dataclass(frozen=True)
class Axis:
  field: str           # dotted config field, 'train.learning_rate'
  values: tuple

  @property
  def name(self) -> str:
    return SHORT.get(self.field, self.field.replace(".", "_"))


@dataclasses.dataclass(frozen=True)
class Network:
  """One N1 setting of the population (all its seeds): its name and its axis values."""
  name: str
  hparams: dict        # axis name -> value


def _value(text: str):
  for kind in (int, float):
    try:
      return kind(text)
    except ValueError:
      pass
  if text in ("True", "False"):
    return text == "True"
  return text


def parse_axes(text: str, base: ml_collections.ConfigDict) -> list[Axis]:
  """The axes of ``population.axes``; refuses a field the config lacks or one N2 depends on."""
  if not isinstance(text, str) or not text.strip():
    raise LearnjaxError("config.population.axes is empty; give FIELD=V1,V2;FIELD=... (e.g. "
                        "n1.depth=1,2;n1.width=32,128)")
  flat = config_lib.flatten(base)
  axes = []
  for part in [p.strip() for p in text.split(";") if p.strip()]:
    field, sep, values = part.partition("=")
    field = field.strip()
    if not sep or not values.strip():
      raise LearnjaxError(f"config.population.axes: {part!r} is not FIELD=V1,V2,...")
    if field not in flat:
      raise LearnjaxError(f"config.population.axes names {field!r}, which is not a config field "
                          "(python -m learnjax.config lists them)")
    if any(field == n or (n.endswith(".") and field.startswith(n)) for n in NOT_AXES):
      raise LearnjaxError(f"config.population.axes: {field} cannot be an axis: it fixes the "
                          "data, the seeds or N2's setup, which the whole population shares")
    items = tuple(_value(v.strip()) for v in values.split(","))
    if len(set(items)) != len(items) or "" in items:
      raise LearnjaxError(f"config.population.axes: {field}={values} lists a value twice or an "
                          "empty one")
    if field in [a.field for a in axes]:
      raise LearnjaxError(f"config.population.axes lists {field} twice")
    axes.append(Axis(field, items))
  if len(axes) < 2:
    raise LearnjaxError("config.population.axes needs at least two axes: the granulated and "
                        "conditional scores compare networks along one axis with the others fixed")
  return axes


def _format(value) -> str:
  text = f"{value:g}" if isinstance(value, float) else str(value)
  return re.sub(r"[^A-Za-z0-9.+-]", "-", text)


def networks(axes: list[Axis]) -> list[Network]:
  """Every combination of the axes' values, named ``depth1_width32_lr0.01...``."""
  out = []
  for values in itertools.product(*(a.values for a in axes)):
    name = "_".join(f"{a.name}{_format(v)}" for a, v in zip(axes, values))
    out.append(Network(name, {a.name: v for a, v in zip(axes, values)}))
  return out


def population_block(config) -> ml_collections.ConfigDict:
  if "population" not in config:
    raise LearnjaxError("the config has no population block; start it from "
                        "configs/generalisation_measures.py")
  return config.population


def without_population(config) -> ml_collections.ConfigDict:
  """The learnjax experiment config of ``config`` (its population block left out)."""
  plain = ml_collections.ConfigDict(copy.deepcopy(config.to_dict()))
  if "population" in plain:
    del plain["population"]
  return plain


def n1_config(config, axes: list[Axis], network: Network) -> ml_collections.ConfigDict:
  """The experiment that trains ``network``'s N1 alone (``n2.model='none'``)."""
  out = without_population(config)
  for axis in axes:
    config_lib.set_field(out, axis.field, network.hparams[axis.name])
  out.n2.model = "none"
  return out


def n2_config(config, prediction_files: list[str], names: list[str]) -> ml_collections.ConfigDict:
  """The experiment that measures every N1's learnability with the one N2 setup: each N1 given as
  its per-seed labels of D2 and D3 (``n1.model='predictions'``)."""
  out = without_population(config)
  out.n1.model = "predictions"
  out.n1.width = None
  out.n1.depth = None
  config_lib.set_field(out, "n1.batch_size", 64)
  out.n1.predictions = ",".join(prediction_files)
  out.n1.name = ",".join(names)
  return out


def check(config) -> tuple[list[Axis], list[Network]]:
  """The population's axes and networks; refuses a population that cannot be scored."""
  block = population_block(config)
  axes = parse_axes(block.axes, without_population(config))
  if int(config.seeds) < 2:
    raise LearnjaxError("a population needs at least 2 seeds (GDE compares seeds; the scores' "
                        "uncertainty is a bootstrap over them)")
  if str(config.data.variant) not in ("true", "['true']"):
    raise LearnjaxError("a population is trained on true data: leave data.variant at 'true'")
  n2 = str(config.n2.model)
  if n2 in ("same", "none", "['same']", "['none']") or "," in n2:
    raise LearnjaxError("config.n2.model must name one N2 model (the population's fixed N2 "
                        f"setup), got {n2!r}")
  for name, low in (("bound", 0.0), ("examples", 1), ("noise_samples", 1), ("search_steps", 1),
                    ("ascent_steps", 1)):
    value = block.get(name)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= low:
      raise LearnjaxError(f"config.population.{name} must be a positive number, got {value!r}")
  if not 0 < block.bound < 1:
    raise LearnjaxError(f"config.population.bound must be in (0, 1), got {block.bound!r}")
  nets = networks(axes)
  for net in nets:   # every network's experiment is a valid learnjax config
    validation.check_config(n1_config(config, axes, net))
  return axes, nets
