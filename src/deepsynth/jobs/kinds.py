"""The kinds of jobs: plain functions over the library (generation, training, evaluation),
each taking its config mapping and a JobContext. Outputs go under the data root by name."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from deepsynth.config import GenerationConfig, RenderConfig, SourceConfig, from_dict
from deepsynth.config.training import train_command, training_config
from deepsynth.config.spec import hub_dataset_id, hub_repo_id
from deepsynth.errors import ConfigError, DeepSynthError
from deepsynth.jobs.manager import JobContext, JobFunction
from deepsynth.paths import datasets_dir, models_dir

HubFactory = Callable[[str | None, str], object]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def check_name(field: str, name: str) -> str:
    """Output and input names are single folder names under the data root: no paths."""
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise ConfigError(field, "must be a name of letters, digits, '.', '_' or '-' (no "
                          f"slashes, at most 100 characters); got {name!r}")
    return name


def generation_config(root: Path, name: str, body: dict) -> GenerationConfig:
    """A generation request (flat: source, field mapping, render options...) as config."""
    source_fields = set(SourceConfig.__dataclass_fields__)
    render_fields = set(RenderConfig.__dataclass_fields__)
    top = {k: v for k, v in body.items() if k not in source_fields | render_fields}
    return from_dict(GenerationConfig, {
        **top, "out": str(datasets_dir(root) / check_name("name", name)),
        "source": {k: v for k, v in body.items() if k in source_fields},
        "render": {k: v for k, v in body.items() if k in render_fields}})


def real_hub(token: str | None, repo_type: str):
    from deepsynth.hub.upload import HfHubClient

    return HfHubClient(token=token, repo_type=repo_type)


def _generate(root: Path, hub: HubFactory) -> JobFunction:
    def run(config: dict, context: JobContext) -> dict:
        from deepsynth.data.generate import generate_dataset

        generation = generation_config(root, config["name"], config["options"])
        token = context.secrets.get("hf_token")
        client = hub(token, "dataset") if generation.push_to_hub else None
        result = generate_dataset(generation, progress=context.progress,
                                  should_stop=context.should_stop, hub_client=client)
        context.log(f"generation {result.status}: {result.rows}")
        return {"status": "stopped" if result.status == "stopped" else "completed",
                "dataset": config["name"], "rows": result.rows, "counts": result.totals,
                "hub_error": result.hub_error}
    return run


def checkpoint_folder(root: Path, run_name: str, value: str) -> str:
    """A request's ``resume_from_checkpoint``, confined to the models folder: ``latest`` (the
    run's newest), ``step-N`` (one of the run's checkpoints) or ``MODEL/step-N`` (another
    run's). Returns the folder to load, or ``latest``."""
    from deepsynth.training.checkpoint import list_checkpoints

    field = "resume_from_checkpoint"
    run, _, step = value.rpartition("/") if isinstance(value, str) else ("", "", "")
    run = check_name(field, run) if run else run_name
    if value == "latest":
        if not list_checkpoints(models_dir(root) / run_name):
            raise ConfigError(field, f"model {run_name!r} has no checkpoint yet",
                              "latest (when the run has one), step-N or MODEL/step-N")
        return "latest"
    found = {p.name: p for p in list_checkpoints(models_dir(root) / run)}
    if not isinstance(value, str) or step not in found:
        raise ConfigError(field, f"no checkpoint {value!r}; {run!r} has "
                          f"{', '.join(found) or 'none'}", "latest, step-N or MODEL/step-N")
    return str(found[step])


def training_dataset(root: Path, value: str, generic: bool, hub: HubFactory,
                     token: str | None, log: Callable[[str], None]) -> Path:
    """What to train on: a generated dataset by name (a chat file under the data root for
    the generic trainer), or a dataset on the Hub, downloaded (only the missing files on a
    re-run) under ``cache/hub-datasets``: a DeepSynth dataset, or a chat JSONL."""
    from deepsynth.chat.data import chat_file_in

    repo = hub_dataset_id(value)
    if repo is None:
        if generic:
            return data_root_path(root, value, "dataset")
        return datasets_dir(root) / check_name("dataset", value)
    folder = root / "cache" / "hub-datasets" / repo.replace("/", "--")
    log(f"downloading the Hub dataset {repo}")
    hub(token, "dataset").download(repo, folder)
    if generic:
        return chat_file_in(folder)
    if not (folder / "deepsynth-manifest.json").exists():
        raise DeepSynthError(f"the Hub dataset {repo} was not made by DeepSynth (no "
                             "deepsynth-manifest.json); generate it with deepsynth generate "
                             "--source hf:" + repo)
    return folder


def model_spec(root: Path, value, generic: bool) -> str:
    """A request's ``model`` as ``load_model`` takes it: a preset, a model trained here (by
    name: its ``final`` folder), or for the chat trainer a Hub id. Never a server path."""
    from deepsynth.models.registry import MODEL_PRESETS

    if value in MODEL_PRESETS:
        return value
    if isinstance(value, str) and generic and not hub_repo_id(value):
        return value
    if isinstance(value, str) and _NAME.match(value) and ".." not in value and \
            (models_dir(root) / value / "final").is_dir():
        return str(models_dir(root) / value / "final")
    raise ConfigError("model", f"must be a preset ({', '.join(MODEL_PRESETS)}), the name of a "
                      f"model trained here{', or a Hub id ORG/NAME' if generic else ''}; got "
                      f"{value!r}", "a preset or a trained model's name")


def data_root_path(root: Path, value: str, field: str) -> Path:
    """A file named by a request: relative, inside the data root (no escapes)."""
    if not isinstance(value, str) or not value or "\x00" in value or Path(value).is_absolute():
        raise ConfigError(field, f"must be a path inside the data root (for example "
                          f"uploads/chat.jsonl); got {value!r}", "a relative path")
    candidate = (Path(root) / value).resolve()
    if not candidate.is_relative_to(Path(root).resolve()):
        raise ConfigError(field, f"must be a path inside the data root (for example "
                          f"uploads/chat.jsonl); got {value!r}", "a relative path")
    return candidate


def _train(root: Path, hub: HubFactory) -> JobFunction:
    def run(config: dict, context: JobContext) -> dict:
        from deepsynth.models.export import push_trained_model
        from deepsynth.training.checkpoint import list_checkpoints
        from deepsynth.training.loop import train

        options = dict(config["options"])
        out = models_dir(root) / check_name("name", config["name"])
        options["out"] = str(out)
        generic = options.get("trainer_type") == "generic"
        if options.get("model") is not None:
            options["model"] = model_spec(root, options["model"], generic)
        token = context.secrets.get("hf_token")
        options["dataset"] = str(training_dataset(root, options["dataset"], generic, hub,
                                                  token, context.log))
        if options.get("eval_dataset"):
            options["eval_dataset"] = str(training_dataset(
                root, options["eval_dataset"], True, hub, token, context.log))
        if options.get("resume_from_checkpoint"):
            options["resume_from_checkpoint"] = checkpoint_folder(
                root, config["name"], options["resume_from_checkpoint"])
        if context.resume and list_checkpoints(out):
            options["resume_from_checkpoint"] = "latest"
        training = training_config(options)
        result = train(training, progress=context.progress, should_stop=context.should_stop,
                       root=root, echo=context.log)
        outcome = {"status": "stopped" if result.status == "stopped" else "completed",
                   "model": config["name"], "training_status": result.status,
                   "step": result.step, "metrics": result.metrics,
                   "command": train_command(training)}
        if result.final_model and training.push_to_hub:
            context.log(f"pushing the final model to {training.hub_model_id}")
            outcome["hub"] = push_trained_model(
                result.final_model, training.hub_model_id, training.public,
                context.folder / "export", hub(context.secrets.get("hf_token"), "model"), root)
        return outcome
    return run


def _evaluate(root: Path) -> JobFunction:
    def run(config: dict, context: JobContext) -> dict:
        from deepsynth.evaluation.evaluate import evaluate_model

        options = config["options"]
        results = evaluate_model(
            str(models_dir(root) / check_name("model", options["model"]) / "final"),
            str(datasets_dir(root) / check_name("dataset", options["dataset"])),
            options.get("split"), options.get("max_samples"), root=root,
            out=str(context.folder / "evaluation"))
        return {"status": "completed", **results}
    return run


def _push_dataset(root: Path, hub: HubFactory) -> JobFunction:
    def run(config: dict, context: JobContext) -> dict:
        from deepsynth.hub.publish import push_dataset

        options = config["options"]
        folder = datasets_dir(root) / check_name("name", config["name"])
        client = hub(context.secrets.get("hf_token"), "dataset")
        report = push_dataset(folder, options["repo_id"], client,
                              private=not options.get("public", False))
        context.log(f"pushed {len(report['uploaded'])} files to {options['repo_id']}")
        return {"status": "completed", **report}
    return run


def _push_model(root: Path, hub: HubFactory) -> JobFunction:
    def run(config: dict, context: JobContext) -> dict:
        from deepsynth.models.export import export_model

        options = config["options"]
        run_dir = models_dir(root) / check_name("name", config["name"])
        report = export_model(str(run_dir / "final"), str(context.folder / "export"),
                              merge=options.get("merge", True),
                              push_to_hub=options["repo_id"],
                              public=options.get("public", False),
                              hub_client=hub(context.secrets.get("hf_token"), "model"),
                              root=root)
        return {"status": "completed", **report}
    return run


def job_functions(root: Path, hub: HubFactory = real_hub) -> dict[str, JobFunction]:
    """Every job kind; ``hub`` makes Hub clients (a test double in tests)."""
    return {"generate": _generate(root, hub), "train": _train(root, hub),
            "evaluate": _evaluate(root), "push_dataset": _push_dataset(root, hub),
            "push_model": _push_model(root, hub)}
