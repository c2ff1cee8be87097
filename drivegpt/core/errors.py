"""The project's user errors: bad input whose message names the file (or option) and the fix.

The CLI turns exactly these into one line on stderr and exit code 2; any other exception is a bug
and keeps its traceback. They subclass the built-in error a caller would expect (``ValueError``,
``FileNotFoundError``, ...), so library users can catch either.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input: a config, an option, a file or a dataset. The message says where and how to fix it."""


class MissingInputError(UserError, FileNotFoundError):
    """A file or directory the command needs does not exist (or holds nothing to resume)."""


class OutputExistsError(UserError, FileExistsError):
    """The output location already holds a run (resume it or choose another)."""


class TrainingError(UserError, RuntimeError):
    """Training cannot go on (e.g. a non-finite loss); the message says which setting to change."""
