package io.aforo.sdk;

import java.math.BigDecimal;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;

/**
 * A metered session over a prepaid wallet: an escrow hold is placed when it opens
 * ({@code POST /api/v1/wallets/{id}/holds}), {@link #commit} charges the actual amount and
 * releases the rest, and {@link #close} releases the hold if it was not committed — so a
 * try-with-resources block that throws gives the reservation back:
 *
 * <pre>{@code
 * try (MeteredSession s = aforo.openSession(MeteredSession.options(walletId, "10"))) {
 *     s.record(UsageEvent.builder().apiKey(key).metric("tool_calls").quantity(1));  // draws from the hold
 *     s.commit(new BigDecimal("3.25"));
 * }
 * }</pre>
 *
 * Events recorded through {@link #record} carry the hold's reference as their {@code session_id}
 * dimension, so they draw from the hold when rated. Every call is safe to retry (the hold's
 * idempotency key; commit and release answer a retry with the first result), and the SDK retries
 * network errors, 429 and 5xx a few times before throwing {@link AforoException}.
 */
public final class MeteredSession implements AutoCloseable {
    /** The work of {@link AforoClient#withSession}: returns the actual amount to commit. */
    @FunctionalInterface
    public interface Work<E extends Exception> {
        BigDecimal run(MeteredSession session) throws E;
    }

    /** A hold as the API answers it (amounts are decimal strings). */
    public record Hold(long id, String status, String amount, String drawn, String remaining, String committedAmount,
                       String reference, Map<String, Object> raw) {
        static Hold of(Map<String, Object> m) {
            return new Hold(((Number) m.get("id")).longValue(), s(m.get("status")), s(m.get("amount")), s(m.get("drawn")),
                    s(m.get("remaining")), s(m.get("committed_amount")), s(m.get("reference")), m);
        }

        private static String s(Object o) {
            return o == null ? null : o.toString();
        }
    }

    /** What to hold: {@code amount} on wallet {@code walletId} for {@code ttlSeconds} (default 900). */
    public record Options(long walletId, String amount, int ttlSeconds, String reference, String idempotencyKey) {
        public Options {
            Objects.requireNonNull(amount, "amount");
            if (reference == null) reference = "session-" + UuidV7.nextString();
            if (idempotencyKey == null) idempotencyKey = reference + ":open";
        }

        public Options ttlSeconds(int ttl) {
            return new Options(walletId, amount, ttl, reference, idempotencyKey);
        }

        public Options reference(String ref) {
            return new Options(walletId, amount, ttlSeconds, ref, ref + ":open");
        }
    }

    public static Options options(long walletId, String amount) {
        return new Options(walletId, amount, 900, null, null);
    }

    private static final int ATTEMPTS = 4;

    private final AforoClient client;
    private final Transport transport;
    private final Hold placed;
    private Hold last;
    private boolean finished;

    private MeteredSession(AforoClient client, Transport transport, Hold placed) {
        this.client = client;
        this.transport = transport;
        this.placed = placed;
        this.last = placed;
    }

    static MeteredSession open(AforoClient client, Transport transport, Options o) {
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("amount", o.amount());
        body.put("ttl_seconds", o.ttlSeconds());
        body.put("reference", o.reference());
        body.put("idempotency_key", o.idempotencyKey());
        Hold hold = Hold.of(transport.call("/api/v1/wallets/" + o.walletId() + "/holds", body, ATTEMPTS));
        return new MeteredSession(client, transport, hold);
    }

    public long holdId() {
        return placed.id();
    }

    public String reference() {
        return placed.reference();
    }

    /** The hold as placed (or as the last commit/release answered). */
    public synchronized Hold hold() {
        return last;
    }

    /** Records an event of this session: its {@code session_id} dimension is the hold's reference. */
    public boolean record(UsageEvent.Builder event) {
        return client.record(event.dimension("session_id", placed.reference()).build());
    }

    /** Charges {@code actual} (on top of what the session's rated events drew) and releases the rest. */
    public synchronized Hold commit(BigDecimal actual) {
        if (finished) throw new IllegalStateException("the session is already " + last.status());
        last = Hold.of(transport.call("/api/v1/holds/" + placed.id() + "/commit",
                Map.of("amount", actual.toPlainString()), ATTEMPTS));
        finished = true;
        return last;
    }

    /** Gives the reservation back, charging nothing. */
    public synchronized Hold release() {
        if (finished) return last;
        last = Hold.of(transport.call("/api/v1/holds/" + placed.id() + "/release", Map.of(), ATTEMPTS));
        finished = true;
        return last;
    }

    /** Releases the hold unless it was committed (an exception in the block ends here). */
    @Override
    public synchronized void close() {
        if (!finished) release();
    }
}
