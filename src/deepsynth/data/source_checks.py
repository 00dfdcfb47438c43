"""A generation request's source checked before the request is accepted, as far as that is
cheap: a local or built-in source's splits and first row, a preset's published splits.

These are the checks ``generate_dataset`` makes before any work (:func:`plan_splits`,
:func:`first_row`: the mapping on the first readable row, and under on_error fail that row
itself), run at submit so that a request that would fail is refused naming the field
(``source.splits``, ``source.text_field``...) instead of becoming a queued job that fails.
A Hub source's splits and columns need the network: they are checked when the job starts.
"""

from __future__ import annotations

import itertools

from deepsynth.config import SourceConfig
from deepsynth.data.records import first_row
from deepsynth.data.sources import LocalSource, Source, SourceError, open_source
from deepsynth.data.split_plan import SplitPlan, plan_splits
from deepsynth.errors import BadRow, ConfigError

FIRST_ROWS = 50  # rows looked at for a readable one (with on_error skip) before giving up


class _Listed:
    """A source reduced to the split names it is known to have (what plan_splits reads)."""

    def __init__(self, names: list[str]):
        self.names = names

    def splits(self) -> list[str]:
        return self.names


def check_source(config: SourceConfig) -> None:
    """Refuse a source, a split or a field mapping that the generation would refuse."""
    try:
        source = open_source(config.source)
    except SourceError as exc:
        raise ConfigError("source", str(exc), "a readable corpus") from None
    known = source.known_splits()
    if known is None:
        return
    try:
        plans = plan_splits(_Listed(known), config)
    except ConfigError as exc:
        raise ConfigError(f"source.{exc.field}", exc.message, exc.allowed) from None
    if plans and isinstance(source, LocalSource):
        _check_first_row(source, plans[0], config)


def _check_first_row(source: Source, plan: SplitPlan, config: SourceConfig) -> None:
    """The generation's first-row check (:func:`first_row`) over the first rows: the
    mapping against the first readable row's columns, and under on_error fail the first
    row itself (unreadable, or a field missing, null or not text: the generation would
    stop at it)."""
    mapping = source.fields.override(config.text_field, config.summary_field, config.id_field)
    looked = 0

    def counted():
        nonlocal looked
        for raw in itertools.islice(source.rows(plan.source_split), FIRST_ROWS):
            looked += 1
            yield raw

    try:
        first_row(counted(), mapping, config.on_error)
    except ConfigError as exc:
        raise ConfigError(f"source.{exc.field}", exc.message, exc.allowed) from None
    except BadRow as exc:  # the row the generation would stop at
        raise ConfigError("source", f"{exc} (set on_error to skip to skip bad rows)",
                          "a readable corpus, or on_error skip") from None
    except SourceError as exc:
        raise ConfigError("source", str(exc), "a readable corpus") from None
    if not looked:
        raise ConfigError("source", f"{source.name}: split {plan.source_split!r} has no rows",
                          "a corpus with rows")
