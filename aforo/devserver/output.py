"""The supervisor's output: each process's lines prefixed like honcho's `HH:MM:SS name | `."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import BinaryIO

SYSTEM_NAME = "system"  # the name on the supervisor's own lines
# honcho's colour order: cyan, yellow, green, magenta, red, blue, then their intense forms.
COLOURS = ("36", "33", "32", "35", "31", "34", "36;1", "33;1", "32;1", "35;1", "31;1", "34;1")
LONGEST_LINE = 65536  # a longer run of bytes without a newline is printed as a line of its own


class LinePrinter:
    """Writes prefixed lines to one binary stream, the name padded to the longest (and `system`),
    coloured per process when asked. Bytes pass through undecoded. A closed stream is ignored:
    losing the terminal must not stop the supervisor from stopping its processes."""

    def __init__(self, *, names: list[str], stream: BinaryIO, colour: bool) -> None:
        self.width = max(len(name) for name in [*names, SYSTEM_NAME])
        self.stream = stream
        self.colours = {name: COLOURS[index % len(COLOURS)] for index, name in enumerate(names)} if colour else {}

    def write(self, *, name: str, lines: list[bytes]) -> None:
        prefix = f"{time.strftime('%H:%M:%S')} {name.ljust(self.width)} | "
        if name in self.colours:
            prefix = f"\033[0m\033[{self.colours[name]}m{prefix}\033[0m"
        encoded = prefix.encode()
        try:
            self.stream.write(b"".join(encoded + line + b"\n" for line in lines))
            self.stream.flush()
        except (OSError, ValueError):  # stdout closed (a pipe's reader gone, a terminal hung up)
            pass

    def system(self, text: str) -> None:
        self.write(name=SYSTEM_NAME, lines=[text.encode()])


@dataclass
class OutputPipe:
    """The read end of one incarnation's stdout+stderr; open until every writer closed it."""

    name: str
    file: BinaryIO
    partial: bytes = b""

    def lines_complete(self, *, data: bytes) -> list[bytes]:
        """The lines `data` completes (without their newline); the rest waits for more, or for EOF."""
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        if len(self.partial) > LONGEST_LINE:
            lines.append(self.partial)
            self.partial = b""
        return lines
