package io.aforo.sdk;

import java.time.Duration;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Exponential backoff with "equal jitter": the n-th retry waits d/2 + random(0, d/2) where
 * d = min(max, base * 2^n), so waits grow and clients that failed together spread out. A server's
 * {@code Retry-After} is a floor (capped at 5 minutes): never retry sooner than it asked.
 */
final class Backoff {
    static final long MAX_RETRY_AFTER_MS = 300_000;

    private Backoff() {}

    static long delayMs(int attempt, Duration base, Duration max, Long retryAfterMs) {
        long cap = max.toMillis();
        long d = base.toMillis() << Math.min(attempt, 30);
        if (d <= 0 || d > cap) d = cap;
        long jittered = d / 2 + ThreadLocalRandom.current().nextLong(d / 2 + 1);
        if (retryAfterMs != null) return Math.max(jittered, Math.min(retryAfterMs, MAX_RETRY_AFTER_MS));
        return jittered;
    }

    /** Retry-After as delta-seconds or an HTTP-date; null when absent or unreadable. */
    static Long parseRetryAfter(String value) {
        if (value == null || value.isBlank()) return null;
        String v = value.trim();
        try {
            return Math.max(0, Long.parseLong(v)) * 1000;
        } catch (NumberFormatException notSeconds) {
            try {
                long at = ZonedDateTime.parse(v, DateTimeFormatter.RFC_1123_DATE_TIME).toInstant().toEpochMilli();
                return Math.max(0, at - System.currentTimeMillis());
            } catch (RuntimeException notADate) {
                return null;
            }
        }
    }
}
