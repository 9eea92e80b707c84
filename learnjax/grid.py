"""The grid of an experiment: its N1 rows and the cells that reuse each N1, from a config.

The grid is data variant (x corrupt fraction, for the variants that read one) x N1 model (x its
dropout rates, for the models that take one) x N1 batch size x N2 model (x its dropout rates)
(x N2's training-set size for a learnability curve; see :mod:`learnjax.config` and
:mod:`learnjax.train_sizes`);
:func:`plan` validates every axis and names each unit of work, whose ids key the workdir.
"""

from __future__ import annotations

import dataclasses
import itertools
import os

from learnjax import models, predictions, train_sizes, validation
from learnjax.validation import snapshot_epochs
from learnjax.data import variants
from learnjax.errors import LearnjaxError


@dataclasses.dataclass(frozen=True)
class ModelChoice:
  name: str                 # canonical registry name, e.g. shallow_cnn_256
  model: str                # as configured (a preset or family name)
  width: int | None = None
  depth: int | None = None
  predictions: str | None = None   # n1.model=predictions: the file of N1's labels (not trained)
  dropout: float | None = None     # for the models that take it (None: unset)

  def build(self, num_classes: int, dtype=None):
    return models.build(self.model, num_classes, dtype=dtype, width=self.width, depth=self.depth,
                        dropout=self.dropout)


@dataclasses.dataclass(frozen=True)
class N1Job:
  variant: str
  n1: ModelChoice
  batch_size: int
  corrupt_fraction: float | None = None   # for the variants that read data.corrupt_fraction

  @property
  def variant_id(self) -> str:
    """The variant as ids write it: partial_labels_f0.25 where a fraction applies."""
    if self.corrupt_fraction is None:
      return self.variant
    return f"{self.variant}_f{variants.fraction_id(self.corrupt_fraction)}"

  @property
  def id(self) -> str:
    if self.n1.predictions:   # trained elsewhere: no batch size of learnjax's in its name
      return f"{self.variant_id}__{self.n1.name}"
    return f"{self.variant_id}__{self.n1.name}__b{self.batch_size}"

  @property
  def variant_record(self) -> dict:
    """The variant's fields of a stored record: name, fraction where it applies, construction."""
    fraction = {} if self.corrupt_fraction is None else {"corrupt_fraction": self.corrupt_fraction}
    return {"variant": self.variant, **fraction,
            "variant_construction": variants.get(self.variant).construction}

  @property
  def legacy_id(self) -> str | None:
    """The id a given N1 had before it dropped the batch size (``true__logreg__b64``)."""
    return f"{self.variant}__{self.n1.name}__b{self.batch_size}" if self.n1.predictions else None


@dataclasses.dataclass(frozen=True)
class Cell:
  n1_job: N1Job
  n2: ModelChoice
  n2_batch_size: int
  n1_epoch: int | None = None   # N2 learns N1 as it was after this epoch (None: the final N1)
  n2_size: int | None = None    # N2 learns the first n2_size examples of D2 (None: one size, all)

  @property
  def id(self) -> str:
    epoch = "" if self.n1_epoch is None else f"__e{self.n1_epoch}"
    size = "" if self.n2_size is None else f"__n{self.n2_size}"
    return f"{self.n1_job.id}__{self.n2.name}__b{self.n2_batch_size}{epoch}{size}"


def model_hparams(name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
  """(hyper-parameters ``name`` takes, those it needs): none for 'same', 'none', 'predictions'."""
  if name in ("same", "none", predictions.MODEL):
    return (), ()
  return models.hparams_of(name)


def block_hparams(block) -> dict:
  """{'width': .., 'depth': .., 'dropout': ..} of a model block, each None where unset (dropout,
  a grid axis, as its list)."""
  return {h: block.get(h) for h in models.HPARAMS}


def _model_choices(block, field: str, names: list[str] | None = None) -> list[ModelChoice]:
  choices = []
  names = validation.grid_list(block.model, f"{field}.model") if names is None else names
  validation.check_model_hparams(field, names, block_hparams(block), model_hparams)
  rates = block.get("dropout")
  for name, rate in itertools.product(names, [None] if rates is None else rates):
    if name in ("same", "none"):
      choices.append(name)
      continue
    canonical = models.canonical_name(name, width=block.get("width"), depth=block.get("depth"),
                                      dropout=rate)
    choices.append(ModelChoice(canonical, name, block.get("width"), block.get("depth"),
                               dropout=rate))
  choices = list(dict.fromkeys(choices))   # 'same' once, whatever the rates
  if not choices:
    raise LearnjaxError(f"config.{field}.model is empty")
  return choices


def plan(config) -> list[tuple[N1Job, list[Cell]]]:
  """The experiment's N1 rows, each with the cells that reuse it; validates every setting."""
  validation.check_config(config)
  variant_list = validation.check_variants(config)
  fractions = validation.corrupt_fractions(config)
  n1_names = validation.grid_list(config.n1.model, "n1.model")
  n1_models = []
  for name in dict.fromkeys(n1_names):   # zoo models and given N1s, in the order listed
    if name == predictions.MODEL:
      n1_models += _prediction_choices(config, alone=n1_names == [predictions.MODEL])
    else:
      n1_models += _model_choices(config.n1, "n1", [name])
  if "same" in n1_models or "none" in n1_models:
    raise LearnjaxError("config.n1.model must name models ('same' and 'none' are for n2)")
  n2_models = _model_choices(config.n2, "n2")
  if "none" in n2_models:
    if len(n2_models) > 1:
      raise LearnjaxError(f"config.n2.model={config.n2.model!r} lists 'none' (N1 only, no N2) "
                          "beside N2 models; give one or the other")
    n2_models = []
  n1_batches = validation.grid_list(config.n1.batch_size, "n1.batch_size", int)
  n2_batches = validation.grid_list(config.n2.batch_size, "n2.batch_size", int)
  n1_epochs = [None] + snapshot_epochs(config)
  # One size: the cell's N2 learns all of D2 (its id and fingerprint name no size).
  n2_sizes = train_sizes.parse(config.data.n2_size) if train_sizes.is_curve(config.data.n2_size) else [None]
  rows = []
  variant_units = [(v.name, f) for v in variant_list for f in (fractions if v.uses_fraction
                                                                 else [None])]
  for (variant, fraction), n1, batch in itertools.product(variant_units, n1_models, n1_batches):
    job = N1Job(variant, n1, batch, fraction)
    cells = [Cell(job, n1 if n2 == "same" else n2, b2, e, n)
             for n2, b2, e, n in itertools.product(n2_models, n2_batches, n1_epochs, n2_sizes)]
    rows.append((job, list(dict.fromkeys(cells))))
  return rows


def _prediction_choices(config, alone: bool = True) -> list[ModelChoice]:
  """n1.model=predictions: one N1 per file of n1.predictions, named by n1.name or its stem.

  Listed beside zoo models (``n1.model=mlp_1,predictions``, ``alone`` False), n1.width and
  n1.depth are the zoo models' and the given N1s ignore them."""
  files = validation.grid_list(config.n1.get("predictions", ""), "n1.predictions", allow_empty=True)
  names = validation.grid_list(config.n1.get("name", ""), "n1.name", allow_empty=True) or [None] * len(files)
  if not files:
    predictions.load("", {}, 0, 0)  # raises: says what n1.predictions must hold
  if alone:
    validation.check_model_hparams("n1", [predictions.MODEL], block_hparams(config.n1),
                                   model_hparams)
  if len(names) != len(files):
    raise LearnjaxError(f"config.n1.name gives {len(names)} names for {len(files)} predictions "
                        "files; give one per file (comma-separated) or none")
  if "same" in validation.grid_list(config.n2.model, "n2.model"):
    raise LearnjaxError("n2.model=same needs N1's architecture, which an N1 given as predictions "
                        "does not have; name N2's model (--config.n2.model=mlp_1, ...)")
  variant_list = validation.grid_list(config.data.variant, "data.variant")
  if variant_list != ["true"] or snapshot_epochs(config):
    raise LearnjaxError("an N1 given as predictions is trained elsewhere: data.variant must be "
                        "'true' and n1.snapshot_epochs empty")
  if len(validation.grid_list(config.n1.batch_size, "n1.batch_size", int)) > 1:
    raise LearnjaxError("an N1 given as predictions has no batch size to sweep: give one "
                        "n1.batch_size")
  choices = [ModelChoice(predictions.name_of(f, n), predictions.MODEL,
                         predictions=os.path.abspath(os.path.expanduser(f)))
             for f, n in zip(files, names)]
  zoo = {models.canonical_name(n, width=config.n1.get("width"), depth=config.n1.get("depth"))
         for n in validation.grid_list(config.n1.model, "n1.model") if n != predictions.MODEL}
  if zoo & {c.name for c in choices}:
    raise LearnjaxError(f"a predictions file is named {', '.join(sorted(zoo & {c.name for c in choices}))}"
                        ", as a model of n1.model; name it apart with --config.n1.name=NAME")
  if len({c.name for c in choices}) != len(choices):
    raise LearnjaxError(f"two predictions files share the name {', '.join(c.name for c in choices)}"
                        "; name them with --config.n1.name=NAME1,NAME2,...")
  return choices
