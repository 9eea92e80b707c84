"""A researcher's own modules, imported before anything else by every command: ``config.plugins``.

``--config.plugins=my_models.py,my_pkg.metrics`` names modules by file path (``.py``) or by
module name. Each is imported once, before the config is checked, so what it registers through
learnjax's public calls (``learnjax.models.register``, ``learnjax.data.variants.register``,
``learnjax.metrics.register``, ``learnjax.report.analyses.register``) is known everywhere
learnjax's own entries are: validation, training, the console table, ``results.json``, the API's
result and the report.

A launch records its plugins in the workdir (``plugins.json``: every plugin any launch used, with
the file it was imported from), so ``python -m learnjax.report --workdir=W`` imports them again
without being told. A plugin that cannot be imported, or registers a name another definition
has taken (:mod:`learnjax.registration`), is one :class:`LearnjaxError`, before any compute. This module imports no JAX.
"""

from __future__ import annotations

import importlib
import json
import os
import sys

from learnjax import storage
from learnjax.errors import LearnjaxError

RECORD = "plugins.json"


def specs(value) -> list[str]:
  """The plugins of ``config.plugins``: a comma string or a list, each element once."""
  if value is None:
    return []
  items = value.split(",") if isinstance(value, str) else list(value)
  out = []
  for item in items:
    if not isinstance(item, str):
      raise LearnjaxError(f"config.plugins lists {item!r}; give module names or .py paths")
    item = item.strip()
    if item and item not in out:
      out.append(item)
  return out


def load(value) -> list[dict]:
  """Imports every plugin of ``value`` (``config.plugins``); their records (see :func:`record`)."""
  return [_import(spec) for spec in specs(value)]


def _import(spec: str) -> dict:
  """Imports one plugin; {'plugin': spec, 'module': name, 'file': path, 'root': sys.path entry}."""
  if spec.endswith(".py") or os.sep in spec or "/" in spec:
    path = os.path.abspath(spec)
    if not os.path.isfile(path):
      raise LearnjaxError(f"plugin {spec}: no such file" + (f" ({path})" if path != spec else ""))
    root, name = os.path.dirname(path), os.path.splitext(os.path.basename(path))[0]
    if not name.isidentifier():
      raise LearnjaxError(f"plugin {spec}: {name!r} is not a Python module name; rename the file "
                          "(letters, digits and _)")
    loaded = sys.modules.get(name)
    if loaded is not None and os.path.abspath(getattr(loaded, "__file__", "") or "") != path:
      raise LearnjaxError(f"plugin {spec}: a module named {name!r} is already imported from "
                          f"{getattr(loaded, '__file__', None) or 'elsewhere'}; rename the file")
    if root not in sys.path:
      sys.path.insert(0, root)   # the plugin's own imports of its neighbours work as in a script
  else:
    name, root = spec, None
    if not all(part.isidentifier() for part in name.split(".")):
      raise LearnjaxError(f"plugin {spec!r} is neither a .py file nor a module name")
  try:
    module = importlib.import_module(name)
  except ModuleNotFoundError as e:
    if e.name and name.startswith(e.name):
      raise LearnjaxError(f"plugin {spec}: no module named {e.name!r} (is its folder on "
                          "PYTHONPATH? a file is given by its path, ending in .py)") from None
    raise LearnjaxError(f"plugin {spec} failed while importing: ModuleNotFoundError: {e}") from None
  except LearnjaxError as e:   # learnjax refused what it registers (a name already taken)
    raise LearnjaxError(f"plugin {spec}: {e}") from None
  except Exception as e:  # noqa: BLE001  the user's own code: any error, one line
    text = " ".join(str(e).split())[:300]
    raise LearnjaxError(f"plugin {spec} failed while importing: {type(e).__name__}: {text}") from None
  file = getattr(module, "__file__", None)
  if root is None and file:   # the sys.path entry a module name was found under
    depth = name.count(".") + (os.path.basename(file) == "__init__.py")
    root = os.path.dirname(os.path.abspath(file))
    for _ in range(depth):
      root = os.path.dirname(root)
  return {"plugin": spec, "module": name, "file": os.path.abspath(file) if file else None,
          "root": root}


def record(workdir: str, loaded: list[dict]) -> None:
  """Adds this launch's plugins to the workdir's ``plugins.json`` (those of earlier launches are
  kept: their results may need them)."""
  if not loaded:
    return
  known = recorded(workdir) if os.path.isfile(os.path.join(workdir, RECORD)) else []
  modules = {r["module"] for r in known}
  merged = known + [r for r in loaded if r["module"] not in modules]
  if merged != known:
    storage.atomic_write_json(os.path.join(workdir, RECORD), {"plugins": merged})


def recorded(workdir: str) -> list[dict]:
  """The plugins the workdir's launches used: ``plugins.json``, else its ``config.json``'s
  ``plugins`` field (a launch that failed before writing plugins.json)."""
  path = os.path.join(workdir, RECORD)
  if os.path.isfile(path):
    try:
      with open(path) as f:
        stored = json.load(f)
      entries = stored["plugins"]
      if isinstance(entries, list) and all(isinstance(e, dict) and "module" in e for e in entries):
        return entries
    except (OSError, ValueError, KeyError, TypeError):
      pass
    raise LearnjaxError(f"{path} is not a learnjax plugin record; move it away and name the "
                        "plugins with --plugins")
  config_path = os.path.join(workdir, "config.json")
  try:
    with open(config_path) as f:
      value = json.load(f).get("plugins")
  except (OSError, ValueError, AttributeError):
    return []
  return [{"plugin": s, "module": None, "file": None, "root": None} for s in specs(value or "")]


def load_recorded(workdir: str) -> list[dict]:
  """Imports the plugins a workdir recorded, from where its launch imported them."""
  loaded = []
  for entry in recorded(workdir):
    if entry.get("module") is None:
      loaded.append(_import(entry["plugin"]))
      continue
    root = entry.get("root")
    if root and os.path.isdir(root) and root not in sys.path:
      sys.path.insert(0, root)
    try:
      loaded.append(_import(entry["module"]))
    except LearnjaxError as e:
      raise LearnjaxError(f"{e} (recorded in {os.path.join(workdir, RECORD)}, imported by its "
                          f"launch from {entry.get('file')})") from None
  return loaded
