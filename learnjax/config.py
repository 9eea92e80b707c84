"""The base experiment config every file in configs/ starts from.

An experiment is a grid of *cells*: data variant x N1 model x N1 batch size x N2 model, each measured
with ``seeds`` seeds. The grid axes are the fields ``data.variant`` (with ``data.corrupt_fraction``
for the variants that read it), ``n1.model``, ``n1.batch_size`` and ``n2.model``; each takes one value, several separated by
commas or a list, so any of them can be swept from the command line
(``--config.n1.model=shallow_cnn_16,shallow_cnn_32``), and each holds its list once the config is
checked. Every field's kind (grid axis, protocol, execution, path) is declared in
:mod:`learnjax.fields`. ``n2.model='same'``
trains N2 with N1's architecture; ``data.n2_size`` with several sizes trains one N2 per size on the
first n examples of D2 (a learnability curve, :mod:`learnjax.train_sizes`); ``n2.model='none'`` trains
N1 only (for analyses of N1 alone, such as seed agreement).

A model is a registry name (``python -m learnjax.models`` lists them) or a family name with its
hyper-parameters (``--config.n1.model=shallow_cnn --config.n1.width=256``).
"""

from __future__ import annotations

import ml_collections
from ml_collections import config_dict

from learnjax import fields


def model_block(model: str, batch_size: int | str = 64) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict({
      "model": model,                          # a registry name or family (comma-separated to sweep)
      "width": config_dict.placeholder(int),   # for family names: shallow_cnn, mlp
      "depth": config_dict.placeholder(int),   # for family names: mlp
      # dropout rate of the models that take it (mlp and shallow_cnn families and presets), e.g.
      # 0.5; several (0,0.5) sweep it; unset: no dropout
      "dropout": config_dict.placeholder(object),
      "batch_size": batch_size,                # comma-separated to sweep, e.g. '32,64'
  })


def n1_block(model: str) -> ml_collections.ConfigDict:
  block = model_block(model)
  # Epochs after which N1's predictions are kept and an N2 is trained on them too (F1), e.g.
  # '1,2,5,10'; empty: only the final N1.
  block.snapshot_epochs = ""
  # n1.model=predictions: N1 is not trained but given as its labels of D2 and D3, an .npz with
  # integer arrays d2 and d3 (see learnjax.predictions); several files separated by commas.
  block.predictions = ""
  block.name = ""   # N1's name in tables for n1.model=predictions (default: the file's stem)
  return block


def base_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  # The researcher's own modules (.py paths or module names, comma-separated), imported before
  # anything else: what they register (models, variants, metrics, report sections) is known to
  # every command, and the report imports them again (learnjax.plugins)
  config.plugins = ""
  config.experiment = ""     # the experiment's name in the report (T1 ... T14, F1, D5)
  config.seed = 0            # the experiment seed; seed i of a cell derives from (seed, i)
  config.seeds = 5           # independent seeds per cell

  config.data = ml_collections.ConfigDict({
      "name": "digits",      # digits (embedded) | npz | a tensorflow-datasets name (mnist, svhn_cropped...)
      "npz_path": "",        # for name=npz: x_train, y_train, x_test, y_test
      "data_dir": "",        # tensorflow-datasets data dir ('' = TFDS_DATA_DIR or ~/tensorflow_datasets)
      # true | random_labels | random_images | random_images_real_eval | partial_labels |
      # shuffled_pixels | random_pixels | gaussian (comma-separated to sweep; docs/protocol.md
      # section 2)
      "variant": "true",
      # partial_labels: the fraction of D1's labels replaced, in [0, 1]; several (0.2,0.4 or a
      # list) sweep it
      "corrupt_fraction": config_dict.placeholder(object),
      "n1_size": config_dict.placeholder(int),    # |D1|; default: first half of the train split
      # |D2|; default: second half. Several sizes ('500,1000,2000' or geometric:250:25000:8) draw
      # a learnability curve: one N2 per size, on the first n examples of D2 (D2 = the largest)
      "n2_size": config_dict.placeholder(int),
      "test_size": config_dict.placeholder(int),  # |D3|; default: the whole test split
  })

  config.n1 = n1_block("shallow_cnn_16")
  config.n2 = model_block("same")

  config.train = ml_collections.ConfigDict({
      "learning_rate": 0.01,       # SGD step size (positive, finite)
      "momentum": 0.0,             # SGD momentum in [0, 1)
      "nesterov": False,           # Nesterov momentum (PyTorch's nesterov=True; needs momentum)
      # L2 penalty wd/2 * |params|^2 on every parameter, added to the gradient before momentum as
      # PyTorch's SGD(weight_decay=wd) does (coupled, scaled by the learning rate); 0: none
      "weight_decay": 0.0,
      "plateau_factor": 0.75,      # lr *= factor when the train error has not decreased ...
      "plateau_patience": 10,      # ... for this many epochs (optax reduce_on_plateau)
      "stop_error": 0.01,          # stop a seed when its training error falls below this (0: never)
      "max_epochs": 500,           # training stops here if stop_error is not reached
      "error_measure": "running",  # running: errors seen during the epoch | full: a pass after it
      "loop": "auto",              # auto | scan (epoch = one compiled call) | step (call per step)
      # auto (measured on this machine, cached) | vmap (seeds together) | vmap_grouped (together,
      # convolutions grouped) | sequential (one at a time)
      "seed_layout": "auto",
      "devices": 0,                # local devices to spread seeds over; 0 = all that divide them
      "concurrent_seeds": 0,       # seed groups trained at once in threads; 0 = auto (2 on a CPU)
      "shared_order": False,       # seeds share one batch order (faster on GPUs, less independent)
      "eval_batch_size": 1000,     # images per batch when predicting (memory, not results)
      "precision": "default",      # default | float32 (exact) | tf32 | bfloat16 (compute; fp32 params)
  })

  config.checkpoint_every_epochs = 10  # in-flight state saved this often (and on SIGTERM); 0 = off
  config.progress_seconds = 5.0    # at most one progress line per this many seconds per training
  return config


# Fields added after the first release, each with the value at which learnjax behaves as it did
# before the field existed (declared in learnjax.fields): at that value a field is left out of
# every fingerprint (:mod:`learnjax.guard`), and :func:`stored_config` gives it that value where
# an older config.json lacks it.
NEUTRAL = fields.NEUTRAL


def stored_config(path: str) -> ml_collections.ConfigDict:
  """The config a workdir's ``config.json`` holds, complete for this release: a field it lacks
  (written before the field existed) gets its :data:`NEUTRAL` value, else its default."""
  import json
  with open(path) as f:
    stored = flatten(json.load(f))
  config = base_config()
  known = flatten(config.to_dict())
  unknown = sorted(set(stored) - set(known))
  if unknown:
    raise ValueError(f"{path} holds fields this learnjax does not know ({', '.join(unknown[:5])})"
                     "; replay it with the learnjax release that wrote it")
  for key, value in {**{k: v for k, v in NEUTRAL.items() if k not in stored}, **stored}.items():
    set_field(config, key, value)
  return config


def set_field(config: ml_collections.ConfigDict, key: str, value) -> None:
  """Sets the field of dotted name ``key`` (``'train.learning_rate'``) to ``value``, whatever the
  field's type was (a stored value, a comma list in an integer field)."""
  *blocks, name = key.split(".")
  node = config
  for block in blocks:
    node = node[block]
  with node.ignore_type():
    node[name] = value


def make_smoke(config: ml_collections.ConfigDict, max_epochs: int = 10, seeds: int = 2,
               sizes: tuple[int, int, int] = (300, 300, 200)) -> ml_collections.ConfigDict:
  """Shrinks an experiment to a CPU smoke run on the embedded digits: same grid, few epochs."""
  config.data.name = "digits"
  config.seeds = seeds
  config.train.max_epochs = max_epochs
  config.data.n1_size, config.data.n2_size, config.data.test_size = sizes
  return config


def set_n2_sizes(config: ml_collections.ConfigDict, sizes: str) -> ml_collections.ConfigDict:
  """Sets ``data.n2_size`` to several sizes (``'500,1000'`` or ``'geometric:250:25000:8'``): a
  learnability curve. The field holds one integer by default; it becomes a string field (the
  command line's ``--config.data.n2_size=...`` then takes a size or a list alike)."""
  del config.data["n2_size"]
  config.data.n2_size = str(sizes)
  return config


def check_arg(arg, allowed=("smoke",)):
  if arg not in (None, "", *allowed):
    raise ValueError(f"unknown config argument {arg!r}; choose one of {', '.join(allowed)}")


def describe_fields() -> str:
  """Every ``--config.*`` field of :func:`base_config` with its default, its kind
  (:mod:`learnjax.fields`) and the comment beside it."""
  import inspect
  import re
  comments, block, above = {}, "", []
  for line in inspect.getsource(inspect.getmodule(describe_fields)).splitlines():
    if re.match(r"\s*# ", line):  # a comment on lines of its own describes the next field
      above.append(line.strip()[2:])
      continue
    opened = re.match(r"\s*config\.(\w+) = ml_collections\.ConfigDict", line)
    if opened:
      block = opened.group(1) + "."
      continue
    if re.match(r"\s*\}\)", line):
      block = ""
    field = re.match(r'\s*(?:"(\w+)":|config\.(\w+) =|block\.(\w+) =)[^#]*#?\s*(.*)', line)
    if field:
      name = field.group(1) or field.group(2) or field.group(3)
      comment = field.group(4) or " ".join(above)
      if comment:
        comments.setdefault(block + name, comment)
        comments.setdefault(name, comment)
    above = []
  lines = []
  for key, value in flatten(base_config()).items():
    comment = comments.get(key) or comments.get(key.split(".")[-1], "")
    shown = "(unset)" if value is None else repr(value)
    kind = fields.FIELDS[key].kind if key in fields.FIELDS else ""
    lines.append(f"  --config.{key}={shown}".ljust(44) + f"  [{kind}]".ljust(13)
                 + (f"  {comment}" if comment else ""))
  return "\n".join(lines)


def flatten(config) -> dict:
  """{'train.learning_rate': 0.01, ...} of a ConfigDict (or a dict of dicts): the one flattening
  of a config, for validation, the workdir's records and this listing."""
  flat = {}

  def walk(prefix, value):
    if isinstance(value, (dict, ml_collections.ConfigDict)):
      for k, v in value.items():
        walk(f"{prefix}{k}.", v)
    else:
      flat[prefix[:-1]] = value

  walk("", config)
  return flat


if __name__ == "__main__":
  print("Fields of every experiment config (python -m learnjax.main --config.FIELD=VALUE), with "
        "the defaults of learnjax/config.py (an experiment's config file may change them) and "
        "their kinds: [grid] an axis of the experiment's grid, [protocol] determines the numbers "
        "(a workdir refuses a change), [unit] names a grid point, [execution] how the work runs, "
        "[path] where an input lies (its content is fingerprinted):")
  print(describe_fields())
