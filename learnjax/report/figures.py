"""Figure helpers: matplotlib's object API with the Agg canvas (no global pyplot state).

Every figure is at most MAX_INCHES (at DPI dots per inch), whatever the number of seeds or cells.
"""

from __future__ import annotations

import textwrap

DPI = 150
MAX_INCHES = (16.0, 12.0)   # width, height: at most 2400 x 1800 pixels


def new_figure(width: float, height: float):
  """A figure drawn by the Agg canvas, outside pyplot (no global backend switch, no registry)."""
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
  fig = Figure(figsize=(min(width, MAX_INCHES[0]), min(height, MAX_INCHES[1])), dpi=DPI,
               layout="constrained")
  FigureCanvasAgg(fig)
  return fig


def wrapped(title: str, width_inches: float, fontsize: float) -> str:
  """``title`` broken into lines that fit ``width_inches`` at ``fontsize`` points."""
  chars = max(int(width_inches * 72 / (0.6 * fontsize)), 12)
  return "\n".join(textwrap.fill(line, chars) for line in title.split("\n"))


def log_axis(ax, ticks) -> None:
  """A log-scaled x axis labelled with plain numbers at ``ticks``."""
  from matplotlib.ticker import NullFormatter, NullLocator
  ax.set_xscale("log")
  ax.xaxis.set_minor_locator(NullLocator())
  ax.xaxis.set_minor_formatter(NullFormatter())
  ax.set_xticks(ticks, [str(t) for t in ticks])


def colors(n: int) -> list:
  import matplotlib
  cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
  return [cmap(i % cmap.N) for i in range(n)]
