"""Shell completion (Typer's `--show-completion` / `--install-completion`): the scripts it prints
for bash, zsh and fish, and a real completion in bash of commands and of `init`'s templates.

`dlcli` here is a script like the one pip writes for the `dlcli` entry point, so the program
name (which the completion scripts are keyed on) is `dlcli`, as for an installed dlcli."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dlcli.cli.config_cmds import templates
from tests.conftest import REPO

# Typer asks shellingham for the shell that started the process; with this variable set,
# `--show-completion SHELL` names it instead (Typer's own tests use it).
NAME_THE_SHELL = {"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}


@pytest.fixture(scope="module")
def bin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bin")
    script = folder / "dlcli"
    script.write_text(
        f"#!{sys.executable}\nimport sys\nfrom dlcli.cli.main import main\nsys.exit(main())\n"
    )
    script.chmod(0o755)
    return folder


def shell(command: list[str], bin_dir: Path, **env: str) -> str:
    full_env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        **env,
    }
    proc = subprocess.run(command, capture_output=True, text=True, env=full_env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize(
    ("name", "marks"),
    [
        (
            "bash",
            ["complete -o default -F _dlcli_completion dlcli", "_DLCLI_COMPLETE=complete_bash"],
        ),
        ("zsh", ["#compdef dlcli", "_DLCLI_COMPLETE=complete_zsh"]),
        ("fish", ["complete --command dlcli", "_DLCLI_COMPLETE=complete_fish"]),
    ],
)
def test_show_completion_prints_a_script_for_each_shell(name: str, marks: list[str], bin_dir: Path):
    script = shell(["dlcli", "--show-completion", name], bin_dir, **NAME_THE_SHELL)
    for mark in marks:
        assert mark in script


bash = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


@bash
def test_show_completion_detects_the_calling_shell(bin_dir: Path):
    script = shell(["bash", "-c", "dlcli --show-completion"], bin_dir)
    assert "complete -o default -F _dlcli_completion dlcli" in script


def complete(bin_dir: Path, *words: str) -> list[str]:
    """What bash offers for `dlcli WORDS` + TAB (the last word the one being typed), through
    the script that `--show-completion` printed."""
    program = (
        'eval "$(dlcli --show-completion bash)"\n'
        f"COMP_WORDS=(dlcli {' '.join(shlex.quote(w) for w in words)})\n"
        f"COMP_CWORD={len(words)}\n"
        "_dlcli_completion dlcli\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    return shell(["bash", "-c", program], bin_dir, **NAME_THE_SHELL).split()


@bash
def test_bash_completes_commands_and_template_names(bin_dir: Path):
    assert {"init", "validate", "train", "run"} <= set(complete(bin_dir, ""))
    assert complete(bin_dir, "val") == ["validate"]
    assert sorted(complete(bin_dir, "init", "")) == sorted(templates())
    assert sorted(complete(bin_dir, "init", "tra")) == ["transcription", "transfer"]


@pytest.mark.parametrize(
    ("name", "installed"),
    [
        ("bash", [".bash_completions/dlcli.sh", ".bashrc"]),
        ("zsh", [".zfunc/_dlcli", ".zshrc"]),
        ("fish", [".config/fish/completions/dlcli.fish"]),
    ],
)
def test_install_completion_writes_where_the_readme_says(
    name: str, installed: list[str], bin_dir: Path, tmp_path: Path
):
    shell(["dlcli", "--install-completion", name], bin_dir, HOME=str(tmp_path), **NAME_THE_SHELL)
    script, *rc = (tmp_path / path for path in installed)
    assert "_DLCLI_COMPLETE" in script.read_text()
    for rc_file in rc:
        assert "zfunc" in rc_file.read_text() or str(script) in rc_file.read_text()
    readme = (REPO / "README.md").read_text()
    assert f"~/{installed[0]}" in readme
