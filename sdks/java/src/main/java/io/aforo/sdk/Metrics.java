package io.aforo.sdk;

import java.util.concurrent.atomic.AtomicLong;

/**
 * Counters of one client, cumulative since it started. {@link #snapshot()} reads them together.
 * sent = accepted by the server; duplicates = answered duplicate (a retry that had landed);
 * rejected = refused by the server (per event or a 4xx for the whole batch); dropped = lost by the
 * SDK (buffer full, or closed without a spool before delivery); retries = requests retried;
 * batches = requests that got an answer.
 */
public final class Metrics {
    final AtomicLong sent = new AtomicLong();
    final AtomicLong duplicates = new AtomicLong();
    final AtomicLong rejected = new AtomicLong();
    final AtomicLong dropped = new AtomicLong();
    final AtomicLong retries = new AtomicLong();
    final AtomicLong batches = new AtomicLong();

    public record Snapshot(long sent, long duplicates, long rejected, long dropped, long retries, long batches,
                           int buffered) {}

    private final java.util.function.IntSupplier buffered;

    Metrics(java.util.function.IntSupplier buffered) {
        this.buffered = buffered;
    }

    public Snapshot snapshot() {
        return new Snapshot(sent.get(), duplicates.get(), rejected.get(), dropped.get(), retries.get(), batches.get(),
                buffered.getAsInt());
    }
}
