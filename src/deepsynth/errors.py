"""Errors a user can cause. The CLI prints them as one line; the web layer returns them as 4xx.

Anything else that escapes is a bug in DeepSynth and is reported as such.
"""

import contextlib


class DeepSynthError(Exception):
    """A problem with the user's input or environment, with a message that says what to do."""


class ConfigError(DeepSynthError, ValueError):
    """A configuration value is wrong: names the field and what is allowed."""

    def __init__(self, field: str, message: str, allowed: str | None = None):
        self.field = field
        self.message = message
        self.allowed = allowed  # what is allowed, shortly ("0-1", "lora, dora"), when known
        super().__init__(f"{field} {message}")


class ConfigRefused(ConfigError):
    """Values each allowed by their field, refused together (a rule between fields, such as
    a margin that leaves no room on the page) or by this server (HTTP 422)."""


@contextlib.contextmanager
def refusing():
    """Inside, a ConfigError is a ConfigRefused: for checks of values already valid one by
    one (a config's rules between fields, its source's or dataset's content)."""
    try:
        yield
    except ConfigRefused:
        raise
    except ConfigError as exc:
        raise ConfigRefused(exc.field, exc.message, exc.allowed) from None


class NotFound(DeepSynthError):
    """Something a request or command names does not exist (HTTP 404); ``field``: the
    request's field that names it, when it is one, and ``allowed`` what it may name."""

    def __init__(self, message: str, field: str | None = None, allowed: str | None = None):
        self.field, self.allowed = field, allowed
        super().__init__(message)


class SourceError(DeepSynthError):
    """A corpus could not be read: a missing file, a bad line, a missing column."""


class BadRow(SourceError):
    """One row of a corpus could not be read or mapped (``--on-error skip`` skips it)."""


class OutputError(DeepSynthError):
    """The output folder cannot be used: unwritable, locked, or holding another configuration."""


class DatasetDamaged(OutputError):
    """A finished shard of a dataset is missing or differs from its manifest entry (HTTP 409).

    ``shard`` is the file relative to the dataset folder (``data/train-00001.parquet``).
    """

    def __init__(self, dataset: str, shard: str, problem: str):
        self.dataset = dataset
        self.shard = shard
        super().__init__(f"dataset {dataset!r} is damaged: shard {shard} {problem}; re-run the "
                         f"same generate command or request to render it again")
