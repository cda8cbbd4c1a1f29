"""Issue 14, docs that agree with the code: docs/cli.md's synopsis names every command and every
option its `--help` offers, and its exit-code table covers them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from typer.testing import CliRunner

from crossmargin.cli.main import app

DOC = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text(encoding="utf-8")
runner = CliRunner()


def _commands() -> Iterator[tuple[str, Any]]:
    """(`margin`, `oracle replay`, ...) and the Click command of every leaf command."""
    group = typer.main.get_command(app)
    context = typer.Context(group)

    def walk(command: Any, path: tuple[str, ...]) -> Iterator[tuple[str, Any]]:
        if hasattr(command, "list_commands"):
            for name in command.list_commands(context):
                yield from walk(command.get_command(context, name), (*path, name))
        else:
            yield " ".join(path), command

    yield from walk(group, ())


def _synopsis(commands: set[str]) -> dict[str, str]:
    """Command -> its synopsis text (continuation lines joined), from the first code block."""
    block = DOC.split("## Synopsis", 1)[1].split("```", 2)[1]
    entries: dict[str, str] = {}
    current = None
    for line in block.splitlines():
        if line.startswith("crossmargin "):
            words = line.split()
            name = " ".join(words[1:3]) if " ".join(words[1:3]) in commands else words[1]
            current = name
            entries[name] = line
        elif current is not None and line.strip():
            entries[current] += " " + line.strip()
    return entries


def test_every_command_and_option_is_in_the_synopsis() -> None:
    commands = dict(_commands())
    synopsis = _synopsis(set(commands))
    assert set(synopsis) == set(commands)
    for name, command in commands.items():
        options = {o for p in command.params for o in (*p.opts, *p.secondary_opts) if o.startswith("--")}
        written = set(re.findall(r"--[a-z][a-z-]*", synopsis[name]))
        assert written == options, (name, sorted(options - written), sorted(written - options))


def test_every_option_of_help_is_documented() -> None:
    """What `--help` prints, option by option, is in docs/cli.md (the synopsis and the tables)."""
    for name, _ in _commands():
        result = runner.invoke(app, [*name.split(), "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        for option in set(re.findall(r"--[a-z][a-z-]*", result.stdout)) - {"--help"}:
            assert option in DOC, (name, option)


def test_the_exit_codes_are_documented() -> None:
    table = DOC.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    assert "| **0** |" in table and "| **2** |" in table
    assert "never a traceback" in table
