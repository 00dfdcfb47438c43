"""Which output splits a generation writes, from which source split, and in which order.

Evaluation splits come first so that training rows leaking their text can be dropped.
``validation_fraction`` carves a held-out validation split from a single training split by a
hash of each row's normalized text: deterministic, and identical texts land in the same split.
"""

from __future__ import annotations

from dataclasses import dataclass

from deepsynth.config import EVAL_SPLITS, SourceConfig
from deepsynth.data.sources import Source
from deepsynth.errors import ConfigError


@dataclass(frozen=True)
class SplitPlan:
    name: str
    source_split: str
    holdout_fraction: float | None = None
    holdout_side: bool = False  # True: keep rows inside the fraction (the validation side)

    def keeps(self, key: bytes) -> bool:
        """Whether a row with this dedup key belongs to this split."""
        if self.holdout_fraction is None:
            return True
        inside = int.from_bytes(key[:8], "big") / 2**64 < self.holdout_fraction
        return inside == self.holdout_side

    @property
    def counts_skips(self) -> bool:
        """Rows skipped before their split is known are counted once, on the training side."""
        return self.holdout_fraction is None or not self.holdout_side

    @property
    def is_eval(self) -> bool:
        return self.name in EVAL_SPLITS


def plan_splits(source: Source, config: SourceConfig) -> list[SplitPlan]:
    """The splits to write, in order; a split or fraction the source cannot give is a
    ConfigError naming the field (only ``source.splits()`` is read)."""
    available = source.splits()
    plans: list[SplitPlan] = []
    if config.validation_fraction:
        if available != ["train"]:
            raise ConfigError("validation_fraction", f"carves a validation split from a "
                              f"source with only a train split; this source has: "
                              f"{', '.join(available)}", "null (unset) for this source")
        fraction = config.validation_fraction
        plans = [SplitPlan("validation", "train", fraction, True),
                 SplitPlan("train", "train", fraction, False)]
    else:
        plans = [SplitPlan(name, name) for name in available]
    if config.splits:
        known = {p.name for p in plans}
        for name in config.splits:
            if name not in known:
                raise ConfigError("splits", f"names {name!r}, which is not a split of this "
                                  f"source; available: {', '.join(sorted(known))}",
                                  ", ".join(sorted(known)))
        plans = [p for p in plans if p.name in config.splits]
    return sorted(plans, key=lambda p: (not p.is_eval, EVAL_SPLITS.index(p.name)
                                        if p.is_eval else 0))
