"""The import graph of learnjax has no cycle, counting imports inside functions too.

``python tests/test_imports.py [--graph]`` prints the package's modules, lines, largest module and
cycles (and the import graph's layers).
"""

import ast
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "learnjax")


def modules() -> dict[str, str]:
  """{dotted module name: path} of every module of the package."""
  found = {}
  for folder, _, files in os.walk(PACKAGE):
    for name in files:
      if name.endswith(".py"):
        path = os.path.join(folder, name)
        parts = os.path.relpath(path, ROOT)[:-3].split(os.sep)
        if parts[-1] == "__init__":
          parts = parts[:-1]
        found[".".join(parts)] = path
  return found


def imports(name: str, path: str, known: set[str]) -> set[str]:
  """The package modules that module ``name`` imports anywhere in its body (functions too)."""
  with open(path) as f:
    tree = ast.parse(f.read(), path)
  package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
  out = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      targets = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        anchor = package.split(".")
        anchor = anchor[:len(anchor) - node.level + 1]
        base = ".".join(anchor + ([base] if base else []))
      # "from a import b" imports a.b where b is a module, else a itself.
      targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                 for alias in node.names]
    else:
      continue
    for target in targets:
      while target and target not in known:   # a name inside a module: the module
        target = target.rpartition(".")[0]
      if target and target != name:
        out.add(target)
  return out


def graph() -> dict[str, set[str]]:
  found = modules()
  known = set(found)
  # A package's __init__ runs on importing any of its modules: not an edge of the cycle count,
  # which is about modules that need each other.
  return {name: {t for t in imports(name, path, known) if not name.startswith(t + ".")}
          for name, path in found.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
  """The strongly connected components with more than one module (Tarjan)."""
  index, low, stack, on_stack, out = {}, {}, [], set(), []
  sys.setrecursionlimit(10000)

  def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in sorted(edges.get(v, ())):
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        component.append(w)
        if w == v:
          break
      if len(component) > 1:
        out.append(sorted(component))

  for v in sorted(edges):
    if v not in index:
      visit(v)
  return out


def test_the_import_graph_has_no_cycle():
  found = cycles(graph())
  assert not found, f"import cycles (imports inside functions count): {found}"


def test_the_cycle_count_sees_imports_inside_functions(tmp_path):
  edges = {"a": {"b"}, "b": {"a"}, "c": {"a"}}
  assert cycles(edges) == [["a", "b"]]
  source = "def f():\n  from learnjax import store\n"
  path = tmp_path / "m.py"
  path.write_text(source)
  assert imports("learnjax.m", str(path), {"learnjax", "learnjax.store"}) == {"learnjax.store"}


if __name__ == "__main__":
  found = modules()
  lines = {name: sum(1 for _ in open(path)) for name, path in found.items()}
  largest = max(lines, key=lines.get)
  print(f"modules: {len(found)}; lines of learnjax/: {sum(lines.values())}; largest: {largest} "
        f"({lines[largest]} lines)")
  found_cycles = cycles(graph())
  print(f"import cycles (imports inside functions count): {len(found_cycles)}")
  for cycle in found_cycles:
    print("  " + " <-> ".join(cycle))
  if "--graph" in sys.argv:   # layers: a module imports only modules of lower layers
    edges, layer = graph(), {}
    while len(layer) < len(edges) and not found_cycles:
      for name in sorted(edges):
        if name not in layer and all(t in layer for t in edges[name]):
          layer[name] = 1 + max((layer[t] for t in edges[name]), default=-1)
    for level in sorted(set(layer.values())):
      names = sorted(n.replace("learnjax.", "") for n, v in layer.items() if v == level)
      print(f"layer {level}: {', '.join(names)}")
