"""The client: record() buffers an event (its id and timestamp fixed now) and returns at once; a
background thread sends batches by size and by time, retries what Aforo did not answer, and
reports every event's final result.

Overflow policy (bounded memory): at most `max_buffer` events are held (buffered + in flight).
`overflow="drop_newest"` (the default) refuses the event being recorded: it is counted in
`metrics.dropped` and reported to `on_result` as `dropped`/`buffer_full` — record() never blocks
the request. `overflow="block"` waits up to `block_timeout` seconds for room, then drops the same
way. Events replayed from the spool at start are loaded whole, even past `max_buffer`.
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import threading
import time
import weakref
from datetime import datetime
from typing import Any, Callable, Literal

from .delivery import EVENTS_PATH, MAX_BATCH_EVENTS, MAX_BODY_BYTES, Outcome, Pending, batch_body, outcome_of, result_for
from .entitlements import Entitlement, EntitlementCache
from .events import Event, EventResult, Quantity, event_build, event_bytes
from .metrics import Metrics
from .sessions import MeteredSession
from .spool import Spool
from .transport import HttpTransport, RetryPolicy, TransportError

logger = logging.getLogger("aforo_sdk")
ResultCallback = Callable[[EventResult], None]


def _data(pending: Pending) -> bytes:
    return pending[1]


def log_result(result: EventResult) -> None:
    """The default callback: rejected and dropped events are logged (WARNING), never silent."""
    if result.status in ("rejected", "dropped"):
        logger.warning("aforo event %s %s: %s %s %s", result.event_id, result.status, result.code,
                       result.field or "", result.message or "")


class Client:
    """Meter usage into Aforo. `on_result(EventResult)` is called from the flusher thread for
    every event Aforo rejected and every event the SDK dropped (default: logged at WARNING on the
    "aforo_sdk" logger); with `report_delivered=True` also for every accepted and duplicate one.
    `metrics` counts them all. See the module docstring for the overflow policy, RetryPolicy for
    retries and aforo_sdk.spool for the spool."""

    def __init__(
        self,
        *,
        url: str,
        token: str,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        max_buffer: int = 10_000,
        overflow: Literal["drop_newest", "block"] = "drop_newest",
        block_timeout: float = 1.0,
        retry: RetryPolicy | None = None,
        timeout: float = 10.0,
        spool_path: str | None = None,
        spool_fsync: bool = False,
        on_result: ResultCallback | None = None,
        report_delivered: bool = False,
        close_timeout: float = 10.0,
        entitlement_ttl: float = 1.0,
        entitlement_fallback: Literal["allow", "deny", "raise"] = "allow",
        register_atexit: bool = True,
    ) -> None:
        if overflow not in ("drop_newest", "block"):
            raise ValueError("overflow must be 'drop_newest' or 'block'")
        self.url = url
        self._transport = HttpTransport(url=url, token=token, timeout=timeout)
        self._batch_size = max(1, min(batch_size, MAX_BATCH_EVENTS))
        self._flush_interval = flush_interval
        self._max_buffer = max_buffer
        self._overflow = overflow
        self._block_timeout = block_timeout
        self._retry = retry or RetryPolicy()
        self._on_result = on_result or log_result
        self._report_delivered = report_delivered
        self._close_timeout = close_timeout
        self._buffer: collections.deque[Pending] = collections.deque()
        self._cond = threading.Condition(threading.Lock())
        self._in_flight = 0
        self._flush_now = False
        self._closing = False
        self._closed = False
        self._close_deadline = float("inf")
        self._wake = threading.Event()  # interrupts a backoff wait when the close deadline moves
        self._counts = dict.fromkeys(("recorded", "sent", "duplicate", "rejected", "dropped", "retried", "requests",
                                      "request_failures"), 0)
        self._counts_lock = threading.Lock()
        self._spool: Spool | None = None
        if spool_path:
            self._spool = Spool(spool_path, fsync=spool_fsync)
            self._buffer.extend(self._spool.replay())
        self.entitlements = EntitlementCache(self._transport, ttl=entitlement_ttl, fallback=entitlement_fallback)
        self._start_flusher()
        self_ref = weakref.ref(self)  # neither hook keeps a dropped client alive

        def after_fork_in_child() -> None:
            client = self_ref()
            if client is not None:
                client._after_fork()

        def at_exit() -> None:
            client = self_ref()
            if client is not None:
                client.close()

        os.register_at_fork(after_in_child=after_fork_in_child)
        if register_atexit:
            atexit.register(at_exit)

    def _start_flusher(self) -> None:
        self._thread = threading.Thread(target=self._run, name="aforo-flusher", daemon=True)
        self._thread.start()

    def _after_fork(self) -> None:
        """A forked child (gunicorn --preload, multiprocessing) has the client but not its thread:
        start afresh — an empty buffer (the parent sends what it holds), a new flusher, new
        connections. The spool stays the parent's: a child records without one (create the
        client after the fork, e.g. in gunicorn's post_fork, to give each worker its own)."""
        self._cond = threading.Condition(threading.Lock())
        self._counts_lock = threading.Lock()
        self._wake = threading.Event()
        self._buffer = collections.deque()
        self._in_flight = 0
        self._counts = dict.fromkeys(self._counts, 0)
        self._transport = self._transport.fresh()
        self.entitlements = EntitlementCache(self._transport, ttl=self.entitlements.ttl, fallback=self.entitlements.fallback)
        if self._spool is not None:
            self._spool.forget()
            self._spool = None
            logger.warning("aforo: client inherited across fork(); the child records without the spool")
        if not self._closed:
            self._start_flusher()

    # --- recording -------------------------------------------------------------------------------

    def record(
        self,
        *,
        metric: str,
        quantity: Quantity = 1,
        api_key: str | None = None,
        customer_id: int | None = None,
        subscription_id: int | None = None,
        dimensions: dict[str, str] | None = None,
        metadata: dict[str, Any] | None = None,
        timestamp: datetime | None = None,
        event_id: str | None = None,
    ) -> str:
        """Buffer one event and return its id (a UUIDv7 unless given). Never does I/O on the
        network; writes one spool line when a spool is on. A full buffer applies the overflow
        policy (the event is then reported `dropped`)."""
        event = event_build(metric=metric, quantity=quantity, api_key=api_key, customer_id=customer_id,
                            subscription_id=subscription_id, dimensions=dimensions, metadata=metadata,
                            timestamp=timestamp, event_id=event_id)
        self.enqueue(event)
        return str(event["event_id"])

    def enqueue(self, event: Event) -> bool:
        """Buffer an event already built (event_build); False when the overflow policy dropped it."""
        pending = (event["event_id"], event_bytes(event))  # serialised here: the flusher only joins bytes
        with self._cond:
            if self._closed:
                raise RuntimeError("the Aforo client is closed")
            if len(self._buffer) + self._in_flight >= self._max_buffer and not self._wait_for_room():
                self._count(dropped=1)
                dropped = True
            else:
                if self._spool is not None:
                    self._spool.append(*pending)
                self._buffer.append(pending)
                self._count(recorded=1)
                dropped = False
                if len(self._buffer) >= self._batch_size:
                    self._cond.notify_all()
        if dropped:
            self._report([EventResult(event["event_id"], "dropped", event, code="buffer_full",
                                      message=f"the buffer holds {self._max_buffer} events (overflow={self._overflow})")])
        return not dropped

    def _wait_for_room(self) -> bool:
        if self._overflow != "block":
            return False
        return self._cond.wait_for(lambda: len(self._buffer) + self._in_flight < self._max_buffer,
                                   timeout=self._block_timeout)

    # --- flushing and shutdown -------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything buffered now and wait until Aforo answered it all (or `timeout`).
        True when nothing is left buffered or in flight."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._flush_now = True
            self._cond.notify_all()
            while self._buffer or self._in_flight:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining if remaining is not None else 0.5)
            return True

    def close(self, timeout: float | None = None) -> bool:
        """Flush, then stop the flusher. Events Aforo has not acknowledged by `timeout` stay in
        the spool (sent at the next start) or, without a spool, are reported `dropped` with code
        `undelivered_at_shutdown`. True when everything was delivered. Idempotent."""
        timeout = self._close_timeout if timeout is None else timeout
        with self._cond:
            if self._closed:
                return not self._buffer and not self._in_flight
            self._closing = True
            self._close_deadline = time.monotonic() + timeout
            self._cond.notify_all()
        self._wake.set()
        self._thread.join(timeout + 5)
        with self._cond:
            self._closed = True
            leftover = list(self._buffer)
            self._buffer.clear()
        if leftover and self._spool is None:
            self._count(dropped=len(leftover))
            self._report([result_for(p, "dropped", code="undelivered_at_shutdown",
                                     message="the client closed before Aforo acknowledged it (no spool)") for p in leftover])
        if self._spool is not None:
            self._spool.close()
        self._transport.close()
        return not leftover

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- the flusher thread ----------------------------------------------------------------------

    def _run(self) -> None:
        last_send = time.monotonic()
        while True:
            with self._cond:
                while not self._ready(last_send):
                    due = last_send + self._flush_interval - time.monotonic()
                    self._cond.wait(max(0.001, due) if self._buffer else self._flush_interval)
                if not self._buffer or self._past_deadline():
                    return  # closing: nothing left, or out of time (close() deals with the rest)
                if len(self._buffer) <= self._batch_size:  # the usual case, at C speed: the flusher holds the GIL briefly
                    batch = list(self._buffer)
                    self._buffer.clear()
                else:
                    batch = [self._buffer.popleft() for _ in range(self._batch_size)]
                self._in_flight = len(batch)
            batch = self._fit_body(batch)
            last_send = time.monotonic()
            delivered = self._deliver(batch)
            with self._cond:
                self._in_flight = 0
                if not delivered:  # out of time while closing: back to the buffer for close()
                    self._buffer.extendleft(reversed(batch))
                if not self._buffer:
                    self._flush_now = False
                self._cond.notify_all()

    def _ready(self, last_send: float) -> bool:
        if self._closing or len(self._buffer) >= self._batch_size:
            return True
        if not self._buffer:
            return False
        return self._flush_now or time.monotonic() - last_send >= self._flush_interval

    def _past_deadline(self) -> bool:
        return self._closing and time.monotonic() >= self._close_deadline

    def _fit_body(self, batch: list[Pending]) -> list[Pending]:
        """Keep the request under the API's 2 MiB body limit: what does not fit goes back first
        in line for the next batch."""
        if sum(map(len, map(_data, batch))) + len(batch) + 16 <= MAX_BODY_BYTES - 4096:
            return batch
        size = 16
        for index, (_, data) in enumerate(batch):
            size += len(data) + 1
            if index and size > MAX_BODY_BYTES - 4096:
                with self._cond:
                    self._buffer.extendleft(reversed(batch[index:]))
                    self._in_flight = index
                return batch[:index]
        return batch

    def _deliver(self, batch: list[Pending]) -> bool:
        """Send until Aforo gives every event a final answer. False only when the client is
        closing and its deadline passed (or retries ran out: those are reported dropped and
        stay in the spool, if any)."""
        body = batch_body(batch)
        attempt = 0
        while True:
            self._count(requests=1)
            try:
                answer = self._transport.request("POST", EVENTS_PATH, body)
                outcome = outcome_of(batch, answer, every_result=self._report_delivered)
            except TransportError as error:
                outcome = Outcome(False, None, str(error))
            if outcome.final:
                self._settle(batch, outcome)
                return True
            self._count(request_failures=1)
            attempt += 1
            if self._retry.max_attempts is not None and attempt >= self._retry.max_attempts:
                self._count(dropped=len(batch))
                self._report([result_for(p, "dropped", code="retries_exhausted", message=outcome.reason) for p in batch])
                return True
            delay = self._retry.delay(attempt - 1, outcome.retry_after)
            logger.info("aforo: %d events not delivered (%s); retry %d in %.2f s", len(batch), outcome.reason, attempt, delay)
            if not self._sleep(delay):
                return False
            self._count(retried=len(batch))

    def _sleep(self, delay: float) -> bool:
        """Wait out a backoff; False when the close deadline comes first."""
        end = time.monotonic() + delay
        while True:
            now = time.monotonic()
            if now >= self._close_deadline:
                return False
            if now >= end:
                return True
            self._wake.wait(min(end, self._close_deadline) - now)
            self._wake.clear()

    def _settle(self, batch: list[Pending], outcome: Outcome) -> None:
        self._count(sent=outcome.accepted, duplicate=outcome.duplicate, rejected=outcome.rejected)
        if self._spool is not None:
            self._spool.ack([event_id for event_id, _ in batch])
        self._report(outcome.results)

    def _report(self, results: list[EventResult]) -> None:
        for result in results:
            try:
                self._on_result(result)
            except Exception:  # a callback's bug must not stop delivery
                logger.exception("aforo: the on_result callback raised")

    # --- metrics ---------------------------------------------------------------------------------

    def _count(self, **increments: int) -> None:
        with self._counts_lock:
            for name, n in increments.items():
                self._counts[name] += n

    @property
    def metrics(self) -> Metrics:
        with self._cond, self._counts_lock:
            return Metrics(**self._counts, buffered=len(self._buffer), in_flight=self._in_flight,
                           spool_pending=self._spool.pending if self._spool is not None else 0)

    # --- helpers that call Aforo synchronously ---------------------------------------------------

    def check_entitlement(self, *, metric: str, units: Quantity = 1, api_key: str | None = None,
                          customer_id: int | None = None, dimensions: dict[str, str] | None = None) -> Entitlement:
        """May this subject use `units` more of `metric` now? Cached for `entitlement_ttl` s."""
        return self.entitlements.check(metric=metric, units=units, api_key=api_key, customer_id=customer_id,
                                       dimensions=dimensions)

    def metered_session(self, *, wallet_id: int, amount: Quantity, ttl_seconds: int = 900,
                        reference: str | None = None, currency: str | None = None) -> MeteredSession:
        """A context manager: an escrow hold on entry, committed with the actual amount on a
        clean exit, released on an exception. See MeteredSession."""
        return MeteredSession(self, self._transport, wallet_id=wallet_id, amount=amount, ttl_seconds=ttl_seconds,
                              reference=reference, currency=currency)
