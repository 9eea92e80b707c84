"""The sizes of N2's training sets: ``data.n2_size`` as one size, a comma list or a geometric grid.

``data.n2_size`` is one integer (|D2|), a comma list (``'500,1000,2000'``) or
``'geometric:A:B:K'``: K sizes from A to B, evenly spaced on a log axis and rounded to integers
(A and B included). D2 is the largest size's examples; the N2 of size n is trained on the first n
of them, so the sizes nest (docs/protocol.md section 8). Unset: one size, the default half.
Plain Python: validation, the guard and the report import it without JAX.
"""

from __future__ import annotations

import math

from learnjax.errors import LearnjaxError

GEOMETRIC = "geometric"


def _geometric(text: str) -> list[int]:
  parts = text.split(":")
  usage = (f"config.data.n2_size={text!r}: write geometric:SMALLEST:LARGEST:COUNT, e.g. "
           "geometric:250:25000:8")
  if len(parts) != 4:
    raise LearnjaxError(usage)
  try:
    low, high, count = (int(p) for p in parts[1:])
  except ValueError:
    raise LearnjaxError(usage) from None
  if not 1 <= low < high or count < 2:
    raise LearnjaxError(f"{usage} (1 <= SMALLEST < LARGEST, COUNT >= 2)")
  sizes = [round(math.exp(math.log(low) + i * (math.log(high) - math.log(low)) / (count - 1)))
           for i in range(count)]
  sizes[0], sizes[-1] = low, high
  if len(set(sizes)) != count:
    raise LearnjaxError(f"{usage}: {count} sizes between {low} and {high} round to the same "
                        "integer; give fewer sizes or a wider range")
  return sizes


def parse(value) -> list:
  """The sizes, ascending (``[None]``: one size, the default |D2|); refuses anything else."""
  if value is None:
    return [None]
  if isinstance(value, str) and value.strip().startswith(GEOMETRIC):
    return _geometric(value.strip())
  items = value
  if isinstance(value, str):
    items = [v.strip() for v in value.split(",")]
    if "" in items:
      raise LearnjaxError(f"config.data.n2_size={value!r} has an empty element; separate sizes "
                          "by single commas")
  elif isinstance(value, (bytes, dict, set)) or not hasattr(value, "__iter__") \
      or getattr(value, "ndim", 1) == 0:
    items = [value]
  else:   # any sequence: a list, a tuple, a range, a numpy array
    items = list(value)
  sizes = []
  for item in items:
    if isinstance(item, str) and item.lstrip("+").isdigit():
      item = int(item)
    if not isinstance(item, bool) and hasattr(item, "__index__"):   # numpy integers
      item = int(item)
    if isinstance(item, bool) or not isinstance(item, int) or item < 1:
      raise LearnjaxError(f"config.data.n2_size must be a positive integer, a comma list of them "
                          f"or geometric:A:B:K, got {value!r}")
    sizes.append(int(item))
  if not sizes:
    raise LearnjaxError("config.data.n2_size is empty")
  if len(set(sizes)) != len(sizes):
    raise LearnjaxError(f"config.data.n2_size lists a size twice ({value!r}); each size once")
  return sorted(sizes)


def d2_size(value):
  """|D2| as ``data.n2_size`` sets it: the largest size (None: the default)."""
  return parse(value)[-1]


def is_curve(value) -> bool:
  """Whether ``data.n2_size`` lists several sizes (a learnability curve)."""
  return len(parse(value)) > 1
