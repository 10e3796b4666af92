"""Errors a user can cause: bad input, not bugs. The command lines print them as one line and exit 2.

Every class here takes its whole message as the first argument, so that an error raised in a
DataLoader worker comes back to the main process with its own type (the loader re-raises
`type(message)`); `one_line` then keeps only the original message.
"""
from __future__ import annotations


class UserError(Exception):
    """Something the user can fix: a config key, a data file, a checkpoint, a run folder in use."""


class ConfigError(UserError, ValueError):
    """A config value, profile or notebook parameter that cannot be used (the message names the key)."""


def one_line(error: BaseException) -> str:
    """The message of `error` as one line: for an error re-raised from a DataLoader worker (whose
    message holds the worker's traceback), the original error's own message."""
    text = str(error).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("Caught ") and "Traceback" in text:
        last = lines[-1]
        name = type(error).__name__
        for prefix in (f"{type(error).__module__}.{name}: ", f"{name}: "):
            if last.startswith(prefix):
                return last[len(prefix):]
        return last
    return " ".join(lines)
