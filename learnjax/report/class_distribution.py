"""T7: the class distribution of N1's predictions on D2, per N1 and data variant.

Classes are shown by name where the stored N1 result carries ``class_names``, else by index.
"""

from __future__ import annotations

import math

import numpy as np

from learnjax.report import analyses
from learnjax.report.context import Context
from learnjax.report.figures import colors, log_axis, new_figure
from learnjax.report.formatting import (md_table, sort_models, sort_variants,
                                        variant_rank, variant_title, varies)


def class_distribution(preds: np.ndarray, num_classes: int) -> np.ndarray:
  """Percentage of examples predicted as each class, per seed -> mean over seeds. preds: (S, N)."""
  preds = np.atleast_2d(np.asarray(preds))
  counts = np.stack([np.bincount(p, minlength=num_classes)[:num_classes] for p in preds])
  return 100.0 * (counts / preds.shape[1]).mean(axis=0)


@analyses.register("class_distribution", "Class distribution of N1's predictions on D2",
                   analyses.n1_only, order=70)
def section_t7(ctx: Context) -> str:
  n1s = ctx.n1s
  if not n1s:
    return "No trained N1 stored."
  models = sort_models({r.get("model") for r in n1s}, ctx.config_models())
  num_classes = max(int(r.get("num_classes") or 0) for r in n1s)
  dists, d2_labels = {}, None
  for r in sorted(n1s, key=lambda r: (models.index(r.get("model")), variant_rank(r.get("variant")),
                                      r.get("batch_size") or 0)):
    arrays = ctx.arrays("n1", r["n1"])
    if "n1_preds_d2" not in arrays:
      ctx.notes.append(f"N1 {r['n1']} has no stored predictions on D2 (n1_preds_d2)")
      continue
    dists[r["n1"]] = (r, class_distribution(arrays["n1_preds_d2"], num_classes))
    if d2_labels is None and "y_d2" in arrays:
      d2_labels = class_distribution(arrays["y_d2"][None], num_classes)
  wide = num_classes > 20
  names = class_names(n1s, num_classes)
  by_batch = varies(n1s, "batch_size")
  label = lambda r: str(r.get("model")) + (f" (batch {r.get('batch_size')})" if by_batch else "")
  if wide:
    header_ = ["N1", "variant", "largest class %", "top 5 classes (%)", "classes predicted",
               "learnability %"]
  else:
    header_ = ["N1", "variant"] + names + ["learnability %"]
  table = []
  for r, dist in dists.values():
    matching = [c for c in ctx.final_cells if c.get("variant") == r.get("variant")
                and c.get("n1_model") == r.get("model") and c.get("n1_batch_size") == r.get("batch_size")]
    learn = ctx.num(matching[0], "learnability") if len(matching) == 1 else (
        "several N2" if matching else "–")
    if wide:
      top = np.argsort(-dist)[:5]
      numbers = [f"{dist.max():.1f}", ", ".join(f"{names[k]}: {dist[k]:.1f}" for k in top),
                 str(int((dist > 0).sum()))]
    else:
      numbers = [f"{d:.1f}" for d in dist]
    table.append([label(r), r.get("variant")] + numbers + [learn])
  if d2_labels is not None:
    if wide:
      top = np.argsort(-d2_labels)[:5]
      numbers = [f"{d2_labels.max():.1f}", ", ".join(f"{names[k]}: {d2_labels[k]:.1f}"
                                                      for k in top),
                 str(int((d2_labels > 0).sum()))]
    else:
      numbers = [f"{d:.1f}" for d in d2_labels]
    table.append(["(true labels of D2)", "–"] + numbers + ["–"])
  text = ("Percentage of D2 that N1 predicts as each class (mean over seeds); the last row is the "
          "true label distribution of D2.\n\n" + md_table(header_, table))
  if dists:
    ctx.figures["class_distribution.png"] = figure_t7(list(dists.values()), d2_labels,
                                                     num_classes, label, names)
    text += "\n\n![Class distribution of N1's predictions on D2](class_distribution.png)"
  return text


def class_names(results: list[dict], num_classes: int) -> list[str]:
  """The data set's class names where a stored N1 result carries them, else the class indices."""
  for r in results:
    names = r.get("class_names")
    if isinstance(names, (list, tuple)) and len(names) >= num_classes:
      return [str(n) for n in names[:num_classes]]
  return [str(k) for k in range(num_classes)]


def figure_t7(dists, d2_labels, num_classes, label, names=None):
  groups = {}
  for r, dist in dists:
    groups.setdefault(label(r), []).append((r.get("variant"), dist))
  n = len(groups)
  ncols = min(n, 2)
  nrows = math.ceil(n / ncols)
  fig = new_figure(5.2 * ncols + 1.5, 2.9 * nrows)
  axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False, sharey=True)).ravel()
  variants = sort_variants(v for entries in groups.values() for v, _ in entries)
  palette = dict(zip(variants, colors(len(variants))))
  x = np.arange(num_classes)
  wide = num_classes > 20
  for ax, (name, entries) in zip(axes, groups.items()):
    if wide:  # too many classes for bars: each distribution sorted, largest class first
      for variant, dist in sorted(entries, key=lambda e: variants.index(e[0])):
        ax.step(np.arange(1, num_classes + 1), np.sort(dist)[::-1], where="mid",
                color=palette[variant], label=f"N1 trained on {variant_title(variant)}")
      if d2_labels is not None:
        ax.step(np.arange(1, num_classes + 1), np.sort(d2_labels)[::-1], where="mid", color="black",
                linewidth=1, linestyle="--", label="true labels of D2")
      log_axis(ax, [t for t in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000) if t <= num_classes])
      ax.set_title(f"N1 = {name}", fontsize=10)
      ax.set_xlabel("class rank (classes sorted by share)")
      ax.set_ylabel("% of D2")
      ax.grid(alpha=0.3)
      continue
    width = 0.8 / max(len(entries), 1)
    for i, (variant, dist) in enumerate(sorted(entries, key=lambda e: variants.index(e[0]))):
      ax.bar(x + (i - (len(entries) - 1) / 2) * width, dist, width, color=palette[variant],
             label=f"N1 trained on {variant_title(variant)}")
    if d2_labels is not None:
      ax.step(np.append(x, num_classes) - 0.5, np.append(d2_labels, d2_labels[-1]), where="post",
              color="black", linewidth=1, label="true labels of D2")
    ax.set_title(f"N1 = {name}", fontsize=10)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("% of D2")
    if num_classes <= 20:
      names = names or [str(k) for k in x]
      tilt = max(len(n) for n in names) > 2
      ax.set_xticks(x, names, rotation=45 if tilt else 0, ha="right" if tilt else "center",
                    fontsize=8 if tilt else None)
    ax.grid(axis="y", alpha=0.3)
  for ax in axes[n:]:
    ax.set_visible(False)
  handles, labels = axes[0].get_legend_handles_labels()
  seen = dict(zip(labels, handles))
  for ax in axes[1:n]:
    for h, l in zip(*ax.get_legend_handles_labels()):
      seen.setdefault(l, h)
  fig.legend(list(seen.values()), list(seen.keys()), loc="outside right upper", fontsize=8)
  fig.suptitle("Class distribution of N1's predictions on D2 (mean over seeds)", fontsize=11)
  return fig


