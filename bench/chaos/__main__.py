"""`python -m bench.chaos`: the arguments, the bench's data, and the run from setup to report
(the package's docstring says what the bench does)."""

from __future__ import annotations

import argparse
import faulthandler
import os
import queue
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import bench.chaos
from bench.chaos.faults import Chaos, fault_plan
from bench.chaos.ledger import Ledger, Offsets
from bench.chaos.load import EventBook, Load, Responses, wait_web
from bench.chaos.platform import (
    DATABASE,
    METRICS,
    LogTally,
    Platform,
    database_drop,
    manage,
    now,
    platform_env,
    ports_in_use,
    redis_flush,
)
from bench.chaos.report import Report
from bench.common import recreate_database


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=bench.chaos.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=150, help="offered events/s")
    parser.add_argument("--batch", type=int, default=50, help="events per POST")
    parser.add_argument("--clients", type=int, default=4, help="client threads")
    parser.add_argument("--consumers", type=int, default=1, help="usage consumer processes")
    parser.add_argument("--kills", type=int, default=5, help="consumer SIGKILLs")
    parser.add_argument("--cut-seconds", type=float, default=5, help="length of each PostgreSQL and Redis cut")
    parser.add_argument("--no-broker-restart", action="store_true")
    parser.add_argument("--flood", type=int, default=3000, help="accepted events re-sent alone (a third as many mixed)")
    parser.add_argument("--mix-per-batch", type=int, default=10, help="re-sent events mixed into each new batch")
    parser.add_argument("--recovery-timeout", type=float, default=30)
    parser.add_argument("--catch-up-timeout", type=float, default=45, help="before the broker restart")
    parser.add_argument("--drain-timeout", type=float, default=60, help="for the consumer, after the load")
    parser.add_argument("--fault-gap", type=float, default=2, help="seconds between a recovery and the next fault")
    parser.add_argument("--no-remedy", action="store_true", help="restart no stuck web or consumer")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--log-lines", type=int, default=6, help="distinct logged errors shown per process")
    parser.add_argument("--keep", action="store_true", help=f"leave the database {DATABASE} and the Redis dbs")
    parser.add_argument("--verbose", action="store_true", help="stream the subprocesses' logs (INFO) to stderr")
    return parser.parse_args()


def setup_data(args: argparse.Namespace) -> tuple[int, str, list[tuple[str, str]]]:
    """The bench's database and Redis, migrated and seeded: (tenant id, ingest token, (API key, metric)s)."""
    import orjson

    recreate_database(DATABASE)
    redis_flush()
    direct = platform_env(proxied=False, verbose=args.verbose)
    for command in (["migrate", "--no-input"], ["seed_demo", "--no-history", "--json"]):
        done = manage(command, env=direct)
        if done.returncode:
            raise RuntimeError(f"{command[0]} failed: {done.stderr.strip()[-2000:]}")
    demo = orjson.loads(done.stdout[done.stdout.index("{") :])
    senders = [(customer["api_key"], metric) for customer in demo["customers"]
               if set(METRICS) <= set(customer["metrics"]) for metric in METRICS]
    return demo["tenant"]["id"], demo["ingest_token"], senders


def warm_up(load: Load, book: EventBook, ledger: Ledger, *, web_up: float) -> None:
    """One probe event accepted by the web and stored by the consumer: the platform works end to end."""
    warmup = book.new_event(f"{book.run_id}-warmup", probe=True)
    if load.send([warmup], "probe", deadline_fn=lambda: web_up + 60, gated=False) is None:
        raise RuntimeError("the warm-up event was not accepted within 60 s")
    while warmup not in ledger.stored_ids():
        if now() - web_up > 90:
            raise RuntimeError("the warm-up event was not stored by the consumer within 90 s")
        time.sleep(0.2)


def run_and_report(args: argparse.Namespace, platform_: Platform, load: Load, book: EventBook, ledger: Ledger,
                   offsets: Offsets, responses: Responses, setup: dict) -> int:
    """The load under the fault plan, the drain, then the report: 1 if a check failed, else 0."""
    faults = fault_plan(args)
    load.start()
    chaos = Chaos(args, platform_, load, book, ledger, offsets)
    chaos.run(faults)
    load.done.wait()
    chaos.log("load finished; waiting for the consumer to store every promised event and commit")
    drained = chaos.drain()
    time.sleep(1)  # stragglers (given-up attempts that reached the broker) land before the audit
    report = Report(args, platform_, load, book, ledger, responses, faults, setup, drained)
    return 1 if report.print() else 0


def print_log_tails(platform_: Platform) -> None:
    for managed in platform_.everything():
        if managed.log_path.exists():
            tail = managed.log_path.read_text(errors="replace").splitlines()[-8:]
            print(f"--- {managed.name}: last lines of {managed.log_path}", file=sys.stderr)
            print("\n".join(tail), file=sys.stderr)


def tear_down(args: argparse.Namespace, platform_: Platform, clients: tuple[Ledger | None, Offsets | None]) -> None:
    """Every process stopped, the direct clients closed, the bench's data dropped (unless --keep)."""
    platform_.stop_all()
    for client in clients:
        if client is not None:
            client.close()
    if not args.keep:
        try:
            database_drop()
            redis_flush()
        except Exception as error:  # noqa: BLE001 - said, without masking the run's outcome
            print(f"chaos: cleanup: {error}", file=sys.stderr)


def main() -> int:
    args = arguments()
    faulthandler.enable()
    sys.stdout.reconfigure(line_buffering=True)  # a crash must not swallow what was printed
    if busy := ports_in_use():
        print(f"chaos: ports {busy} are in use (another run?); stop it first", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # the finally below cleans up
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C, even when started with SIGINT ignored
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    log_dir = Path(tempfile.mkdtemp(prefix="aforo-chaos-"))
    platform_ = Platform(args, log_dir, LogTally())
    stop_monitor = threading.Event()
    load: Load | None = None
    ledger: Ledger | None = None
    offsets: Offsets | None = None
    started = now()
    try:
        print(f"chaos: setting up (logs in {log_dir})", file=sys.stderr, flush=True)
        tenant_id, token, senders = setup_data(args)
        platform_.start()
        threading.Thread(target=platform_.monitor, args=(stop_monitor,), daemon=True).start()
        wait_web(token)
        web_up = now()
        book, responses = EventBook(f"chaos-{int(time.time())}", senders, args.seed), Responses()
        load, ledger, offsets = Load(args, book, responses, token), Ledger(tenant_id), Offsets()
        warm_up(load, book, ledger, web_up=web_up)
        setup = {"load_before": load_before, "tenant_id": tenant_id, "setup_s": now() - started,
                 "warmup_s": now() - web_up}
        print(f"chaos: platform up in {setup['setup_s']:.0f}s; offering {args.events:,} events at {args.rate:,.0f}/s",
              file=sys.stderr, flush=True)
        return run_and_report(args, platform_, load, book, ledger, offsets, responses, setup)
    except KeyboardInterrupt:
        print("chaos: interrupted; stopping everything", file=sys.stderr)
        return 130
    except (RuntimeError, TimeoutError, queue.Empty) as error:
        print(f"chaos: {error or type(error).__name__}", file=sys.stderr)
        print_log_tails(platform_)
        return 2
    finally:
        stop_monitor.set()
        if load is not None:
            load.stopping.set()
        tear_down(args, platform_, (ledger, offsets))


if __name__ == "__main__":
    sys.exit(main())
