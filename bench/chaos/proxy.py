"""The chaos benchmark's TCP proxies, run as their own process (bench/chaos/platform.py starts it),
so that copying PostgreSQL's and Redis's bytes never competes with the load clients for the GIL.

    python -m bench.chaos.proxy NAME=LISTEN_PORT:TARGET_HOST:TARGET_PORT [...]

Prints "ready" once every proxy listens, then obeys one command per stdin line:

    cut NAME       close every connection through NAME and stop listening: a new connection is
                   refused (ECONNREFUSED) until `restore`  → "ok cut NAME <connections closed>"
    restore NAME   listen again                              → "ok restore NAME"

It exits when stdin closes, so it never outlives the benchmark that started it."""

from __future__ import annotations

import asyncio
import sys


class Proxy:
    def __init__(self, name: str, listen_port: int, target_host: str, target_port: int):
        self.name = name
        self.listen_port = listen_port
        self.target = (target_host, target_port)
        self.server: asyncio.AbstractServer | None = None
        self.connections: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()

    async def listen(self) -> None:
        self.server = await asyncio.start_server(
            self.handle, "127.0.0.1", self.listen_port, reuse_address=True, backlog=512
        )

    def cut(self) -> int:
        """Refuse new connections and drop every open one; returns how many were dropped."""
        if self.server is not None:
            self.server.close()
            self.server = None
        dropped = list(self.connections)
        self.connections.clear()
        for client, upstream in dropped:
            client.transport.abort()
            upstream.transport.abort()
        return len(dropped)

    async def handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.wait_for(asyncio.open_connection(*self.target), 5)
        except (TimeoutError, OSError):
            client_writer.transport.abort()
            return
        if self.server is None:  # cut while this connection was being set up
            client_writer.transport.abort()
            upstream_writer.transport.abort()
            return
        pair = (client_writer, upstream_writer)
        self.connections.add(pair)
        pumps = [
            asyncio.ensure_future(_pump(client_reader, upstream_writer)),
            asyncio.ensure_future(_pump(upstream_reader, client_writer)),
        ]
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for pump in pumps:
            pump.cancel()
        self.connections.discard(pair)
        for writer in pair:
            writer.close()  # one side closed: close the other (neither protocol half-closes)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass


async def main(specs: list[str]) -> None:
    proxies: dict[str, Proxy] = {}
    for spec in specs:
        name, _, rest = spec.partition("=")
        listen_port, target_host, target_port = rest.split(":")
        proxies[name] = Proxy(name, int(listen_port), target_host, int(target_port))
    for proxy in proxies.values():
        await proxy.listen()
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        command, _, name = line.strip().partition(" ")
        proxy = proxies.get(name)
        if proxy is None:
            print(f"error unknown proxy {name!r}", flush=True)
        elif command == "cut":
            print(f"ok cut {name} {proxy.cut()}", flush=True)
        elif command == "restore":
            if proxy.server is None:
                await proxy.listen()
            print(f"ok restore {name}", flush=True)
        else:
            print(f"error unknown command {command!r}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
