"""Reading a Procfile and a .env file for the dev supervisor. Pure: text in, frozen values out.

A Procfile line is `name: command`; the command runs under /bin/sh (so `${WEB_PORT:-8000}`
expands), `exec`-ed when it is one simple command (`command_for_shell`). Two comment directives, which every other Procfile runner ignores, tell the
supervisor how a process behaves:

    # oneshot: banner          finishes on purpose: an exit with code 0 is not restarted
                               (a failure is, like any other process)
    # memory-only: broker      keeps its data in memory only: a restart loses all of it, and
                               the supervisor logs a warning saying so each time it restarts it

A directive may name several processes (`# oneshot: a b`); a name no process line declares is an
error, so a typo cannot silently turn a one-shot into a process restarted forever.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

PROCESS_LINE = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+)$")
DIRECTIVE_LINE = re.compile(r"^#\s*(oneshot|memory-only)\s*:\s*(.*)$")
ENV_LINE = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$")
# Unquoted, these make a command more than one simple command (lists, pipes, background jobs,
# subshells). A quoted one that happens to stand alone as a word errs on the safe side.
CONTROL_OPERATORS = {"&", "&&", "(", ")", ";", ";;", "|", "||", "|&"}
SHELL_WORDS = {"!", "{", "}", "[[", "case", "for", "function", "if", "select", "time", "until", "while"}


class ProcfileError(ValueError):
    """The Procfile cannot be run as written; the message names the line."""


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    command: str
    oneshot: bool = False
    memory_only: bool = False


def procfile_parse(*, text: str) -> list[ProcessSpec]:
    """The processes of a Procfile in file order, with their directives applied."""
    commands: dict[str, str] = {}
    directives: dict[str, set[str]] = {"oneshot": set(), "memory-only": set()}
    directive_lines: dict[str, int] = {}
    for number, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.strip()
        directive = DIRECTIVE_LINE.match(line)
        if directive:
            names = directive.group(2).split()
            if not names:
                raise ProcfileError(f"line {number}: '{directive.group(1)}:' names no process")
            directives[directive.group(1)].update(names)
            for name in names:
                directive_lines.setdefault(name, number)
            continue
        if not line or line.startswith("#"):
            continue
        process = PROCESS_LINE.match(line)
        if not process:
            raise ProcfileError(f"line {number}: expected 'name: command', got {raw_line!r}")
        name, command = process.groups()
        if name in commands:
            raise ProcfileError(f"line {number}: process '{name}' is declared twice")
        commands[name] = command
    for kind, names in directives.items():
        for name in sorted(names - commands.keys()):
            raise ProcfileError(f"line {directive_lines[name]}: '{kind}:' names unknown process '{name}'")
    return [
        ProcessSpec(
            name=name,
            command=command,
            oneshot=name in directives["oneshot"],
            memory_only=name in directives["memory-only"],
        )
        for name, command in commands.items()
    ]


def env_file_parse(*, text: str) -> dict[str, str]:
    """`KEY=value` lines of a .env file (optional `export `, optional matching quotes; `#` lines
    and blank lines skipped). Values are taken literally: no variable expansion."""
    values: dict[str, str] = {}
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        assignment = ENV_LINE.match(line)
        if not assignment:
            continue
        key, value = assignment.group(1), assignment.group(2).strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key] = value
    return values


def command_for_shell(*, command: str) -> str:
    """The command for `/bin/sh -c`: `exec command` when it is one simple command, so the
    program itself (not a shell waiting for it) leads its process group and its own exit code
    or signal is what the supervisor reports. Anything else (a list, a pipeline, a compound
    command, leading variable assignments, unbalanced quotes) runs as written."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        words = list(lexer)
    except ValueError:
        return command
    if not words or words[0] in SHELL_WORDS or "=" in words[0] or CONTROL_OPERATORS.intersection(words):
        return command
    return f"exec {command}"
