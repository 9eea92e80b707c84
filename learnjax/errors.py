"""The one exception type learnjax raises for bad input.

The command line turns a :class:`LearnjaxError` into a single ``error: ...`` line and a non-zero
exit; anything else is a bug and keeps its traceback.
"""


class LearnjaxError(Exception):
  """Bad input or an environment problem the user can fix; the message says how."""
