"""Errors a user can act on. Each message names the file (and line or field) and the fix.

A fix often tells the user to set an option. How depends on where they are: on the command line
it is a flag (`--user-col`), in the web service a form field (`form field user_col`). Messages
ask `option_hint` (and `give_hint` for files), which follow the style set by `option_style`;
the default is the command line. The style is a context variable, so concurrent requests or
tasks each keep their own.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterator, Sequence

STYLES = ("cli", "form")
_STYLE: ContextVar[str] = ContextVar("distill_option_style", default="cli")


class DistillError(Exception):
    """Base class: the command line prints the message and exits non-zero, without a traceback."""


class DataError(DistillError):
    """Input interaction or item data that cannot be read or prepared."""


class TeacherError(DistillError):
    """Teacher artifacts that do not match the prepared dataset or cannot be read."""


class ConfigError(DistillError):
    """An unknown option or a value of the wrong type or range."""


class Cancelled(DistillError):
    """The caller's `should_cancel` hook said stop. Training checks it every batch; every teacher every
    batch or block of rows (BIGRec's `hf` backend also between generation steps)."""


def raise_if_cancelled(should_cancel: Callable[[], bool] | None) -> None:
    """Raise Cancelled when the hook is given and says so (it may be costly: the caller throttles it)."""
    if should_cancel is not None and should_cancel():
        raise Cancelled("run cancelled")


class OptionError(ConfigError):
    """A prepare option that is unknown or has a bad value. `field` is the option's name, or
    "detail" when names are unknown (then `unknown` lists them)."""

    def __init__(self, field: str, message: str, unknown: Sequence[str] = ()):
        super().__init__(message)
        self.field = field
        self.unknown = list(unknown)


@contextmanager
def option_style(style: str) -> Iterator[None]:
    """Within the block, fix hints speak the language of `style`: "cli" (flags) or "form"
    (the web service's form fields and uploads)."""
    if style not in STYLES:
        raise ValueError(f"option style must be one of {', '.join(STYLES)}, got {style!r}")
    token = _STYLE.set(style)
    try:
        yield
    finally:
        _STYLE.reset(token)


def current_style() -> str:
    return _STYLE.get()


def option_hint(field: str) -> str:
    """How the user sets option `field` (e.g. "user_col"): `--user-col` on the command line,
    `form field user_col` in the web service."""
    if _STYLE.get() == "form":
        return f"form field {field}"
    return "--" + field.replace("_", "-")


def give_hint(cli: str, form: str) -> str:
    """One of two phrasings of a fix that involves files: `cli` on the command line (e.g. "give
    the items file with --items"), `form` in the web service (e.g. "upload the items file too")."""
    return form if _STYLE.get() == "form" else cli
