"""Errors a user can act on. Each message names the file (and line or field) and the fix."""


class DistillError(Exception):
    """Base class: the command line prints the message and exits non-zero, without a traceback."""


class DataError(DistillError):
    """Input interaction or item data that cannot be read or prepared."""


class TeacherError(DistillError):
    """Teacher artifacts that do not match the prepared dataset or cannot be read."""


class ConfigError(DistillError):
    """An unknown option or a value of the wrong type or range."""
