"""A training request resolved once into a complete TrainingConfig.

The CLI, the REST view and the training job all call :func:`resolve_training`. With a
workspace, the request names things in the data root (REST: a dataset by name, a chat file
under the root, a model trained here, a checkpoint as ``latest``/``step-N``/``MODEL/step-N``,
and the run by ``name``); without one, it gives paths (the CLI). Either way the result has
every preset value filled in, so it is the whole run: what the job stores and runs, what
the run folder records as its config and what ``train_command`` is derived from. What it
names is checked as far as is cheap (``check_data``: the dataset's splits, the prompt's
length), so the CLI and the REST view refuse a run that would fail before any work.
"""

from __future__ import annotations

from typing import Any

from deepsynth.config.training import TrainingConfig, task_kind, training_config
from deepsynth.config.training_checks import check_data
from deepsynth.errors import ConfigError, refusing
from deepsynth.workspace import Workspace, check_name


def resolve_training(values: dict[str, Any], workspace: Workspace | None = None,
                     name: str | None = None) -> TrainingConfig:
    """``values``: flat fields (CLI flags given, a REST body without ``name``). With a
    ``workspace``, names are confined to it and ``name`` is the run (``models/NAME``)."""
    if workspace is None:
        config = training_config(values)
        check_data(config)
        return config
    if "out" in values:
        raise ConfigError("out", "is chosen by the server (models/NAME): give name instead",
                          "name")
    run = workspace.run_folder(check_name("name", name), "name")
    values = dict(values)
    chat = task_kind(values.get("trainer_type")) == "chat"
    values["dataset"] = workspace.training_data(values.get("dataset"), chat)
    if values.get("eval_dataset") is not None:
        values["eval_dataset"] = workspace.training_data(values["eval_dataset"], chat,
                                                         "eval_dataset")
    if values.get("model") is not None:
        values["model"] = workspace.model_spec(values["model"], chat)
    if values.get("resume_from_checkpoint") is not None:
        values["resume_from_checkpoint"] = workspace.checkpoint(
            run.name, values["resume_from_checkpoint"])
    config = training_config({**values, "out": str(run.path)}, strict=True)  # JSON
    with refusing():  # what the dataset and the model hold refuse it, not the document
        check_data(config)
    return config
