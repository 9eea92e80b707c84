"""An N1's parameters as stored beside its predictions, and the layers the norm measures read.

A population's N1 stores, for every seed, its parameters at initialisation and after training in
its ``arrays.npz`` (``params_init/<path>`` and ``params_final/<path>``, the Flax path joined by
``/``, seed axis first), so that a measure added later is computed from the stored population
without training again. The initial parameters are not kept from training: they are the model's
init from the seed's key (:func:`learnjax.training.seed_keys`, purpose N1_INIT) computed again,
the same function of the same key. numpy only.
"""

from __future__ import annotations

import numpy as np

INIT, FINAL = "params_init/", "params_final/"


def flatten(tree, prefix: str = "") -> dict[str, np.ndarray]:
  """{'Dense_0/dense/kernel': array, ...} of a nested parameter dict."""
  out = {}
  for key, value in tree.items():
    path = f"{prefix}{key}"
    if isinstance(value, dict) or hasattr(value, "items"):
      out.update(flatten(value, path + "/"))
    else:
      out[path] = np.asarray(value)
  return out


def unflatten(flat: dict[str, np.ndarray]) -> dict:
  tree = {}
  for path, value in flat.items():
    node = tree
    *parents, leaf = path.split("/")
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = value
  return tree


def stored_arrays(init_params, final_params) -> dict[str, np.ndarray]:
  """The arrays stored with an N1: both parameter trees, flattened, float32."""
  out = {INIT + k: v.astype(np.float32) for k, v in flatten(init_params).items()}
  out.update({FINAL + k: v.astype(np.float32) for k, v in flatten(final_params).items()})
  return out


def has_params(arrays) -> bool:
  return any(k.startswith(FINAL) for k in arrays) and any(k.startswith(INIT) for k in arrays)


def read(arrays, which: str) -> dict[str, np.ndarray]:
  """The flat parameters (seed axis first) of ``which`` (INIT or FINAL) in stored arrays."""
  return {k[len(which):]: np.asarray(v) for k, v in arrays.items() if k.startswith(which)}


def seed(flat: dict[str, np.ndarray], s: int) -> dict[str, np.ndarray]:
  return {k: v[s] for k, v in flat.items()}


def is_weight(path: str, value: np.ndarray) -> bool:
  """A layer's weight matrix or kernel (not a bias, not a normalisation scale)."""
  return path.rsplit("/", 1)[-1] == "kernel" and value.ndim >= 2


def weights(flat: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
  """The layers' weights in network order (Flax numbers its layers: Dense_0, Dense_1, ...)."""
  import re

  def order(path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path)]

  return [(k, v) for k, v in sorted(flat.items(), key=lambda kv: order(kv[0]))
          if is_weight(k, v)]


def as_matrix(kernel: np.ndarray) -> np.ndarray:
  """A kernel as the matrix of its layer: (fan-in, fan-out); a convolution's (kh, kw, cin, cout)
  kernel reshaped to (kh * kw * cin, cout), as Jiang et al. (2020) take it."""
  return kernel.reshape(-1, kernel.shape[-1])


def as_matrix_stacked(kernel: np.ndarray) -> np.ndarray:
  """:func:`as_matrix` of a kernel with a leading seed axis: (S, fan-in, fan-out)."""
  return kernel.reshape(kernel.shape[0], -1, kernel.shape[-1])
