"""The one error type for bad input, and its usage-error flavour."""
from __future__ import annotations

import os


class ReindexError(ValueError):
    """Bad input: the message names the file, the line or position, and the fix.

    >>> str(ReindexError("duplicate token 'the'", path="v.txt", line=7, hint="remove one"))
    "v.txt:7: duplicate token 'the' (remove one)"
    """

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        path: str | os.PathLike | None = None,
        line: int | None = None,
        position: str | int | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.path = None if path is None else os.fspath(path)
        self.line = line
        self.position = position
        self.hint = hint
        super().__init__(self._format())

    def _format(self) -> str:
        where = ""
        if self.path is not None:
            where = self.path
            if self.line is not None:
                where += f":{self.line}"
            if self.position is not None:
                where += f": at {self.position}"
            where += ": "
        elif self.position is not None:
            where = f"at {self.position}: "
        text = where + self.message
        if self.hint:
            text += f" ({self.hint})"
        # One line, always: a token with a newline in it must not break the message.
        return text.replace("\r", "\\r").replace("\n", "\\n")


class ReindexWarning(UserWarning):
    """A surprise in the input that still gives a correct result (e.g. a header count that disagrees)."""


class UsageError(ReindexError):
    """The command line asks for something that cannot be done (exit code 2)."""

    exit_code = 2
