"""The SDKs' overhead on the instrumented app: what the middleware adds per request (target p99
< 0.2 ms) and the events/s one process can emit. The Python SDK's bench is
sdks/python/bench_overhead.py (run here with the same arguments); the Go SDK's is
`go test -bench . ./...` in sdks/go; the Node SDK's, sdks/node/bench/overhead.mjs.

    .venv/bin/python bench/sdk_overhead.py [--requests 50000] [--events 200000] [--url URL --token T --api-key K]
"""

import runpy
import sys
from pathlib import Path

if __name__ == "__main__":
    script = Path(__file__).resolve().parents[1] / "sdks" / "python" / "bench_overhead.py"
    sys.argv[0] = str(script)
    runpy.run_path(str(script), run_name="__main__")
