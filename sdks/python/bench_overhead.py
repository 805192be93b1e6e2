"""What metering costs the instrumented app: the added latency per request of the WSGI and ASGI
middleware (target p99 < 0.2 ms: the event is built and buffered, the network is the flusher
thread's business) and how many events per second one process can emit.

    python sdks/python/bench_overhead.py [--requests 50000] [--events 200000]
                                         [--url URL --token INGEST_TOKEN --api-key KEY]

Without --url the events go to a local sink (a child process answering 202 at once), so the
figures are the SDK's, not Aforo's ingest; with --url they go to that Aforo. Prints the figures,
the setup and the load average (before and after: the machine is shared).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing
import os
import platform as host
import statistics
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))  # the source tree, when not installed

from aforo_sdk import AforoASGIMiddleware, AforoWSGIMiddleware, Client  # noqa: E402


def _sink(port_queue: multiprocessing.Queue) -> None:
    class Sink(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(202)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")  # no per-event results: the batch was taken whole

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    port_queue.put(server.server_address[1])
    server.serve_forever()


def percentiles(samples_ns: list[int]) -> tuple[float, float, float]:
    ordered = sorted(samples_ns)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000  # noqa: E731
    return pick(0.50), pick(0.99), pick(0.999)


def hello_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


class Pacer:
    """Requests at `rate` per second (0: back to back). A server thread waits on its socket
    between requests (releasing the GIL); pacing with sleep() does the same here."""

    def __init__(self, rate: float) -> None:
        self.interval = 1 / rate if rate else 0.0
        self.next = time.perf_counter()

    def wait(self) -> None:
        if self.interval:
            self.next += self.interval
            delay = self.next - time.perf_counter()
            if delay > 0:
                time.sleep(delay)


def wsgi_timings(app, requests: int, api_key: str, rate: float, clock=time.perf_counter_ns) -> list[int]:
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/v1/search", "HTTP_X_API_KEY": api_key}
    start_response = lambda status, headers, exc_info=None: None  # noqa: E731
    samples = []
    pacer = Pacer(rate)
    for _ in range(requests):
        pacer.wait()
        started = clock()
        body = app(dict(environ), start_response)
        for _chunk in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()  # what the server does once the body is sent: the WSGI middleware meters here
        samples.append(clock() - started)
    return samples


def asgi_timings(app, requests: int, api_key: str, rate: float) -> list[int]:
    scope = {"type": "http", "method": "GET", "path": "/v1/search", "headers": [(b"x-api-key", api_key.encode())]}

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        pass

    async def run() -> list[int]:
        samples = []
        clock = time.perf_counter_ns
        pacer = Pacer(rate)
        for _ in range(requests):
            pacer.wait()
            started = clock()
            await app(dict(scope), receive, send)
            samples.append(clock() - started)
        return samples

    return asyncio.run(run())


async def hello_asgi(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello"})


def report_latency(name: str, bare: list[int], metered: list[int]) -> dict:
    b50, b99, b999 = percentiles(bare)
    m50, m99, m999 = percentiles(metered)
    print(f"{name}: bare app p50 {b50:.1f} µs  p99 {b99:.1f} µs | with the middleware p50 {m50:.1f} µs  "
          f"p99 {m99:.1f} µs  p99.9 {m999:.1f} µs | added: p50 {m50 - b50:.1f} µs  p99 {m99 - b99:.1f} µs "
          f"(target p99 < 200 µs: {'met' if m99 - b99 < 200 else 'MISSED'})")
    return {"bare_p50_us": b50, "bare_p99_us": b99, "metered_p50_us": m50, "metered_p99_us": m99,
            "added_p50_us": m50 - b50, "added_p99_us": m99 - b99}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=2000, help="requests/s offered to the app (0: back to back)")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--url")
    parser.add_argument("--token", default="bench")
    parser.add_argument("--api-key", default="sk_bench")
    args = parser.parse_args()
    load_before = os.getloadavg()
    sink = None
    url = args.url
    if url is None:
        ports: multiprocessing.Queue = multiprocessing.Queue()
        sink = multiprocessing.Process(target=_sink, args=(ports,), daemon=True)
        sink.start()
        url = f"http://127.0.0.1:{ports.get(timeout=10)}"
    print(f"setup: Python {host.python_version()} on {host.platform()}, {os.cpu_count()} CPUs, "
          f"events to {'a local sink (child process, 202 at once)' if sink else url}; "
          f"client batch_size=500 flush_interval=0.2 s max_buffer={max(args.events, 10_000) + 1}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in load_before)}")
    client = Client(url=url, token=args.token, batch_size=500, flush_interval=0.2,
                    max_buffer=max(args.events, 10_000) + 1, register_atexit=False)
    figures = {}
    gc.collect()
    warm = args.requests // 10
    metered_wsgi = AforoWSGIMiddleware(hello_app, client=client)
    wsgi_timings(hello_app, warm, args.api_key, 0)
    wsgi_timings(metered_wsgi, warm, args.api_key, 0)
    print(f"latency per request, {args.requests:,} requests at {args.rate:,.0f}/s "
          f"(wall clock: includes waiting for the GIL while the flusher thread runs, and for a CPU):")
    figures["wsgi"] = report_latency("WSGI", wsgi_timings(hello_app, args.requests, args.api_key, args.rate),
                                     wsgi_timings(metered_wsgi, args.requests, args.api_key, args.rate))
    figures["asgi"] = report_latency("ASGI", asgi_timings(hello_asgi, args.requests, args.api_key, args.rate),
                                     asgi_timings(AforoASGIMiddleware(hello_asgi, client=client), args.requests,
                                                  args.api_key, args.rate))
    print("CPU time of the request's own thread (what the middleware itself costs, without waits):")
    figures["wsgi_cpu"] = report_latency(
        "WSGI cpu", wsgi_timings(hello_app, args.requests, args.api_key, args.rate, time.thread_time_ns),
        wsgi_timings(metered_wsgi, args.requests, args.api_key, args.rate, time.thread_time_ns))
    print("back to back (no pause between requests: the flusher must take the GIL from a busy thread):")
    figures["wsgi_back_to_back"] = report_latency("WSGI", wsgi_timings(hello_app, args.requests, args.api_key, 0),
                                                  wsgi_timings(metered_wsgi, args.requests, args.api_key, 0))
    assert client.flush(120), "the middleware's events were not all delivered"

    started = time.perf_counter()
    for _ in range(args.events):
        client.record(metric="api_calls", api_key=args.api_key)
    recorded = time.perf_counter() - started
    assert client.flush(300), "the events were not all delivered"
    delivered = time.perf_counter() - started
    metrics = client.metrics
    client.close()
    figures["record_per_s"] = args.events / recorded
    figures["delivered_per_s"] = args.events / delivered
    print(f"events/s, one process, one thread calling record(): {figures['record_per_s']:,.0f} recorded "
          f"({recorded * 1e6 / args.events:.1f} µs each), {figures['delivered_per_s']:,.0f} delivered end to end "
          f"({args.events:,} events in {delivered:.2f} s, {metrics.requests} requests, dropped {metrics.dropped})")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(json.dumps({k: (round(v, 2) if isinstance(v, float) else {kk: round(vv, 2) for kk, vv in v.items()})
                      for k, v in figures.items()}))
    if sink is not None:
        sink.terminate()


if __name__ == "__main__":
    main()
