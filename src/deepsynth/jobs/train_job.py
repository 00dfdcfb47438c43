"""The training job: runs the training config its record stores, resolved once at submit.

A train job's record holds ``{"name": NAME, "training": {...}}``: the flat mapping of the
resolved TrainingConfig (``deepsynth.config.to_dict``), every path already inside the data
root. Records written before that held ``{"name": NAME, "options": {...}}``, the raw REST
body with names; they are resolved through the workspace when they run.

This module is the one place that reads the training config's attributes for the job.
"""

from __future__ import annotations

from collections.abc import Callable

from deepsynth.config import to_dict
from deepsynth.config.spec import hub_dataset_id
from deepsynth.jobs.kind import JobContext, JobFunction, JobKind, Touched
from deepsynth.jobs.state import JobRecord
from deepsynth.workspace import Workspace

TRAINING_KEY = "training"  # marks a record of a resolved config (older ones: "options")


def train_record(config, name: str) -> dict:
    """What a train job's record stores of a resolved TrainingConfig."""
    return {"name": name, TRAINING_KEY: to_dict(config)}


def stored_training(workspace: Workspace, config: dict) -> dict:
    """The flat mapping of the resolved config a record asks for (an older record's raw
    options resolved now, through the workspace)."""
    from deepsynth.training.request import resolve_training

    if isinstance(config.get(TRAINING_KEY), dict):
        return dict(config[TRAINING_KEY])
    return to_dict(resolve_training(dict(config.get("options") or {}), workspace,
                                    config.get("name")))


def _reads(workspace: Workspace) -> Callable[[JobRecord], Touched]:
    def reads(record: JobRecord) -> Touched:
        values = record.config.get(TRAINING_KEY)
        if not isinstance(values, dict):  # an older record: the names as given
            values = record.config.get("options") or {}
        found = {("dataset", workspace.name_in(workspace.datasets, values.get("dataset"))),
                 ("model", workspace.name_in(workspace.models, values.get("model")))}
        return {(what, name) for what, name in found if name}
    return reads


def _writes(record: JobRecord) -> Touched:
    return {("model", record.name)} if record.name else set()


def _train(workspace: Workspace, hub) -> JobFunction:
    def run(config: dict, context: JobContext) -> dict:
        from deepsynth.config.training import train_command
        from deepsynth.models.export import push_trained_model
        from deepsynth.training.loop import train
        from deepsynth.training.request import resolve_training

        values = stored_training(workspace, config)
        training = resolve_training(values)
        run_folder = workspace.run_folder(config["name"], "name")
        chat = training.task.kind == "chat"
        token = context.secrets.get("hf_token")
        # A Hub dataset is downloaded for this run only: the record keeps hf:ORG/NAME.
        local = {}
        for field, value, as_chat in (("dataset", training.task.dataset, chat),
                                      ("eval_dataset", training.evaluation.eval_dataset, True)):
            if value and hub_dataset_id(value):
                local[field] = str(workspace.download_training_data(
                    value, as_chat, hub(token, "dataset"), context.log))
        if context.resume and run_folder.checkpoints():
            local["resume_from_checkpoint"] = "latest"
        if local:
            training = resolve_training({**values, **local})
        result = train(training, progress=context.progress, should_stop=context.should_stop,
                       root=workspace.root, echo=context.log, journal=context.log)
        outcome = {"status": "stopped" if result.status == "stopped" else "completed",
                   "model": config["name"], "training_status": result.status,
                   "step": result.step, "metrics": result.metrics,
                   "command": train_command(training)}
        if result.final_model and training.hub.push_to_hub:
            context.log(f"pushing the final model to {training.hub.hub_model_id}")
            outcome["hub"] = push_trained_model(
                result.final_model, training.hub.hub_model_id, training.hub.public,
                context.folder / "export", hub(token, "model"), workspace.root)
        return outcome
    return run


def train_kind(workspace: Workspace, hub) -> JobKind:
    return JobKind("train", "gpu", "accelerator", _train(workspace, hub),
                   reads=_reads(workspace), writes=_writes)
