package io.aforo.sdk;

import java.time.Duration;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Entitlement checks with a short local cache (default 1 s): a burst of requests for the same
 * key and metric costs one round trip per TTL. The answer may lag what was just used by the TTL
 * plus the consumer's lag (~100 ms) — fine for a gate, not for exact accounting. The cache is
 * bounded (cleared when it passes 10,000 entries). Errors are not cached: an {@link AforoException}
 * reaches the caller, who decides to fail open or closed.
 */
final class Entitlements {
    private static final int MAX_ENTRIES = 10_000;

    private record Entry(long expiresAt, Entitlement value) {}

    private final Transport transport;
    private final long ttlNanos;
    private final ConcurrentHashMap<String, Entry> cache = new ConcurrentHashMap<>();

    Entitlements(Transport transport, Duration ttl) {
        this.transport = transport;
        this.ttlNanos = ttl.toNanos();
    }

    Entitlement check(EntitlementRequest request) {
        String key = request.cacheKey();
        long now = System.nanoTime();
        Entry hit = cache.get(key);
        if (hit != null && hit.expiresAt - now > 0) return hit.value.cached();
        Entitlement fresh = Entitlement.of(transport.call("/api/v1/entitlements/check", request.body(), 1));
        if (ttlNanos > 0) {
            if (cache.size() >= MAX_ENTRIES) cache.clear();
            cache.put(key, new Entry(now + ttlNanos, fresh));
        }
        return fresh;
    }
}
