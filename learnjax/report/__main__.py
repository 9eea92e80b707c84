"""``python -m learnjax.report --workdir=DIR``: see :mod:`learnjax.report`."""

from learnjax.cli_input import interruptible

if __name__ == "__main__":
  with interruptible("the report", "no report file was left half written"):
    from absl import app

    from learnjax.report import cli
    app.run(cli.main, flags_parser=cli.parse_flags)
