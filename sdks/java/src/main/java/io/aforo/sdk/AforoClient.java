package io.aforo.sdk;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.math.BigDecimal;
import java.net.URI;
import java.net.http.HttpClient;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * The Aforo client: {@link #record} puts an event in a bounded in-memory buffer and returns at
 * once; a background thread sends the buffer in batches (when it holds {@code batchSize} events,
 * every {@code flushInterval}, on {@link #flush} and on {@link #close}), retrying network errors,
 * 429 and 5xx with exponential backoff and jitter (honouring {@code Retry-After}), never 4xx.
 * Every event's fate reaches the {@link ResultListener}.
 *
 * <p><b>Overflow policy: drop newest.</b> When the buffer holds {@code maxBufferedEvents} events not
 * yet acknowledged (queued plus in flight), {@code record} refuses the new event: it returns false,
 * counts it in {@code dropped} and reports it DROPPED ({@code buffer_full}) to the listener. It
 * never blocks the caller.
 *
 * <pre>{@code
 * AforoClient aforo = AforoClient.builder(URI.create("https://aforo.example"), System.getenv("AFORO_INGEST_TOKEN")).build();
 * aforo.record(UsageEvent.builder().apiKey(key).metric("api_calls").quantity(1).build());
 * }</pre>
 */
public final class AforoClient implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(AforoClient.class.getName());

    private final Config config;
    private final Transport transport;
    private final Metrics metrics;
    private final Entitlements entitlements;
    private final Spool spool;

    private final ReentrantLock lock = new ReentrantLock();
    private final Condition wake = lock.newCondition();
    private final Condition idle = lock.newCondition();
    private final ArrayDeque<UsageEvent> queue = new ArrayDeque<>();
    private int inFlight;
    private List<UsageEvent> inFlightBatch = List.of();
    private long flushGeneration; // flush() waits until the flusher has emptied the queue after it asked
    private long emptiedGeneration;
    private boolean closing;
    private volatile boolean closingVolatile; // read by the flusher outside the lock (retry waits)
    private volatile long closeDeadline;
    private boolean closed;
    private final Thread flusher;
    private final Thread shutdownHook;

    private AforoClient(Config config) {
        this.config = config;
        this.transport = new Transport(config.url, config.ingestToken, config.httpClient, config.requestTimeout);
        this.metrics = new Metrics(this::buffered);
        this.entitlements = new Entitlements(transport, config.entitlementCacheTtl);
        if (config.spoolPath != null) {
            List<UsageEvent> replayed = new ArrayList<>();
            try {
                this.spool = Spool.open(config.spoolPath, replayed);
            } catch (IOException e) {
                throw new UncheckedIOException("cannot open the spool " + config.spoolPath, e);
            }
            queue.addAll(replayed); // replayed events are sent first, above the buffer bound if need be
            if (!replayed.isEmpty()) LOG.info("aforo: replaying " + replayed.size() + " spooled events");
        } else {
            this.spool = null;
        }
        this.flusher = new Thread(this::run, "aforo-flusher");
        this.flusher.setDaemon(true);
        this.flusher.start();
        if (config.shutdownHook) {
            this.shutdownHook = new Thread(this::close, "aforo-shutdown");
            Runtime.getRuntime().addShutdownHook(shutdownHook);
        } else {
            this.shutdownHook = null;
        }
    }

    public static Builder builder(URI url, String ingestToken) {
        return new Builder(url, ingestToken);
    }

    public static Builder builder(String url, String ingestToken) {
        return new Builder(URI.create(url), ingestToken);
    }

    // --- recording -----------------------------------------------------------------------------

    /**
     * Buffers the event for sending. Returns false (and reports it DROPPED, {@code buffer_full})
     * when the buffer is full or the client is closed: the overflow policy is drop newest.
     */
    public boolean record(UsageEvent event) {
        Objects.requireNonNull(event, "event");
        String refusal = null;
        lock.lock();
        try {
            if (closing) {
                refusal = "closed";
            } else if (queue.size() + inFlight >= config.maxBufferedEvents) {
                refusal = "buffer_full";
            } else {
                if (spool != null) {
                    try {
                        spool.add(event);
                    } catch (IOException e) {
                        LOG.log(Level.WARNING, "aforo: spool write failed; the event stays in memory only", e);
                    }
                }
                queue.addLast(event);
                if (queue.size() >= config.batchSize) wake.signal();
            }
        } finally {
            lock.unlock();
        }
        if (refusal != null) {
            metrics.dropped.incrementAndGet();
            report(new EventResult(event.eventId(), EventResult.Status.DROPPED, refusal, null,
                    refusal.equals("closed") ? "the client is closed" : "the buffer is full (" + config.maxBufferedEvents + " events)",
                    event));
            return false;
        }
        return true;
    }

    /** Builds (id and timestamp now) and records an event billed to an API key. */
    public UsageEvent record(String apiKey, String metric, String quantity) {
        UsageEvent event = UsageEvent.builder().apiKey(apiKey).metric(metric).quantity(quantity).build();
        record(event);
        return event;
    }

    /**
     * Sends everything buffered now and waits until the server answered for it (or the timeout).
     * Returns true when the buffer was emptied (events may have been accepted or rejected).
     */
    public boolean flush(Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        lock.lock();
        try {
            long generation = ++flushGeneration;
            wake.signal();
            while (emptiedGeneration < generation) {
                long left = deadline - System.nanoTime();
                if (left <= 0 || closed) return emptiedGeneration >= generation;
                idle.awaitNanos(left);
            }
            return true;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        } finally {
            lock.unlock();
        }
    }

    public Metrics.Snapshot metrics() {
        return metrics.snapshot();
    }

    int buffered() {
        lock.lock();
        try {
            return queue.size() + inFlight;
        } finally {
            lock.unlock();
        }
    }

    // --- helpers -------------------------------------------------------------------------------

    /** May this subject use {@code units} more of {@code metric} now? Cached for {@code entitlementCacheTtl}. */
    public Entitlement checkEntitlement(EntitlementRequest request) {
        return entitlements.check(request);
    }

    public Entitlement checkEntitlement(String apiKey, String metric) {
        return entitlements.check(EntitlementRequest.forApiKey(apiKey, metric));
    }

    /** Places an escrow hold and returns the open session: commit the actual amount, or close() releases it. */
    public MeteredSession openSession(MeteredSession.Options options) {
        return MeteredSession.open(this, transport, options);
    }

    /**
     * Runs {@code work} inside a metered session: a hold of {@code options.amount()} is placed
     * first; the amount {@code work} returns is committed; if {@code work} throws, the hold is
     * released and the exception propagates.
     */
    public <E extends Exception> MeteredSession.Hold withSession(MeteredSession.Options options,
            MeteredSession.Work<E> work) throws E {
        try (MeteredSession session = openSession(options)) {
            BigDecimal actual = work.run(session);
            return session.commit(actual);
        }
    }

    // --- the flusher ---------------------------------------------------------------------------

    private void run() {
        long nextTick = System.nanoTime() + config.flushInterval.toNanos();
        while (true) {
            List<UsageEvent> batch = new ArrayList<>();
            long requested;
            lock.lock();
            try {
                while (!closing && queue.size() < config.batchSize && flushGeneration == emptiedGeneration
                        && System.nanoTime() < nextTick) {
                    wake.awaitNanos(nextTick - System.nanoTime());
                }
                requested = flushGeneration;
                if (queue.isEmpty()) {
                    emptiedGeneration = requested;
                    idle.signalAll();
                    nextTick = System.nanoTime() + config.flushInterval.toNanos();
                    if (closing) break;
                    continue;
                }
                while (!queue.isEmpty() && batch.size() < config.batchSize) batch.add(queue.pollFirst());
                inFlight = batch.size();
                inFlightBatch = batch;
            } catch (InterruptedException e) {
                break;
            } finally {
                lock.unlock();
            }
            batch = boundBySize(batch); // encodes the events outside the lock: record() never waits on it
            List<UsageEvent> undelivered = deliver(batch);
            lock.lock();
            try {
                inFlight = 0;
                inFlightBatch = List.of();
                if (!undelivered.isEmpty()) { // closing and out of time: it stays in the spool, or is lost
                    abandon(undelivered);
                    emptiedGeneration = flushGeneration;
                    idle.signalAll();
                    break;
                }
                if (queue.isEmpty()) {
                    emptiedGeneration = requested;
                    idle.signalAll();
                }
                if (spool != null && spool.wantsCompaction()) {
                    try {
                        spool.rewrite(queue);
                    } catch (IOException e) {
                        LOG.log(Level.WARNING, "aforo: spool compaction failed", e);
                    }
                }
                if (queue.size() < config.batchSize) nextTick = System.nanoTime() + config.flushInterval.toNanos();
            } finally {
                lock.unlock();
            }
        }
    }

    /** Keeps the batch under the body limit (2 MiB): the tail that does not fit goes back to the queue's head. */
    private List<UsageEvent> boundBySize(List<UsageEvent> batch) {
        int chars = 0;
        for (int i = 0; i < batch.size(); i++) {
            chars += batch.get(i).toJson().length() + 1;
            if (i > 0 && chars > config.maxBatchChars) {
                List<UsageEvent> kept = new ArrayList<>(batch.subList(0, i));
                lock.lock();
                try {
                    for (int j = batch.size() - 1; j >= i; j--) queue.addFirst(batch.get(j));
                    inFlight = kept.size();
                    inFlightBatch = kept;
                } finally {
                    lock.unlock();
                }
                return kept;
            }
        }
        return batch;
    }

    /** Sends one batch until the server answered for every event; returns what closing left undelivered. */
    private List<UsageEvent> deliver(List<UsageEvent> batch) {
        int attempt = 0;
        while (true) {
            Transport.Answer answer;
            Long retryAfterMs = null;
            String why;
            try {
                answer = transport.postEvents(batch);
                metrics.batches.incrementAndGet();
                if (answer.status() == 413 && batch.size() > 1) {
                    int half = batch.size() / 2;
                    List<UsageEvent> left = new ArrayList<>(deliver(new ArrayList<>(batch.subList(0, half))));
                    List<UsageEvent> second = new ArrayList<>(batch.subList(half, batch.size()));
                    left.addAll(left.isEmpty() ? deliver(second) : second);
                    return left;
                }
                if (!Transport.retryable(answer.status())) {
                    settle(batch, answer);
                    return List.of();
                }
                retryAfterMs = answer.retryAfterMs();
                why = "HTTP " + answer.status();
            } catch (IOException e) {
                why = e.getClass().getSimpleName() + (e.getMessage() != null ? ": " + e.getMessage() : "");
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return batch;
            }
            long delayMs = Backoff.delayMs(attempt++, config.backoffBase, config.backoffMax, retryAfterMs);
            long now = System.nanoTime();
            if (closingVolatile && now + TimeUnit.MILLISECONDS.toNanos(delayMs) - closeDeadline > 0) {
                // closing: one last try at the deadline if there is time left, else give up
                delayMs = Math.max(0, TimeUnit.NANOSECONDS.toMillis(closeDeadline - now));
                if (delayMs == 0) return batch;
            }
            metrics.retries.incrementAndGet();
            LOG.log(Level.FINE, "aforo: batch of {0} not delivered ({1}); retry {2} in {3} ms",
                    new Object[] {batch.size(), why, attempt, delayMs});
            if (!sleep(delayMs)) return batch;
        }
    }

    private final Object retrySleep = new Object();

    /** Waits before a retry; close() cuts it short (the deadline is read under the monitor close notifies). */
    private boolean sleep(long ms) {
        synchronized (retrySleep) {
            long untilDeadline = closingVolatile ? TimeUnit.NANOSECONDS.toMillis(closeDeadline - System.nanoTime())
                    : Long.MAX_VALUE;
            long wait = Math.min(ms, Math.max(untilDeadline, 0));
            if (wait <= 0) return untilDeadline > 0;
            try {
                retrySleep.wait(wait);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return false;
            }
        }
        return true;
    }

    /** The server answered for the batch (2xx, 207, or a 4xx): one result per event. */
    private void settle(List<UsageEvent> batch, Transport.Answer answer) {
        List<EventResult> results = new ArrayList<>(batch.size());
        List<?> perEvent = answer.body() != null && answer.body().get("results") instanceof List<?> l ? l : null;
        boolean ok = answer.status() >= 200 && answer.status() < 300;
        if (perEvent != null && perEvent.size() == batch.size()) {
            for (int i = 0; i < batch.size(); i++) {
                UsageEvent event = batch.get(i);
                Map<?, ?> r = perEvent.get(i) instanceof Map<?, ?> m ? m : Map.of();
                int index = r.get("index") instanceof Number n ? n.intValue() : i;
                if (index != i && index >= 0 && index < batch.size()) event = batch.get(index);
                String status = String.valueOf(r.get("status"));
                switch (status) {
                    case "accepted" -> results.add(new EventResult(event.eventId(), EventResult.Status.ACCEPTED,
                            null, null, null, event));
                    case "duplicate" -> results.add(new EventResult(event.eventId(), EventResult.Status.DUPLICATE,
                            str(r.get("reason")), null, null, event));
                    default -> results.add(new EventResult(event.eventId(), EventResult.Status.REJECTED,
                            str(r.get("code")), str(r.get("field")), str(r.get("message")), event));
                }
            }
        } else {
            Map<?, ?> error = answer.body() != null && answer.body().get("error") instanceof Map<?, ?> m ? m : Map.of();
            String code = ok ? null : error.get("code") != null ? str(error.get("code")) : "http_" + answer.status();
            String message = ok ? null : error.get("message") != null ? str(error.get("message")) : answer.text();
            for (UsageEvent event : batch) {
                results.add(new EventResult(event.eventId(), ok ? EventResult.Status.ACCEPTED : EventResult.Status.REJECTED,
                        code, null, message, event));
            }
        }
        List<String> ids = new ArrayList<>(batch.size());
        for (EventResult r : results) {
            switch (r.status()) {
                case ACCEPTED -> metrics.sent.incrementAndGet();
                case DUPLICATE -> metrics.duplicates.incrementAndGet();
                default -> metrics.rejected.incrementAndGet();
            }
            ids.add(r.eventId());
        }
        if (spool != null) {
            lock.lock();
            try {
                spool.ack(ids);
            } catch (IOException e) {
                LOG.log(Level.WARNING, "aforo: spool ack failed (a restart would resend; the server dedupes)", e);
            } finally {
                lock.unlock();
            }
        }
        for (EventResult r : results) report(r);
    }

    /** Called under the lock when closing ran out of time with this batch undelivered. */
    private void abandon(List<UsageEvent> batch) {
        List<UsageEvent> events = new ArrayList<>(batch);
        events.addAll(queue);
        queue.clear();
        if (events.isEmpty()) return;
        if (spool != null) {
            queue.addAll(events); // close() writes them back to the spool
            LOG.warning("aforo: closing with " + events.size() + " events undelivered; they stay in the spool "
                    + config.spoolPath + " and are sent when a client opens it");
            return;
        }
        LOG.warning("aforo: closing with " + events.size() + " events undelivered and no spool: they are lost");
        for (UsageEvent event : events) {
            metrics.dropped.incrementAndGet();
            report(new EventResult(event.eventId(), EventResult.Status.DROPPED, "closed_undelivered", null,
                    "the client closed before the server acknowledged it", event));
        }
    }

    private void report(EventResult result) {
        try {
            config.listener.onResult(result);
        } catch (RuntimeException e) {
            LOG.log(Level.WARNING, "aforo: the result listener threw", e);
        }
    }

    private static String str(Object o) {
        return o == null ? null : o.toString();
    }

    // --- closing -------------------------------------------------------------------------------

    /** Flushes (up to {@code closeTimeout}) and stops. Undelivered events stay in the spool, if any. */
    @Override
    public void close() {
        close(config.closeTimeout);
    }

    public void close(Duration timeout) {
        lock.lock();
        try {
            if (closed) return;
            if (!closing) {
                closing = true;
                closeDeadline = System.nanoTime() + timeout.toNanos();
                closingVolatile = true;
            }
            wake.signalAll();
        } finally {
            lock.unlock();
        }
        synchronized (retrySleep) {
            retrySleep.notifyAll();
        }
        try {
            flusher.join(timeout.toMillis() + config.requestTimeout.toMillis() + 1000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        lock.lock();
        try {
            if (closed) return;
            closed = true;
            if (spool != null) {
                try {
                    List<UsageEvent> pending = new ArrayList<>(inFlightBatch); // if the flusher is still stuck in a request
                    pending.addAll(queue);
                    spool.rewrite(pending);
                    spool.close();
                } catch (IOException e) {
                    LOG.log(Level.WARNING, "aforo: closing the spool failed", e);
                }
            }
            idle.signalAll();
        } finally {
            lock.unlock();
        }
        if (shutdownHook != null && Thread.currentThread() != shutdownHook) {
            try {
                Runtime.getRuntime().removeShutdownHook(shutdownHook);
            } catch (IllegalStateException alreadyShuttingDown) {
                // the JVM is exiting: the hook is this very call or about to run and find us closed
            }
        }
    }

    // --- configuration -------------------------------------------------------------------------

    record Config(URI url, String ingestToken, int batchSize, Duration flushInterval, int maxBufferedEvents,
                  int maxBatchChars, Path spoolPath, ResultListener listener, HttpClient httpClient,
                  Duration requestTimeout, Duration backoffBase, Duration backoffMax, Duration closeTimeout,
                  Duration entitlementCacheTtl, boolean shutdownHook) {}

    public static final class Builder {
        private final URI url;
        private final String ingestToken;
        private int batchSize = 500;
        private Duration flushInterval = Duration.ofSeconds(1);
        private int maxBufferedEvents = 100_000;
        private int maxBatchChars = 600_000;
        private Path spoolPath;
        private ResultListener listener = Builder::logResult;
        private HttpClient httpClient;
        private Duration requestTimeout = Duration.ofSeconds(10);
        private Duration backoffBase = Duration.ofMillis(200);
        private Duration backoffMax = Duration.ofSeconds(30);
        private Duration closeTimeout = Duration.ofSeconds(10);
        private Duration entitlementCacheTtl = Duration.ofSeconds(1);
        private boolean shutdownHook = true;

        private Builder(URI url, String ingestToken) {
            this.url = Objects.requireNonNull(url, "url");
            this.ingestToken = Objects.requireNonNull(ingestToken, "ingestToken");
        }

        /** Events per request (1..1000; default 500). A full batch is sent at once. */
        public Builder batchSize(int n) {
            if (n < 1 || n > 1000) throw new IllegalArgumentException("batchSize is 1..1000");
            batchSize = n;
            return this;
        }
        /** How often a partial batch is sent (default 1 s). */
        public Builder flushInterval(Duration d) { flushInterval = d; return this; }
        /** The bound on events held (queued + in flight; default 100,000): past it, drop newest. */
        public Builder maxBufferedEvents(int n) { maxBufferedEvents = n; return this; }
        /** Keep a spool at this path: undelivered events survive a restart (default: none). */
        public Builder spool(Path path) { spoolPath = path; return this; }
        /** Where every event's fate goes (default: REJECTED and DROPPED logged at WARNING). */
        public Builder listener(ResultListener l) { listener = Objects.requireNonNull(l); return this; }
        public Builder httpClient(HttpClient c) { httpClient = c; return this; }
        public Builder requestTimeout(Duration d) { requestTimeout = d; return this; }
        /** First retry after about this (default 200 ms), doubling up to {@link #backoffMax} (default 30 s). */
        public Builder backoffBase(Duration d) { backoffBase = d; return this; }
        public Builder backoffMax(Duration d) { backoffMax = d; return this; }
        /** How long close() keeps trying to deliver (default 10 s). */
        public Builder closeTimeout(Duration d) { closeTimeout = d; return this; }
        public Builder entitlementCacheTtl(Duration d) { entitlementCacheTtl = d; return this; }
        /** Register a JVM shutdown hook that calls close() (default true). */
        public Builder shutdownHook(boolean on) { shutdownHook = on; return this; }
        Builder maxBatchChars(int n) { maxBatchChars = n; return this; }

        public AforoClient build() {
            HttpClient client = httpClient != null ? httpClient : HttpClient.newBuilder()
                    .version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(5)).build();
            return new AforoClient(new Config(url, ingestToken, batchSize, flushInterval, maxBufferedEvents,
                    maxBatchChars, spoolPath, listener, client, requestTimeout, backoffBase, backoffMax, closeTimeout,
                    entitlementCacheTtl, shutdownHook));
        }

        private static void logResult(EventResult r) {
            if (!r.delivered()) {
                LOG.warning("aforo: event " + r.eventId() + " " + r.status() + " " + r.code()
                        + (r.field() != null ? " (" + r.field() + ")" : "") + ": " + r.message());
            }
        }
    }
}
