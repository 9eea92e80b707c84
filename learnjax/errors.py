"""The one exception type learnjax raises for bad input.

The command line turns a :class:`LearnjaxError` into a single ``error: ...`` line and a non-zero
exit; anything else is a bug and keeps its traceback.
"""


class LearnjaxError(Exception):
  """Bad input or an environment problem the user can fix; the message says how."""


class ArgumentError(LearnjaxError, ValueError):
  """A bad argument to learnjax's Python API: a ValueError, as Python callers expect, and a
  LearnjaxError, as the command line reports it."""
