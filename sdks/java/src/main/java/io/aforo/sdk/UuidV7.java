package io.aforo.sdk;

import java.security.SecureRandom;
import java.util.SplittableRandom;
import java.util.UUID;

/**
 * UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits, version 7, variant 10.
 * Monotonic within the process: within one millisecond the 12-bit counter in rand_a grows, so ids
 * sort in creation order (and the server's btree index stays append-mostly). The 62 random bits
 * come from a per-thread generator seeded from {@link SecureRandom}: ids must be unique, not secret,
 * and a shared {@code SecureRandom} is a lock every recording thread would queue on.
 */
public final class UuidV7 {
    private static final SecureRandom SEEDS = new SecureRandom();
    private static final ThreadLocal<SplittableRandom> RANDOM =
            ThreadLocal.withInitial(() -> new SplittableRandom(SEEDS.nextLong()));
    private static long lastMillis = -1;
    private static int counter;

    private UuidV7() {}

    public static UUID next() {
        long millis;
        int seq;
        synchronized (UuidV7.class) {
            millis = System.currentTimeMillis();
            if (millis <= lastMillis) {
                millis = lastMillis;
                counter++;
                if (counter > 0xFFF) { // 4096 ids in one millisecond: borrow the next millisecond
                    millis = ++lastMillis;
                    counter = RANDOM.get().nextInt(0x400);
                }
            } else {
                lastMillis = millis;
                counter = RANDOM.get().nextInt(0x400); // leaves headroom for the counter
            }
            seq = counter;
        }
        long msb = (millis << 16) | 0x7000L | (seq & 0xFFFL);
        long lsb = (RANDOM.get().nextLong() & 0x3FFFFFFFFFFFFFFFL) | 0x8000000000000000L;
        return new UUID(msb, lsb);
    }

    public static String nextString() {
        return next().toString();
    }
}
