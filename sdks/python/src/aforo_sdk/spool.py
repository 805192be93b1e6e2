"""The on-disk spool: an append-only JSON-lines file of events not yet acknowledged by Aforo.

    {"event": {...}}          written when the event is recorded (before record() returns)
    {"ack": ["<id>", ...]}    written when Aforo gave the event a final answer
                              (accepted, duplicate or rejected)

At start the file is replayed: every event without an ack is sent again with its original id
(so Aforo counts it once), and the file is rewritten holding only those. When nothing is pending
the file is truncated. A torn last line (a crash mid-write) is skipped. One client per spool: an
exclusive lock (`<path>.lock`, flock) refuses a second one. Each line is one write() syscall: it
survives the process crashing; `fsync=True` makes it survive a power loss too, at the cost of
a disk flush per event.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from typing import Any

from .events import event_bytes

Event = dict[str, Any]


class SpoolLocked(RuntimeError):
    """Another client holds this spool."""


class Spool:
    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = False, compact_bytes: int = 1 << 20) -> None:
        self.path = os.fspath(path)
        self._fsync = fsync
        self._compact_bytes = compact_bytes
        self._lock = threading.Lock()
        self._lock_fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise SpoolLocked(f"spool {self.path} is in use by another client") from None
        self._pending: set[str] = set()
        self._fd = -1

    def replay(self) -> list[tuple[str, bytes]]:
        """The events written and never acknowledged, in the order written; the file is
        rewritten to hold just them."""
        events: dict[str, Event] = {}
        if os.path.exists(self.path):
            with open(self.path, "rb") as spool_file:
                for line in spool_file:
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue  # a torn line: its event was never acknowledged to the caller either
                    if not isinstance(record, dict):
                        continue
                    if isinstance(record.get("event"), dict) and "event_id" in record["event"]:
                        events[record["event"]["event_id"]] = record["event"]
                    for event_id in record.get("ack") or ():
                        events.pop(event_id, None)
        pending = [(event_id, event_bytes(event)) for event_id, event in events.items()]
        temporary = self.path + ".tmp"
        with open(temporary, "wb") as spool_file:
            for _, data in pending:
                spool_file.write(b'{"event":' + data + b"}\n")
            spool_file.flush()
            os.fsync(spool_file.fileno())
        os.replace(temporary, self.path)
        with self._lock:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self._pending = set(events)
        return pending

    def append(self, event_id: str, data: bytes) -> None:
        """Spool one event (its JSON, as event_bytes made it)."""
        line = b'{"event":' + data + b"}\n"
        with self._lock:
            os.write(self._fd, line)
            if self._fsync:
                os.fsync(self._fd)
            self._pending.add(event_id)

    def ack(self, event_ids: list[str]) -> None:
        with self._lock:
            if self._fd < 0:
                return
            os.write(self._fd, _line({"ack": event_ids}))
            self._pending.difference_update(event_ids)
            if not self._pending and os.fstat(self._fd).st_size >= self._compact_bytes:
                os.ftruncate(self._fd, 0)  # O_APPEND: the next write lands at the new end

    @property
    def pending(self) -> int:
        return len(self._pending)

    def forget(self) -> None:
        """In a forked child: close our copies of the descriptors without unlocking (the lock
        belongs to the parent's open file description, which the parent keeps)."""
        for fd in (self._fd, self._lock_fd):
            if fd >= 0:
                os.close(fd)
        self._fd = self._lock_fd = -1

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                if self._fsync:
                    os.fsync(self._fd)
                os.close(self._fd)
                self._fd = -1
        if self._lock_fd >= 0:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = -1


def _line(record: dict[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"
