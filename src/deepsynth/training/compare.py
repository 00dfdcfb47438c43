"""Runs side by side: the keys where their resolved configurations differ, their curves
(training loss, evaluation loss, ROUGE) and the options a cloned run starts from."""

from __future__ import annotations

from deepsynth.config import from_dict
from deepsynth.config.training import TrainingConfig, train_options
from deepsynth.errors import ConfigError
from deepsynth.training.run_folder import RunFolder

MISSING = None  # a key one configuration lacks (an older run) reads as null
# The curves a comparison overlays: (name, where the history holds it).
CURVES = (("loss", None, "loss"), ("eval_loss", "eval", "eval_loss"),
          ("rouge1", "eval", "rouge1"), ("rougeL", "eval", "rougeL"))


def config_diff(configs: dict[str, dict]) -> list[dict]:
    """Each key whose value is not the same in every configuration (``configs``: run name to
    its resolved, flat configuration), in the first configuration's key order, then the
    keys only later ones have: ``[{"key", "values": {run: value}}]``."""
    keys: list[str] = []
    for config in configs.values():
        keys += [key for key in config if key not in keys]
    found = []
    for key in keys:
        values = {name: config.get(key, MISSING) for name, config in configs.items()}
        if len({repr(value) for value in values.values()}) > 1:
            found.append({"key": key, "values": values})
    return found


def curves(history: list[dict]) -> dict[str, list[list[float]]]:
    """A run's history as points ``[step, value]`` per curve of :data:`CURVES` (a record
    without the value, or with a non-number, is left out of that curve)."""
    found: dict[str, list[list[float]]] = {name: [] for name, _, _ in CURVES}
    for record in history:
        step = record.get("step")
        if not isinstance(step, int) or isinstance(step, bool):
            continue
        for name, section, key in CURVES:
            holder = record.get(section) if section else record
            value = holder.get(key) if isinstance(holder, dict) else None
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                found[name].append([step, value])
    return found


def compare_runs(runs: list[RunFolder]) -> dict:
    """What the comparison page shows: each run's task, base model, summary and curves, and
    the differences of their configurations (a run without a readable configuration
    compares as an empty one)."""
    configs = {run.name: run.config() or {} for run in runs}
    return {"runs": [{"name": run.name, "task": run.task(),
                      "model": configs[run.name].get("model"),
                      "summary": run.summary(), "curves": curves(run.history())}
                     for run in runs],
            "config_diff": config_diff(configs)}


def clone_options(config: dict) -> dict | None:
    """The options of a new run like the one ``config`` (a resolved configuration) records:
    what its ``deepsynth train`` command sets, without its output folder. None for a
    configuration this version cannot read back (written by another version)."""
    try:
        options = train_options(from_dict(TrainingConfig, config))
    except (ConfigError, TypeError, ValueError):
        return None
    options.pop("out", None)
    return options
