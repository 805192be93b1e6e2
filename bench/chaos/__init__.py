"""Chaos benchmark (issue 11, "unbreakable pipeline"): HTTP ingest → rated ledger while the
platform is being broken, then an audit of what the API promised against what the ledger holds.

    .venv/bin/python -m bench.chaos [--events 20000] [--rate 150] [--consumers 1] [--kills 5]
                                    [--cut-seconds 5] [--no-broker-restart] [--keep] [--verbose]

The platform is its own, every piece a subprocess in its own process group, all killed on exit:
  * PostgreSQL database aforo_chaos (recreated, migrated, `seed_demo --no-history`: a tenant
    with an ingest token, priced subscriptions and API keys); Redis databases 12 (cache, key
    prefix aforo-chaos) and 13 (Celery), flushed;
  * the embedded broker (Tansu, memory storage) on 127.0.0.1:19450, the web (the Procfile's
    gunicorn command) on 127.0.0.1:8350 and --consumers `manage.py run_consumer usage` processes;
  * the web and the consumers reach PostgreSQL and Redis only through TCP proxies the bench runs
    (bench/chaos/proxy.py, 15432 → 5432 and 16379 → 6379). "Cut" closes every proxied connection
    and refuses new ones for --cut-seconds. The bench itself reads the ledger directly.

Load: --events events POSTed to /api/v1/events in batches of --batch from --clients threads at a
steady --rate events/s (a fresh connection per request, so a dropped connection is the server's
doing, never a stale keep-alive). Each event has a unique event_id and an integer quantity. A
batch answered 5xx, or not answered, is re-sent with the same event ids after a backoff (0.25 s
doubling to 2 s), as an SDK would; 4xx is not retried.

Faults, one at a time, at marks spread over the first 85% of the offered events (each waits for
the previous one's recovery): SIGKILL a consumer and restart it (--kills times); cut PostgreSQL;
cut Redis; flood duplicates (already-accepted events re-sent alone, then mixed into new batches);
restart the broker, last (the load paused until every promised event is stored, as the memory
broker keeps nothing; topics re-created; load resumed). Recovery, from the fault's end (process
restarted / service restored): (a) ingest answers 202 again (a probe event re-sent every 0.25 s),
(b) the rated ledger's count moves again, (c) the consumer group's committed offsets move again.
Each is bounded by --recovery-timeout and printed as "did not recover in N s" past it. A part
that did not recover is then restarted as an operator would (the web if ingest is stuck, else the
consumers; not with --no-remedy) and measured again: the fault still fails the run, but later
faults, and the consumer behind a stuck web, still get measured. Every wait has a deadline.

At the end, after every promised event is stored and every offset committed (or --drain-timeout):
offered, accepted, duplicates, stored, rated, quantities, LOST (promised — answered accepted or
duplicate — but not in the raw ledger), DOUBLE-COUNTED (raw rows per (tenant, event_id) > 1, rated
rows per raw event > 1, running-total units ≠ the stored events' quantities as sent), answers by
status, recovery per fault, `verify_ledger`, and the errors the platform logged. Exit 1 on a lost
or double-counted event, a 500, a dropped connection, a fault that did not heal in time, a
consumer that did not catch up, or verify_ledger failing; 2 when the platform could not start.
"""
