"""The data root as one object: every name and path a request or command may use, confined.

A data root holds ``datasets/``, ``models/`` (one run folder per training run), ``jobs/``,
``uploads/``, ``exports/`` (standalone copies of trained models), ``cache/`` (the tiny
models, Hub downloads) and ``run/`` (the start scripts' pid and log files). The root is
``DEEPSYNTH_DATA_ROOT``, else ``./data``; every service and command that shares it sees the
same datasets, models and jobs.

Names (a dataset, a model, a job's output) are single folder names; files named by a request
(a chat file, an uploaded source, a tokenizer) are relative paths that resolve inside the
root. Every rule about what a request may name lives here, so the web layer, the CLI and the
jobs share it.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

from deepsynth.errors import ConfigError, ConfigRefused, NotFound

# A JSON Schema pattern too (the OpenAPI document states it): no "..", matched whole.
NAME_PATTERN = r"^(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
_NAME = re.compile(NAME_PATTERN)
NAME_RULE = ("must be a name of letters, digits, '.', '_' or '-' (no slashes, at most 100 "
             "characters)")
SOURCE_SCHEMES = ("builtin:", "hf:", "HF::", "preset:")
MAX_PATH_CHARS = 1024
# Dataset names the REST API uses for something else (GET /api/datasets/presets lists the
# source presets), so a dataset of that name could be made but never read there.
RESERVED_DATASET_NAMES = ("presets",)
_UPLOAD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}$")


def data_root() -> Path:
    return Path(os.environ.get("DEEPSYNTH_DATA_ROOT", "./data")).expanduser()


def check_name(field: str, name: object) -> str:
    """Output and input names are single folder names under the data root: no paths."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(field, f"{NAME_RULE}; got {name!r}", "a name")
    return name


class Workspace:
    """One data root and the rules for naming things in it."""

    def __init__(self, root: Path | str | None = None):
        self.root = Path(root).expanduser() if root is not None else data_root()

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    def check_writable(self) -> None:
        """Refuse, with the uid to ``chown`` the root to, a data root this process cannot
        write: a bind-mounted host folder owned by another uid would otherwise end in a
        PermissionError traceback from whichever job writes first."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".write-check-"):
                pass
        except OSError as exc:
            uid, gid = os.getuid(), os.getgid()
            raise ConfigError(
                "data_root", f"{self.root} is not writable by this process, uid {uid} "
                f"({exc.strerror or exc}): `chown -R {uid}:{gid}` it (for a folder mounted "
                "into a container, the host folder: the images run as uid 1000), or choose "
                "another folder with DEEPSYNTH_DATA_ROOT",
                f"a folder uid {uid} can write") from None

    # The layout.
    @property
    def datasets(self) -> Path:
        return self.root / "datasets"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def jobs(self) -> Path:
        return self.root / "jobs"

    @property
    def uploads(self) -> Path:
        return self.root / "uploads"

    @property
    def exports(self) -> Path:
        return self.root / "exports"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def run(self) -> Path:
        return self.root / "run"

    def hub_download(self, repo_id: str) -> Path:
        """Where a Hub dataset ``ORG/NAME`` is downloaded (re-runs fetch only what is new)."""
        return self.cache / "hub-datasets" / repo_id.replace("/", "--")

    # Names.
    def dataset_folder(self, name: object, field: str = "dataset") -> Path:
        """``datasets/NAME``, whether or not it exists yet."""
        return self.datasets / check_name(field, name)

    def new_dataset_folder(self, name: object, field: str = "name") -> Path:
        """``datasets/NAME`` for a dataset about to be generated: a name the API reserves is
        refused (valid as a name, refused by this server: a ConfigRefused)."""
        folder = self.dataset_folder(name, field)
        if name in RESERVED_DATASET_NAMES:
            raise ConfigRefused(field, f"{name!r} is reserved (the API lists the source "
                                f"presets there)", f"a name other than {', '.join(RESERVED_DATASET_NAMES)}")
        return folder

    def dataset(self, name: object, field: str = "dataset") -> Path:
        """An existing generated dataset (it has a manifest), else NotFound."""
        from deepsynth.data.manifest import is_dataset

        folder = self.dataset_folder(name, field)
        if not is_dataset(folder):
            raise NotFound(f"no dataset {name!r}")
        return folder

    def run_folder(self, name: object, field: str = "model"):
        """The RunFolder of ``models/NAME``, whether or not it exists yet."""
        from deepsynth.training.run_folder import RunFolder

        return RunFolder(self.models / check_name(field, name))

    def existing_run(self, name: object, field: str = "model"):
        run = self.run_folder(name, field)
        if not run.path.is_dir():
            raise NotFound(f"no model {name!r}", field)
        return run

    def trained_model(self, name: object, field: str = "model") -> Path:
        """The final model of a finished run, by the run's name."""
        run = self.existing_run(name, field)
        if not run.final.is_dir():
            raise NotFound(f"model {name!r} has no final weights yet")
        return run.final

    def export_folder(self, name: object, field: str = "name") -> Path:
        """``exports/NAME``: where a trained model's standalone export goes (by the run's
        name, never a path a request gives)."""
        return self.exports / check_name(field, name)

    def install_export(self, built: Path, name: str) -> Path:
        """Move a finished export into ``exports/NAME``, replacing an earlier one whole (a
        reader never sees a merged export mixed with an unmerged one's files)."""
        target = self.export_folder(name)
        self.exports.mkdir(parents=True, exist_ok=True)
        if target.exists() or target.is_symlink():
            self.remove(target)
        built.rename(target)
        return target

    def name_in(self, folder: Path, value: object) -> str | None:
        """Which entry of ``folder`` (``datasets/``, ``models/``) a request or a resolved
        config names: a plain name as it is, a path inside the folder by its first part
        (``models/NAME/final`` is ``NAME``); anything else (a Hub id, a file) is None."""
        if not isinstance(value, str) or not value:
            return None
        if _NAME.fullmatch(value):
            return value
        for path, base in ((Path(value), folder), (Path(value).resolve(), folder.resolve())):
            if path.is_relative_to(base) and path != base:
                return path.relative_to(base).parts[0]
        return None

    # Files named by a request.
    def file(self, value: object, field: str) -> Path:
        """A path named by a request: relative, and inside the data root once resolved. A
        string that cannot name a file there (absolute, escaping the root, too long, empty)
        names nothing: NotFound, as for a file that does not exist."""
        example = "for example uploads/chat.jsonl"
        if not isinstance(value, str) or "\x00" in value:
            raise ConfigError(field, f"must be a path inside the data root ({example}); got "
                              f"{value!r}", "a relative path")
        inside = f"a relative path inside the data root ({example})"
        if len(value) > MAX_PATH_CHARS or any(len(part.encode(errors="replace")) > 255
                                              for part in Path(value).parts):
            raise NotFound(f"{field} is too long for a path ({len(value)} characters)", field,
                           f"at most {MAX_PATH_CHARS} characters, 255 bytes a part")
        candidate = (self.root / value).resolve()
        if not value or Path(value).is_absolute() or not candidate.is_relative_to(
                self.root.resolve()):
            raise NotFound(f"{field} must be a path inside the data root ({example}); got "
                           f"{value!r}", field, inside)
        return candidate

    def existing_file(self, value: object, field: str) -> Path:
        path = self.file(value, field)
        if not path.is_file():
            raise NotFound(f"no file {value!r} under the data root", field)
        return path

    def render_files(self, options: dict) -> dict:
        """A render request's server files, confined: ``tokenizer`` a file under the data
        root; ``font`` a bundled font's name or a font file under the data root (checked
        now: an unknown font is a 404 at submit, never a failed job)."""
        from deepsynth.render.fonts import BUNDLED_FONTS, FONT_SUFFIXES, resolve_font

        options = dict(options)
        if options.get("tokenizer") is not None:
            tokenizer = self.file(options["tokenizer"], "tokenizer")
            if not (tokenizer.is_file() or (tokenizer / "tokenizer.json").is_file()):
                raise NotFound(f"no tokenizer {options['tokenizer']!r} under the data root",
                               "tokenizer", "a tokenizer.json file or its folder")
            options["tokenizer"] = str(tokenizer)
        def confined(font: object, name: str) -> object:
            if font is None or font in BUNDLED_FONTS:
                return font
            if not isinstance(font, str) or not font.lower().endswith(tuple(FONT_SUFFIXES)):
                raise NotFound(f"no font {font!r}: a bundled font ({', '.join(BUNDLED_FONTS)}) "
                               "or a .ttf/.otf/.ttc file under the data root", name,
                               ", ".join(BUNDLED_FONTS))
            path = str(self.existing_file(font, name))
            resolve_font(path)  # a readable font file
            return path

        if "font" in options:
            options["font"] = confined(options["font"], "font")
        if isinstance(options.get("vary_fonts"), list):  # not a list: the config's 400
            options["vary_fonts"] = [confined(f, "vary_fonts") for f in options["vary_fonts"]]
        return options

    def source(self, value: object) -> str:
        """A generation request's ``source``: a scheme spec (``preset:``, ``builtin:``,
        ``hf:``, ``HF::``) or an existing file or folder under the data root."""
        from deepsynth.data.sources import SourceError, open_source

        if not isinstance(value, str):
            raise ConfigError("source", "is required (a string)", "a path under the data "
                              "root, builtin:, hf: or preset:")
        if value.startswith(SOURCE_SCHEMES):
            try:
                open_source(value)  # names the known presets; hf: must be ORG/NAME, no path
            except SourceError as exc:
                raise ConfigError("source", str(exc), "preset:NAME, builtin:NAME, "
                                  "hf:ORG/NAME[:CONFIG]") from None
            return value
        candidate = self.file(value, "source")
        if not candidate.exists():
            raise NotFound(f"no file or folder {value!r} under the data root (upload it "
                           "with POST /api/uploads)", "source", "an existing path")
        return str(candidate)

    def upload(self, filename: object) -> Path:
        """Where an uploaded corpus file goes: ``uploads/NAME``, a plain file name with a
        corpus format's extension (optionally .gz)."""
        from deepsynth.data.file_formats import FORMATS

        suffixes = tuple(FORMATS) + tuple(ext + ".gz" for ext in FORMATS)
        if not isinstance(filename, str) or Path(filename).name != filename or \
                not _UPLOAD_NAME.fullmatch(filename) or not filename.lower().endswith(suffixes):
            raise ConfigRefused("file", f"must be a corpus file named with letters, digits, "
                                f". _ - and one of {', '.join(sorted(FORMATS))}; got "
                                f"{filename!r}", ", ".join(sorted(FORMATS)))
        return self.uploads / filename

    def save_upload(self, filename: object, stream: BinaryIO) -> Path:
        """Write an uploaded corpus file to ``uploads/NAME``: into a temp file beside it,
        then renamed over it, so a reader sees the old file or the new one; never through a
        symlink (which could point anywhere)."""
        target = self.upload(filename)
        self.uploads.mkdir(parents=True, exist_ok=True)
        if self.uploads.is_symlink() or not self.uploads.resolve().is_relative_to(
                self.root.resolve()):
            raise ConfigError("file", "cannot be written: uploads/ is a link out of the data "
                              "root", "a plain uploads folder")
        if target.is_symlink():
            raise ConfigError("file", f"cannot replace uploads/{target.name}: it is a "
                              "symbolic link", "a plain file name")
        fd, temp = tempfile.mkstemp(dir=self.uploads, prefix=f".{target.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as handle:
                shutil.copyfileobj(stream, handle, 2**20)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temp, 0o644)
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        return target

    def remove(self, folder: Path) -> None:
        """Delete a dataset or run folder: a symbolic link is removed itself (never what it
        points to); a folder is renamed away first, so listings never see half of it."""
        if folder.is_symlink():
            folder.unlink()
            return
        doomed = folder.with_name(f".deleting-{folder.name}-{os.getpid()}")
        folder.rename(doomed)
        shutil.rmtree(doomed, ignore_errors=True)

    def scrub(self, value):
        """``value`` (a message, or JSON-like data) with the data root's absolute path
        written relative to it: responses never show where the server keeps its files."""
        if isinstance(value, str):
            for base in {str(self.root.resolve()), str(self.root.absolute())}:
                value = value.replace(base + "/", "").replace(base, ".")
            return value
        if isinstance(value, dict):
            return {key: self.scrub(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.scrub(item) for item in value]
        return value

    # What a training request names.
    def model_spec(self, value: object, chat: bool) -> str:
        """A request's ``model`` as ``load_model`` takes it: a preset, a ``random:`` spec
        (checked), a model trained here (by name: its final folder), or for the chat trainer
        a Hub id. Never a server path."""
        from deepsynth.config.spec import hub_repo_id
        from deepsynth.models.random_spec import PREFIX, REAL_MODELS
        from deepsynth.models.registry import MODEL_PRESETS, preset_of

        if isinstance(value, str) and preset_of(value) is not None:
            return value
        if isinstance(value, str) and chat and not hub_repo_id(value):
            return value
        if isinstance(value, str) and _NAME.fullmatch(value) and \
                self.run_folder(value).has_final():
            return str(self.run_folder(value).final)
        if not isinstance(value, str):
            raise ConfigError("model", f"must be a string; got {value!r}", "a preset or a "
                              "trained model's name")
        random = " or ".join(f"{PREFIX}{name}[?layers=N]" for name in REAL_MODELS)
        raise NotFound(f"no model {value!r}: a preset ({', '.join(MODEL_PRESETS)}), "
                       f"{random}, the name of a model trained here"
                       f"{', or a Hub id ORG/NAME' if chat else ''}", "model",
                       f"a preset, {random} or a trained model's name")

    def checkpoint(self, run_name: str, value: object) -> str:
        """A request's ``resume_from_checkpoint``, confined to the models folder: ``latest``
        (the run's newest), ``step-N`` (one of the run's checkpoints) or ``MODEL/step-N``
        (another run's). Returns the folder to load, or ``latest``."""
        field = "resume_from_checkpoint"
        allowed = "latest, step-N or MODEL/step-N"
        if not isinstance(value, str):
            raise ConfigError(field, f"must be a string; got {value!r}", allowed)
        run, _, step = value.rpartition("/")
        if run and not _NAME.fullmatch(run):  # names no run: nothing to resume from
            raise NotFound(f"no checkpoint {value!r}: {run!r} is not a model's name", field,
                           allowed)
        run = run or run_name
        if value == "latest":
            if not self.run_folder(run_name, field).checkpoints():
                raise NotFound(f"model {run_name!r} has no checkpoint yet", field,
                               "latest (when the run has one), step-N or MODEL/step-N")
            return "latest"
        found = {p.name: p for p in self.run_folder(run, field).checkpoints()}
        if step not in found:
            raise NotFound(f"no checkpoint {value!r}; {run!r} has "
                           f"{', '.join(found) or 'none'}", field, allowed)
        return str(found[step])

    def training_data(self, value: object, chat: bool, field: str = "dataset") -> str:
        """What a training request trains on, as the config records it: a generated dataset
        by name (its folder), a chat file under the data root (the chat trainer), or
        ``hf:ORG/NAME`` (kept: the job downloads it, see :meth:`download_training_data`)."""
        from deepsynth.config.spec import hub_dataset_id

        if hub_dataset_id(value) is not None:
            return value
        if chat:
            return str(self.existing_file(value, field))
        if field != "dataset":
            raise ConfigRefused(field, "is for trainer_type generic", "null")
        if isinstance(value, str) and not _NAME.fullmatch(value):  # names no dataset here
            raise NotFound(f"no dataset {value!r}: a dataset's name, or hf:ORG/NAME", field,
                           "a dataset's name")
        return str(self.dataset(value, field))

    def download_training_data(self, value: str, chat: bool, client, log) -> Path:
        """A Hub dataset ``hf:ORG/NAME`` downloaded under ``cache/hub-datasets`` (only the
        missing files on a re-run): a DeepSynth dataset's folder, or the chat JSONL in it."""
        from deepsynth.config.spec import hub_dataset_id
        from deepsynth.data.manifest import MANIFEST_NAME, is_dataset
        from deepsynth.errors import DeepSynthError

        repo = hub_dataset_id(value)
        folder = self.hub_download(repo)
        log(f"downloading the Hub dataset {repo}")
        client.download(repo, folder)
        if chat:
            from deepsynth.chat.data import chat_file_in

            return chat_file_in(folder)
        if not is_dataset(folder):
            raise DeepSynthError(f"the Hub dataset {repo} was not made by DeepSynth (no "
                                 f"{MANIFEST_NAME}); generate it with deepsynth generate "
                                 f"--source hf:{repo}")
        return folder
