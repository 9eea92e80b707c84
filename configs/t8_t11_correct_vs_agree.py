r"""T8-T11: for one (N1, N2) pair, the 2x2 table of [N1 correct on D3] x [N2 agrees with N1].

In percent of D3, mean over seeds: does N2 copy N1 where N1 is right more than where it is wrong?
N2 = N1's architecture, true data, CIFAR-10, 5 seeds, the full protocol. The argument picks the
table (the report titles the run by it):

  :t8   shallow CNN 1024        :t9   shallow CNN 16
  :t10  VGG11                   :t11  GoogLeNet

  python -m learnjax.main --config=configs/t8_t11_correct_vs_agree.py:t8 --workdir=/tmp/lj_runs/t8
  python -m learnjax.main --config=configs/t8_t11_correct_vs_agree.py:t11 --workdir=/tmp/lj_runs/t11

``:t8,smoke`` ... ``:t11,smoke``: the same pair on the embedded digits, 2 seeds (shallow CNNs 10
epochs; VGG11 and GoogLeNet 2 epochs on fewer images). ``:smoke`` alone is ``:t8,smoke``.

  python -m learnjax.main --config=configs/t8_t11_correct_vs_agree.py:t9,smoke --workdir=/tmp/lj_runs/t9s
"""

from learnjax.config import base_config, make_smoke

TABLES = {"t8": "shallow_cnn_1024", "t9": "shallow_cnn_16", "t10": "vgg11", "t11": "googlenet"}
DEEP = ("vgg11", "googlenet")


def get_config(arg=None):
  parts = [p.strip() for p in (arg or "t8").split(",") if p.strip()]
  smoke = "smoke" in parts
  tables = [p for p in parts if p != "smoke"] or ["t8"]
  if len(tables) != 1 or tables[0] not in TABLES or parts.count("smoke") > 1:
    raise ValueError(f"unknown config argument {arg!r}; choose one of {', '.join(TABLES)}, "
                     "each optionally followed by ',smoke' (e.g. t9,smoke)")
  table = tables[0]
  config = base_config()
  config.experiment = table.upper()
  config.data.name = "cifar10"
  config.data.variant = "true"
  config.n1.model = TABLES[table]
  config.n2.model = "same"
  if smoke:
    if TABLES[table] in DEEP:
      make_smoke(config, max_epochs=2, sizes=(128, 128, 100))
    else:
      make_smoke(config)
  return config
