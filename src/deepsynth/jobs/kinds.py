"""The kinds of jobs: plain functions over the library (generation, training, evaluation,
Hub uploads), each taking its record's config and a JobContext, declared as JobKinds. Outputs
go under the data root by name; every name and path rule is the Workspace's.

Exports go to ``exports/NAME`` (``Workspace.export_folder``).

A job's config is ``{"name": NAME, "options": {...}}``: the request's options, already
checked by the view (a bad field is a 400, never a failed job). Training stores its resolved
config instead (see ``deepsynth.jobs.train_job``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from deepsynth.config import GenerationConfig, RenderConfig, SourceConfig, from_dict
from deepsynth.config.spec import flat_fields
from deepsynth.errors import ConfigRefused, refusing
from deepsynth.jobs.kind import JobContext, JobFunction, JobKind, Touched
from deepsynth.jobs.state import JobRecord
from deepsynth.jobs.train_job import train_kind
from deepsynth.render.legibility import dataset_warnings
from deepsynth.workspace import Workspace

HubFactory = Callable[[str | None, str], object]


def generation_config(workspace: Workspace, name: str, body: dict,
                      ray_address: str | None = None) -> GenerationConfig:
    """A generation request (flat: source, field mapping, render options...) as config;
    JSON (a REST body, or the job's stored copy of it), so its types are JSON's. Its source
    is checked as far as is cheap (splits, first row: see ``check_source``), so a request the
    generation would refuse is refused at submit, not a failed job. A request for engine
    ray runs on the service's cluster (``deepsynth serve --ray-address``)."""
    from deepsynth.data.source_checks import check_source

    source_fields = set(flat_fields(SourceConfig))
    render_fields = set(flat_fields(RenderConfig))
    top = {k: v for k, v in body.items() if k not in source_fields | render_fields}
    if body.get("engine") == "ray" and ray_address:
        top["ray_address"] = ray_address
    config = from_dict(GenerationConfig, {
        **top, "out": str(workspace.new_dataset_folder(name, "name")),
        "source": {k: v for k, v in body.items() if k in source_fields},
        "render": {k: v for k, v in body.items() if k in render_fields}}, strict=True)
    if config.qa_sample:
        _refuse_without_tesseract("qa_sample", "0")
    with refusing():  # what the source holds refuses the request, not the document
        check_source(config.source)
    if body.get("splits") == []:
        _refuse_no_splits(config.source)
    return config


def _refuse_without_tesseract(field: str, allowed: str) -> None:
    """Render QA asked for on a server without Tesseract: refused at submit, naming
    ``field``, not a failed job."""
    from deepsynth.render.ocr import tesseract_path

    if not tesseract_path():
        raise ConfigRefused(field, "needs Tesseract for render QA, which this server lacks "
                            "(apt-get install tesseract-ocr)", allowed)


def render_qa_options(body: dict) -> dict:
    """A render QA request (sample, seed) as the job's options."""
    from deepsynth.config import to_dict
    from deepsynth.config.requests import QaRequest, parse_body

    options = to_dict(parse_body(QaRequest, body))
    _refuse_without_tesseract("sample", "none on this server")
    return options


def refuse_taken_name(name: str, config: GenerationConfig) -> None:
    """A name whose dataset the generation would refuse to replace is refused at submit,
    in the request's own terms (it failed as a job, naming a server path and CLI flags).
    For a request only: a job's own folder, resumed, is not taken."""
    from deepsynth.data.output_folder import conflict
    from deepsynth.errors import OutputError

    try:
        problem = conflict(Path(config.out), config)
    except OutputError as exc:
        problem = str(exc).split(";")[0]
    if problem:
        raise ConfigRefused("name", f"{name!r} is taken: that dataset's folder {problem}; "
                            f"choose another name, or set overwrite to replace it",
                            "a name not in use, or overwrite: true")


def _refuse_no_splits(source: SourceConfig) -> None:
    """``"splits": []`` asks for nothing; read as "every split" (the config's default) it
    generated what the user had unchecked, so it is refused, naming the splits there are."""
    from deepsynth.data.sources import open_source

    known = open_source(source.source).known_splits()
    raise ConfigRefused("source.splits", "is empty: choose at least one split, or leave "
                        "splits out to generate every split",
                        ", ".join(known) if known else "one or more split names")


def real_hub(token: str | None, repo_type: str):
    from deepsynth.hub.upload import HfHubClient

    return HfHubClient(token=token, repo_type=repo_type)


def _options(record: JobRecord) -> dict:
    options = record.config.get("options")
    return options if isinstance(options, dict) else {}


def _named(what: str) -> Callable[[JobRecord], Touched]:
    """A kind whose job reads or writes the dataset or model of the job's name."""
    return lambda record: {(what, record.name)} if record.name else set()


def _evaluated(record: JobRecord) -> Touched:
    options = _options(record)
    return {(what, options[what]) for what in ("dataset", "model")
            if isinstance(options.get(what), str)}


def _generate(workspace: Workspace, hub: HubFactory, ray_address: str | None) -> JobFunction:
    def run(config: dict, context: JobContext) -> dict:
        from deepsynth.data.generate import generate_dataset

        generation = generation_config(workspace, config["name"], config["options"],
                                       ray_address)
        token = context.secrets.get("hf_token")
        client = hub(token, "dataset") if generation.push_to_hub else None
        result = generate_dataset(generation, progress=context.progress,
                                  should_stop=context.should_stop, hub_client=client)
        for shard in result.damaged_shards:
            context.log(f"damaged shard {shard} was rendered again")
        for warning in dataset_warnings(result.totals):
            context.log(f"warning: {warning['message']}")
        for count, examples in result.skipped.items():  # why rows were skipped, by count
            context.log(f"{count}: {result.totals.get(count, 0)} row(s) skipped; first in "
                        f"this run: {'; '.join(examples)}")
        context.log(f"generation {result.status}: {result.rows}")
        if result.qa is not None:
            context.log(f"render QA: CER {result.qa['cer']} over {result.qa['sample']} pages")
        return {"status": "stopped" if result.status == "stopped" else "completed",
                "dataset": config["name"], "rows": result.rows, "counts": result.totals,
                "warnings": dataset_warnings(result.totals), "hub_error": result.hub_error,
                "qa": result.qa}
    return run


def _render_qa(workspace: Workspace) -> JobFunction:
    def run(config: dict, context: JobContext) -> dict:
        from deepsynth.data.qa import run_qa

        options = config["options"]
        report = run_qa(workspace.dataset_folder(config["name"], "name"), options["sample"],
                        options["seed"])
        context.log(f"render QA: CER {report['cer']} over {report['sample']} of "
                    f"{report['of_pages']} pages")
        return {"status": "completed", "dataset": config["name"], "qa": report}
    return run


def _evaluate(workspace: Workspace) -> JobFunction:
    def run(config: dict, context: JobContext) -> dict:
        from deepsynth.evaluation.evaluate import evaluate_model

        options = config["options"]
        results = evaluate_model(
            str(workspace.run_folder(options["model"]).final),
            str(workspace.dataset_folder(options["dataset"])),
            options.get("split"), options.get("max_samples"), root=workspace.root,
            out=str(context.folder / "evaluation"))
        return {"status": "completed", **results}
    return run


def _push_dataset(workspace: Workspace, hub: HubFactory) -> JobFunction:
    def run(config: dict, context: JobContext) -> dict:
        from deepsynth.hub.publish import push_dataset

        options = config["options"]
        folder = workspace.dataset_folder(config["name"], "name")
        client = hub(context.secrets.get("hf_token"), "dataset")
        report = push_dataset(folder, options["repo_id"], client,
                              private=not options.get("public", False))
        context.log(f"pushed {len(report['uploaded'])} files to {options['repo_id']}")
        return {"status": "completed", **report}
    return run


def _push_model(workspace: Workspace, hub: HubFactory) -> JobFunction:
    def run(config: dict, context: JobContext) -> dict:
        from deepsynth.models.export import export_model

        options = config["options"]
        run_folder = workspace.run_folder(config["name"], "name")
        report = export_model(str(run_folder.final), str(context.folder / "export"),
                              merge=options.get("merge", True),
                              push_to_hub=options["repo_id"],
                              public=options.get("public", False),
                              hub_client=hub(context.secrets.get("hf_token"), "model"),
                              root=workspace.root)
        return {"status": "completed", **report}
    return run


def _export_model(workspace: Workspace) -> JobFunction:
    def run(config: dict, context: JobContext) -> dict:
        import shutil

        from deepsynth.models.export import export_model

        name = config["name"]
        built = context.folder / "export"  # same file system as exports/: a rename installs it
        shutil.rmtree(built, ignore_errors=True)  # a resumed job starts over
        report = export_model(str(workspace.run_folder(name, "name").final), str(built),
                              merge=config["options"].get("merge", True), root=workspace.root)
        folder = workspace.install_export(built, name)
        context.log(f"exported {name} ({'merged' if report['merged'] else 'as saved'}) "
                    f"to exports/{name}")
        return {"status": "completed", **report, "folder": str(folder)}
    return run


def job_kinds(workspace: Workspace | Path | str, hub: HubFactory = real_hub,
              ray_address: str | None = None) -> dict[str, JobKind]:
    """Every job kind over one data root; ``hub`` makes Hub clients (a test double in tests);
    generation jobs with engine ray run on the Ray cluster at ``ray_address``."""
    if not isinstance(workspace, Workspace):
        workspace = Workspace(workspace)
    kinds = (
        JobKind("generate", "cpu", "generate", _generate(workspace, hub, ray_address),
                writes=_named("dataset")),
        JobKind("push_dataset", "cpu", "generate", _push_dataset(workspace, hub),
                reads=_named("dataset")),
        JobKind("render_qa", "cpu", "generate", _render_qa(workspace), reads=_named("dataset")),
        train_kind(workspace, hub),
        JobKind("evaluate", "gpu", "accelerator", _evaluate(workspace), reads=_evaluated),
        JobKind("push_model", "gpu", "accelerator", _push_model(workspace, hub),
                reads=_named("model")),
        JobKind("export_model", "gpu", "accelerator", _export_model(workspace),
                reads=_named("model")),
    )
    return {kind.name: kind for kind in kinds}

