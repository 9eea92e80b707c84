"""Names, ordering and number formatting shared by every part of the report."""

from __future__ import annotations

import re

import numpy as np

from learnjax import metrics
from learnjax.data import variants as variants_lib

TITLES = {
    "T1": "T1: deep networks, learnability per data variant",
    "T2": "T2: shallow CNN width grid (N1 width x N2 width)",
    "T3": "T3: cross-architecture learnability (N1 x N2)",
    "T4": "T4: shallow CNNs, learnability per data variant",
    "T5": "T5: MLPs, learnability per data variant",
    "T6": "T6: shallow CNNs on CIFAR-100, learnability per data variant",
    "T7": "T7: class distribution of N1's predictions on D2",
    "T8": "T8: N1 correct x N2 agrees (shallow CNN 1024)",
    "T9": "T9: N1 correct x N2 agrees (shallow CNN 16)",
    "T10": "T10: N1 correct x N2 agrees (VGG11)",
    "T11": "T11: N1 correct x N2 agrees (GoogLeNet)",
    "T8-T11": "T8-T11: N1 correct x N2 agrees",
    "T12": "T12: one-hidden-layer MLPs (N2 fixed)",
    "T13": "T13: MLP depth grid (N1 depth x N2 depth)",
    "T14": "T14: N1 batch size",
    "F1": "F1: learnability and test error along N1's training",
    "D5": "D5: agreement between seeds",
    "quickstart": "quickstart: learnability per data variant",
    "zhang_corruptions": "Zhang et al. corruptions: learnability per data variant",
}


fmt = metrics.fmt   # 'mean ± std'; 'undefined' where no seed defines it; '–' where absent


def md_table(header: list[str], rows: list[list]) -> str:
  clean = lambda x: str(x).replace("|", "\\|").replace("\n", " ")
  lines = ["| " + " | ".join(clean(h) for h in header) + " |",
           "|" + "|".join("---" for _ in header) + "|"]
  lines += ["| " + " | ".join(clean(x) for x in row) + " |" for row in rows]
  return "\n".join(lines)


def natural_key(name) -> tuple:
  return tuple((0, int(t), "") if t.isdigit() else (1, 0, t)
               for t in re.split(r"(\d+)", str(name)) if t)


def sort_models(names, preferred=()) -> list:
  rank = {name: i for i, name in enumerate(dict.fromkeys(preferred))}
  return sorted(names, key=lambda n: (rank.get(n, len(rank)), natural_key(n)))


def variant_of(record: dict):
  """A record's variant as tables group it: the name, with the fraction where one applies
  (partial_labels_f0.25, as in unit ids)."""
  fraction = record.get("corrupt_fraction")
  if fraction is None:
    return record.get("variant")
  return f"{record.get('variant')}_f{variants_lib.fraction_id(fraction)}"


def _variant_parts(key) -> tuple:
  """(registry entry or None, fraction or None) of a key of :func:`variant_of`."""
  entry = variants_lib.find(key)
  if entry is not None or not isinstance(key, str) or "_f" not in key:
    return entry, None
  name, _, fraction = key.rpartition("_f")
  try:
    return variants_lib.find(name), float(fraction)
  except ValueError:
    return None, None


def variant_title(key) -> str:
  """'random labels', 'partial labels 0.25': the registry's title of a variant key."""
  entry, fraction = _variant_parts(key)
  if entry is None:
    return str(key)
  return entry.title if fraction is None else f"{entry.title} {variants_lib.fraction_id(fraction)}"


def variant_rank(key) -> tuple:
  entry, fraction = _variant_parts(key)
  return (entry.order if entry is not None else 1000, fraction or 0.0)


def sort_variants(variants) -> list:
  return sorted(set(variants), key=lambda v: (variant_rank(v), str(v)))


def reference_variant(keys: list):
  """Of some variant keys, the one whose N1 test accuracy is the network's own (true data), or
  the last."""
  return next((k for k in keys if getattr(_variant_parts(k)[0], "reference", False)), keys[-1])


def epochs_text(values) -> str:
  values = np.asarray(values, float)
  if values.size == 0:
    return "–"
  if values.min() == values.max():
    return f"{values[0]:.0f}"
  return f"{values.mean():.0f} ({values.min():.0f}–{values.max():.0f})"


def cell_label(cell: dict) -> str:
  epoch = "" if cell.get("n1_epoch") is None else f" after N1 epoch {cell['n1_epoch']}"
  batch = ("N1 given" if cell.get("n1_source") == "predictions"
           else f"N1 batch {cell.get('n1_batch_size')}")
  return (f"{cell.get('n1_model')} → {cell.get('n2_model')} ({variant_of(cell)}, "
          f"{batch}{epoch})")


def varies(cells: list[dict], key: str) -> bool:
  return len({c.get(key) for c in cells}) > 1


def n1_row_label(cell: dict, cells: list[dict], with_n2: bool = False) -> str:
  """The N1 of a cell, with the batch size / N2 only where they vary in ``cells``."""
  label = str(cell.get("n1_model"))
  if varies(cells, "n1_batch_size"):
    label += f" (batch {cell.get('n1_batch_size')})"
  if with_n2:
    label += f" → {cell.get('n2_model')}"
    if varies(cells, "n2_batch_size"):
      label += f" (batch {cell.get('n2_batch_size')})"
  return label


def seeds_text(seeds) -> str:
  """Seed indices (numbered from 0, as stored) as 'seed 3' or 'seeds 0, 2'."""
  seeds = [int(s) for s in seeds]
  return f"seed {seeds[0]}" if len(seeds) == 1 else "seeds " + ", ".join(map(str, seeds))
