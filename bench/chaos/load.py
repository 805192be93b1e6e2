"""What the chaos benchmark offered and what the API answered: the events, the answers, and the
load that offers them at a steady rate, each batch re-sent until answered."""

from __future__ import annotations

import argparse
import http.client
import random
import re
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from bench.chaos.platform import WEB_PORT, now

# --- what the bench offered and what the API answered ----------------------------------------


class EventBook:
    """Every event the bench offered and what the API said of it. `promised` = answered accepted
    or duplicate: the API's word that it holds the event, so each must end up in the raw ledger."""

    def __init__(self, run_id: str, senders: list[tuple[str, str]], seed: int):
        self.lock = threading.Lock()
        self.run_id, self.senders = run_id, senders
        self.random = random.Random(seed)
        self.payloads: dict[str, dict] = {}
        self.quantity: dict[str, int] = {}
        self.probes: set[str] = set()
        self.accepted_answers: Counter = Counter()  # event id -> 'accepted' answers
        self.duplicate_ids: set[str] = set()
        self.duplicate_reasons: Counter = Counter()
        self.rejected: Counter = Counter()  # code -> events
        self.abandoned: set[str] = set()
        self.flood_alone: set[str] = set()
        self.flood_mixed: set[str] = set()
        self.flood_answers: Counter = Counter()  # "phase status (reason)" -> answers
        self.mix_queue: deque[str] = deque()

    def new_event(self, event_id: str, *, probe: bool = False) -> str:
        key, metric = self.senders[self.random.randrange(len(self.senders))]
        quantity = self.random.randint(1, 3) if metric == "api_calls" else self.random.randint(1, 4000)
        payload = {
            "event_id": event_id, "api_key": key, "metric": metric, "quantity": str(quantity),
            "timestamp": datetime.now(timezone.utc).isoformat(),
            "dimensions": {"region": "eu"}, "metadata": {"gateway": "chaos-bench"},
        }
        with self.lock:
            self.payloads[event_id], self.quantity[event_id] = payload, quantity
            if probe:
                self.probes.add(event_id)
        return event_id

    def record(self, ids: list[str], results: list[dict]) -> None:
        with self.lock:
            for result in results:
                index = result.get("index")
                event_id = result.get("event_id")
                if event_id is None and isinstance(index, int) and index < len(ids):
                    event_id = ids[index]
                status = result.get("status")
                if status == "accepted":
                    self.accepted_answers[event_id] += 1
                elif status == "duplicate":
                    self.duplicate_ids.add(event_id)
                    self.duplicate_reasons[result.get("reason", "?")] += 1
                    status = f"duplicate ({result.get('reason', '?')})"
                else:
                    self.rejected[result.get("code", status)] += 1
                phase = "alone" if event_id in self.flood_alone else "mixed" if event_id in self.flood_mixed else None
                if phase:
                    self.flood_answers[f"{phase} {status}"] += 1

    def abandon(self, ids: list[str]) -> None:
        with self.lock:
            self.abandoned.update(i for i in ids if not self.accepted_answers[i] and i not in self.duplicate_ids)

    def promised(self) -> set[str]:
        with self.lock:
            return {i for i, n in self.accepted_answers.items() if n} | self.duplicate_ids

    def accepted_ids(self) -> list[str]:
        with self.lock:
            return sorted(i for i, n in self.accepted_answers.items() if n and i not in self.probes)


@dataclass
class Answer:
    status: int | None  # None: no HTTP answer
    label: str
    body: Any = None
    at: float = 0.0


class Responses:
    """Every answer the API gave (or did not), with its time: the totals, and each fault's window."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.log: list[tuple[float, str, str]] = []
        self.server_errors: list[str] = []
        self.remedy_windows: list[tuple[float, float]] = []  # the bench restarting the web itself

    def add(self, source: str, answer: Answer) -> None:
        with self.lock:
            self.log.append((answer.at, source, answer.label))
            if answer.status == 500 and len(self.server_errors) < 3:
                self.server_errors.append(str(answer.body)[:300])

    def counts(self, *, since: float = float("-inf"), until: float = float("inf"),
               sources: tuple[str, ...] | None = None) -> Counter:
        with self.lock:
            return Counter(label for at, source, label in self.log
                           if since <= at <= until and (sources is None or source in sources))


def post_events(token: str, payloads: list[dict], *, timeout_s: float = 35) -> Answer:
    import orjson

    connection = http.client.HTTPConnection("127.0.0.1", WEB_PORT, timeout=timeout_s)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}", "Connection": "close"}
    try:
        connection.request("POST", "/api/v1/events", body=orjson.dumps(payloads), headers=headers)
        response = connection.getresponse()
        data = response.read()
    except ConnectionRefusedError:
        return Answer(None, "connection refused", at=now())
    except TimeoutError:
        return Answer(None, "connection timed out (no answer)", at=now())
    except (http.client.HTTPException, OSError) as error:
        return Answer(None, f"connection dropped ({type(error).__name__})", at=now())
    finally:
        connection.close()
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        body = data[:300].decode(errors="replace")
    label = str(response.status)
    if response.status >= 400:
        error = body.get("error") if isinstance(body, dict) else None
        code = error.get("code") if isinstance(error, dict) else None
        if code == "service_unavailable":
            outage = re.search(r"The (\w+) is unavailable", error.get("message", ""))
            code = f"{code}: {outage.group(1) if outage else '?'}"
        label += f" {code or 'no JSON error body'}"
        if response.status == 503 and not response.getheader("Retry-After"):
            label += " (no Retry-After)"
    return Answer(response.status, label, body, now())


# --- the load ----------------------------------------------------------------------------------


class Load:
    """--clients threads offering --events events at --rate in batches, each batch re-sent until
    answered or the load's deadline; a pause gate (the broker restart) with in-flight accounting."""

    def __init__(self, args: argparse.Namespace, book: EventBook, responses: Responses, token: str):
        self.args, self.book, self.responses, self.token = args, book, responses, token
        self.cond = threading.Condition()
        self.gate_open, self.inflight, self.paused_at = True, 0, 0.0
        self.issued = 0  # events handed to the clients
        self.shift = 0.0  # seconds paused: the schedule moves on by as much
        self.planned_s = args.events / args.rate
        self.started = now()
        self.deadline = now() + 120  # set by start(); this one bounds the warm-up
        self.stopping = threading.Event()
        self.done = threading.Event()
        self.finished_at: float | None = None
        self.requests = 0
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        self.started = now()
        self.deadline = self.started + self.planned_s + max(30.0, 0.25 * self.planned_s)
        self.threads = [threading.Thread(target=self._client, daemon=True) for _ in range(self.args.clients)]
        for thread in self.threads:
            thread.start()
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        for thread in self.threads:
            thread.join()
        self.finished_at = now()
        self.done.set()

    def _take(self) -> tuple[list[str], float] | None:
        with self.cond:
            if self.issued >= self.args.events:
                return None
            first, count = self.issued, min(self.args.batch, self.args.events - self.issued)
            self.issued += count
            due = self.started + self.shift + first / self.args.rate
            mix = min(self.args.mix_per_batch, len(self.book.mix_queue))
            mixed = [self.book.mix_queue.popleft() for _ in range(mix)]
        ids = [self.book.new_event(f"{self.book.run_id}-{n}") for n in range(first, first + count)]
        return ids + mixed, due

    def _client(self) -> None:
        while not self.stopping.is_set() and (taken := self._take()) is not None:
            ids, due = taken
            while (wait := due - now()) > 0 and not self.stopping.is_set():
                time.sleep(min(wait, 0.2))  # pacing the offered rate
            self.send(ids, "load", deadline_fn=lambda: self.deadline)

    def send(self, ids: list[str], source: str, *, deadline_fn, gated: bool = True,
             backoff_cap_s: float = 2.0) -> Answer | None:
        """POST the batch until the API answers it (2xx or 4xx); None if the deadline came first."""
        attempt = 0
        while True:
            if self.stopping.is_set() or now() > deadline_fn():
                self.book.abandon(ids)
                return None
            if gated and not self._enter():
                continue
            try:
                answer = post_events(self.token, [self.book.payloads[i] for i in ids])
            finally:
                if gated:
                    self._leave()
            with self.cond:
                self.requests += 1
            self.responses.add(source, answer)
            if answer.status is not None and answer.status < 500:
                if isinstance(answer.body, dict) and isinstance(answer.body.get("results"), list):
                    self.book.record(ids, answer.body["results"])
                elif answer.status >= 400:
                    with self.book.lock:
                        self.book.rejected[answer.label] += len(ids)
                return answer
            attempt += 1
            resume_at = now() + min(backoff_cap_s, 0.25 * 2 ** (attempt - 1))
            while now() < resume_at and not self.stopping.is_set():
                time.sleep(0.05)  # the client's retry backoff

    def _enter(self) -> bool:
        with self.cond:
            while not self.gate_open:
                if self.stopping.is_set() or now() > self.deadline:
                    return False
                self.cond.wait(0.2)
            self.inflight += 1
            return True

    def _leave(self) -> None:
        with self.cond:
            self.inflight -= 1
            self.cond.notify_all()

    def pause(self, *, timeout_s: float = 45) -> bool:
        """Close the gate and wait until no request is in flight."""
        deadline = now() + timeout_s
        with self.cond:
            self.gate_open, self.paused_at = False, now()
            while self.inflight and now() < deadline:
                self.cond.wait(0.2)
            return self.inflight == 0

    def resume(self) -> None:
        with self.cond:
            paused = now() - self.paused_at
            self.shift += paused
            self.deadline += paused
            self.gate_open = True
            self.cond.notify_all()

    def active(self) -> bool:
        return not self.done.is_set()


def wait_web(token: str, *, timeout_s: float = 60) -> None:
    """Until the web answers an empty batch (400 empty_batch: authenticated, nothing produced)."""
    deadline = now() + timeout_s
    while now() < deadline:
        if post_events(token, [], timeout_s=5).status == 400:
            return
        time.sleep(0.3)
    raise RuntimeError(f"the web did not answer on :{WEB_PORT} within {timeout_s:.0f}s")
