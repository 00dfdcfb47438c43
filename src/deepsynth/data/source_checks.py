"""A generation request's source checked before the request is accepted, as far as that is
cheap: a local or built-in source's splits and first row, a preset's published splits.

These are the checks ``generate_dataset`` makes before any work (:func:`plan_splits`,
:func:`check_mapping` on the first row), run at submit so that a request that would fail
is refused naming the field (``source.splits``, ``source.text_field``...) instead of
becoming a queued job that fails. A Hub source's splits and columns need the network: they
are checked when the job starts.
"""

from __future__ import annotations

import itertools

from deepsynth.config import SourceConfig
from deepsynth.data.records import check_mapping
from deepsynth.data.sources import LocalSource, Source, SourceError, open_source
from deepsynth.data.split_plan import SplitPlan, plan_splits
from deepsynth.errors import ConfigError

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
    """The mapping against the first readable row (rows are looked at one at a time)."""
    first, looked = None, 0
    try:
        for raw in itertools.islice(source.rows(plan.source_split), FIRST_ROWS):
            looked += 1
            if raw.fields is not None:
                first = raw
                break
            if config.on_error == "fail":  # the generation would stop at this row
                raise ConfigError("source", f"{raw.error} (set on_error to skip to skip bad "
                                  f"rows)", "a readable corpus, or on_error skip")
    except SourceError as exc:
        raise ConfigError("source", str(exc), "a readable corpus") from None
    if not looked:
        raise ConfigError("source", f"{source.name}: split {plan.source_split!r} has no rows",
                          "a corpus with rows")
    if first is None:
        return  # every row looked at is bad: the generation counts them and reads on
    mapping = source.fields.override(config.text_field, config.summary_field, config.id_field)
    try:
        check_mapping(mapping, list(first.fields))
    except ConfigError as exc:
        raise ConfigError(f"source.{exc.field}", exc.message, exc.allowed) from None
