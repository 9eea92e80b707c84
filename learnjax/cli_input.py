"""What the command line makes of a user's input before anything runs, and of failures after.

A config file is loaded once, by :func:`load_config_file` (``learnjax.main`` makes it the parser of
its ``--config`` flag), so that its errors are named as the file's rather than as absl's;
:func:`split_list_overrides` takes the lists of grid axes out of absl's typed parsing;
:func:`tolerant_output` keeps a console that cannot show a character from stopping a run;
:func:`one_line` shortens a library's error to one line;
:func:`os_error` finds the disk or permission error behind a failed write; and
:func:`quiet_closed_loop` and :func:`not_an_orbax_echo` keep the after-echoes of a failed orbax
write off stderr.
Each failure here is a :class:`LearnjaxError`, which ``learnjax.main`` prints as one ``error:``
line with exit code 2.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import logging
import os
import sys
import traceback

from learnjax import config as config_lib, fields, validation
from learnjax.errors import LearnjaxError


def split_list_overrides(argv: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
  """(argv without them, [('n1.batch_size', '32,64'), ...]): the overrides of the fields that
  take a list (:func:`learnjax.fields.list_fields`), which absl would refuse where the config file
  holds one integer; applied once it is loaded, and parsed into lists with the rest of the config
  (:func:`learnjax.fields.resolve`)."""
  kept, lists = [], []
  for arg in argv:
    name, sep, value = arg[len("--config."):].partition("=") if arg.startswith("--config.") \
        else ("", "", "")
    if sep and name in fields.list_fields():
      lists.append((name, value))
    else:
      kept.append(arg)
  return kept, lists


def apply_list_overrides(config, lists: list[tuple[str, str]]) -> None:
  for name, value in lists:
    config_lib.set_field(config, name, value)


def tolerant_output() -> None:
  """Makes stdout and stderr replace what their encoding cannot show (an ASCII console, say)
  instead of raising in the middle of a run."""
  for stream in (sys.stdout, sys.stderr):
    try:
      stream.reconfigure(errors="replace")
    except (AttributeError, ValueError, OSError):  # not a text stream that can be reconfigured
      pass


def load_config_file(spec: str):
  """The ConfigDict of ``path[:arg]`` (its ``get_config``); raises LearnjaxError naming the file."""
  path, _, arg = spec.partition(":")
  if not path:
    raise LearnjaxError("--config is empty; give an experiment config file (configs/*.py[:arg])")
  if not os.path.isfile(path):
    raise LearnjaxError(f"config file {path} does not exist" if not os.path.isdir(path)
                        else f"config file {path} is a folder")
  try:
    with open(path) as f:
      source = f.read()
    code = compile(source, path, "exec")
  except SyntaxError as e:
    raise LearnjaxError(f"config file {path}: syntax error at line {e.lineno}: {e.msg}") from None
  except (OSError, UnicodeDecodeError) as e:
    raise LearnjaxError(f"cannot read config file {path}: {e}") from None
  module = importlib.util.module_from_spec(importlib.util.spec_from_loader("_learnjax_config", None))
  module.__file__ = path
  # Listed while it runs: a class defined in the file (a Flax module, any dataclass) looks its
  # module up in sys.modules.
  sys.modules[module.__name__] = module
  try:
    exec(code, module.__dict__)  # noqa: S102  the user's own config file
  except Exception as e:  # noqa: BLE001
    raise LearnjaxError(f"config file {path} failed while loading: {type(e).__name__}: "
                        f"{one_line(str(e))}") from None
  finally:
    sys.modules.pop(module.__name__, None)
  get_config = getattr(module, "get_config", None)
  if not callable(get_config):
    raise LearnjaxError(
        f"config file {path} defines no get_config(); it must define get_config(arg=None) "
        "returning an ml_collections.ConfigDict (start from learnjax.config.base_config())")
  try:
    config = get_config(arg) if arg else get_config()
  except Exception as e:  # noqa: BLE001
    call = f"get_config({arg!r})" if arg else "get_config()"
    raise LearnjaxError(f"config file {path}: {call} raised {type(e).__name__}: "
                        f"{one_line(str(e))}") from None
  try:
    validation.check_structure(config)  # values are checked once the overrides are applied
  except LearnjaxError as e:
    raise LearnjaxError(f"config file {path}: {e}") from None
  return config


def one_line(message: str) -> str:
  """The gist of a config error that may carry a traceback or escaped newlines."""
  message = message.replace("\\'", "'").replace("\\n", "\n").replace('"', "").strip()
  if len(message) > 1 and message[0] == message[-1] == "'":
    message = message[1:-1]
  lines = [line.strip() for line in message.splitlines() if line.strip()]
  if any(line.startswith("Traceback") for line in lines):
    head = lines[0].rstrip(":")
    return f"{head}: {lines[-1]}"
  return " ".join(lines)


def os_error(error: BaseException) -> str | None:
  """'No space left on device: PATH' if an OSError (or its text) caused ``error``, else None."""
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if isinstance(error, OSError) and error.errno in (
        errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO):
      where = f": {error.filename}" if error.filename else ""
      return f"{error.strerror or error}{where}"
    text = str(error)
    for code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS):
      if os.strerror(code) in text:  # libraries that re-raise an OSError as text
        return os.strerror(code)
    error = error.__cause__ or error.__context__
  return None


@contextlib.contextmanager
def interruptible(command: str, kept: str = "nothing partial was written"):
  """Ctrl-C in ``command``: one ``error:`` line and exit code 130, no traceback. Every file
  learnjax writes appears whole or not at all, so nothing partial is left."""
  try:
    yield
  except KeyboardInterrupt:
    print(f"error: {command} interrupted; {kept}", file=sys.stderr, flush=True)
    sys.exit(130)


def quiet_closed_loop(unraisable, _default=sys.unraisablehook):
  """After a failed orbax write, tensorstore still reports completions to orbax's closed event
  loop, and Python prints each 'Event loop is closed' through this hook; the failure itself is
  reported as one error line. Everything else is printed as usual."""
  value = unraisable.exc_value
  if isinstance(value, RuntimeError) and str(value) == "Event loop is closed":
    return
  _default(unraisable)


def not_an_orbax_echo(record: logging.LogRecord) -> bool:
  """A log filter: False for the echoes of a failed orbax write, which the command line reports
  as one error line. orbax logs the failure with its traceback from its own thread; when more
  than one of its concurrent writes fails (a full disk fails them all), asyncio logs each later
  failure as 'Task exception was never retrieved', with its traceback, whenever the task is
  collected. True for everything else."""
  if record.levelno < logging.ERROR:
    return True
  if "/orbax/" in record.pathname:
    return False
  if record.name != "asyncio":
    return True
  frames = traceback.extract_tb(record.exc_info[2]) if record.exc_info and record.exc_info[2] else []
  return not ("/orbax/" in record.getMessage() or any("/orbax/" in f.filename for f in frames))
