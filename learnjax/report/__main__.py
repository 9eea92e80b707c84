"""``python -m learnjax.report --workdir=DIR``: see :mod:`learnjax.report`."""

from absl import app

from learnjax.report import cli

if __name__ == "__main__":
  app.run(cli.main, flags_parser=cli.parse_flags)
