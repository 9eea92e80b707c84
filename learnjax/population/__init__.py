"""Generalisation measures over a population of networks, scored as the field scores them.

A population is a grid of N1 settings (depth, width, batch size, learning rate, |D1|...), each
trained to learnjax's stop criterion with several seeds; every N1's learnability is measured with
one fixed N2 setup, its parameters are stored, and every registered measure
(:mod:`learnjax.population.measures`) is scored against the generalisation gap by Kendall's tau,
the granulated psi / Psi, Jiang et al.'s conditional score K and Dziugaite et al.'s robust sign
error (:mod:`learnjax.population.scoring`)::

  python -m learnjax.population --config=configs/generalisation_measures.py:smoke --workdir=W

``learnjax.population.load(W).to_pandas()`` gives the tidy table. Importing this package imports
no JAX.
"""


def load(workdir: str):
  """The stored population of ``workdir`` (:class:`learnjax.population.table.Population`)."""
  from learnjax.population import table
  return table.load(workdir)
