"""learnjax: the learnability of learned neural networks, in JAX.

``learnjax.learnability(...)`` measures one N1 (a model name, a predict function or its labels)
in memory; ``learnjax.run(config, workdir)`` runs an experiment as the command line does. Both
are imported on first use, so ``import learnjax`` stays light (no JAX).
"""

__all__ = ["learnability", "run", "Learnability", "LearnjaxError"]


def __getattr__(name):
  if name in ("learnability", "run", "Learnability"):
    from learnjax import api
    return getattr(api, name)
  if name == "LearnjaxError":
    from learnjax.errors import LearnjaxError
    return LearnjaxError
  raise AttributeError(f"module 'learnjax' has no attribute {name!r}")
