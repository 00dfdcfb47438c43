"""The dependencies declared in pyproject.toml, for installers that run before the source is there.

    python scripts/pyproject_deps.py [--extra dev] [--pyproject FILE]
        prints the requirements, one a line (the Dockerfiles install them in a layer of their
        own, before the source is copied, so a change to the source does not reinstall them)
    python scripts/pyproject_deps.py --check [--extra dev]
        exit status 0 when this interpreter already has DeepSynth installed from this checkout
        at pyproject's version and every requirement satisfied; otherwise 1, naming what is
        missing (scripts/setup.sh then installs)

Only the standard library is needed to print; --check uses `packaging` when it is installed.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def requirements(pyproject: Path, extras: list[str]) -> list[str]:
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    found = list(project.get("dependencies", []))
    optional = project.get("optional-dependencies", {})
    for extra in extras:
        if extra not in optional:
            raise SystemExit(f"error: pyproject.toml has no extra {extra!r}; "
                             f"extras: {', '.join(sorted(optional)) or 'none'}")
        found.extend(optional[extra])
    return found


def missing(pyproject: Path, extras: list[str]) -> list[str]:
    """What this interpreter lacks of pyproject's requirements and of DeepSynth itself."""
    try:
        from importlib.metadata import PackageNotFoundError, version

        from packaging.requirements import Requirement
    except ImportError:
        return ["packaging (to compare versions)"]
    problems = []
    for line in requirements(pyproject, extras):
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        try:
            installed = version(requirement.name)
        except PackageNotFoundError:
            problems.append(f"{line} (not installed)")
            continue
        if not requirement.specifier.contains(installed, prereleases=True):
            problems.append(f"{line} (installed {installed})")
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    try:
        installed = version(project["name"])
        if installed != project["version"]:
            problems.append(f"{project['name']} {project['version']} (installed {installed})")
        else:
            import deepsynth

            source = Path(deepsynth.__file__).resolve()
            if pyproject.resolve().parent not in source.parents:
                problems.append(f"{project['name']} from {pyproject.parent} "
                                f"(installed from {source.parent})")
    except PackageNotFoundError:
        problems.append(f"{project['name']} (not installed)")
    except ImportError as error:
        problems.append(f"{project['name']} (cannot be imported: {error})")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--extra", action="append", default=[], help="optional dependency "
                        "group to include as well (repeatable)")
    parser.add_argument("--pyproject", type=Path, default=REPO / "pyproject.toml")
    parser.add_argument("--check", action="store_true", help="check this interpreter instead "
                        "of printing")
    args = parser.parse_args(argv)
    if not args.check:
        print("\n".join(requirements(args.pyproject, args.extra)))
        return 0
    problems = missing(args.pyproject, args.extra)
    for problem in problems:
        print(f"missing: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
