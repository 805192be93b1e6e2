package io.aforo.sdk;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import org.junit.jupiter.api.Test;

class UnitTest {
    @Test
    void uuidV7IsVersion7AndSortsInCreationOrder() {
        String previous = "";
        for (int i = 0; i < 20_000; i++) {
            UUID u = UuidV7.next();
            assertEquals(7, u.version());
            assertEquals(2, u.variant());
            String s = u.toString();
            assertTrue(s.compareTo(previous) > 0, s + " after " + previous);
            previous = s;
        }
        long millis = UuidV7.next().getMostSignificantBits() >>> 16;
        assertTrue(Math.abs(System.currentTimeMillis() - millis) < 5_000);
    }

    @Test
    void jsonRoundTripKeepsDecimalsExact() {
        String text = "{\"a\":\"x\\\"y\\n\\u00e9\",\"n\":12345678901234567890.123,\"i\":7,\"l\":[true,false,null],\"o\":{}}";
        Map<String, Object> m = Json.decodeObject(text);
        assertEquals("x\"y\né", m.get("a"));
        assertEquals(new BigDecimal("12345678901234567890.123"), m.get("n"));
        assertEquals(7L, m.get("i"));
        assertEquals(Json.decodeObject(Json.encode(m)), m);
        assertEquals("\"\\u0000\\ud800\"", Json.encode("\u0000\ud800"), "control characters and lone surrogates escaped");
        assertEquals("\"😀\"", Json.encode("😀"));
        assertThrows(IllegalArgumentException.class, () -> Json.decode("{\"a\":"));
    }

    @Test
    void eventsCarryIdTimestampAndDecimalStringQuantity() {
        UsageEvent e = UsageEvent.builder().apiKey("k").metric("m").quantity(new BigDecimal("2.50")).build();
        Map<String, Object> m = Json.decodeObject(e.toJson());
        assertEquals("2.50", m.get("quantity"));
        assertEquals(7, UUID.fromString(e.eventId()).version());
        assertTrue(((String) m.get("timestamp")).endsWith("Z"));
        assertThrows(IllegalArgumentException.class, () -> UsageEvent.builder().metric("m").quantity(1).build());
        assertThrows(IllegalArgumentException.class,
                () -> UsageEvent.builder().apiKey("k").customerId(1).metric("m").quantity(1).build());
    }

    @Test
    void backoffGrowsIsJitteredAndHonoursRetryAfter() {
        Duration base = Duration.ofMillis(100), max = Duration.ofSeconds(5);
        for (int i = 0; i < 100; i++) {
            long d0 = Backoff.delayMs(0, base, max, null), d3 = Backoff.delayMs(3, base, max, null);
            assertTrue(d0 >= 50 && d0 <= 100, "attempt 0: " + d0);
            assertTrue(d3 >= 400 && d3 <= 800, "attempt 3: " + d3);
            assertTrue(Backoff.delayMs(40, base, max, null) <= 5000);
            assertTrue(Backoff.delayMs(0, base, max, 2000L) >= 2000);
        }
        assertEquals(7000L, Backoff.parseRetryAfter("7"));
        assertTrue(Backoff.parseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT") == 0L);
        assertEquals(null, Backoff.parseRetryAfter("soon"));
    }

    @Test
    void spoolReplaysUnacknowledgedEventsAndSkipsATornLine() throws Exception {
        Path path = Files.createTempDirectory("spool").resolve("s.jsonl");
        UsageEvent a = UsageEvent.builder().apiKey("k").metric("m").quantity(1).metadata("n", List.of(1, "x")).build();
        UsageEvent b = UsageEvent.builder().customerId(4).metric("m").quantity("2.5").dimension("d", "v").build();
        UsageEvent c = UsageEvent.builder().apiKey("k").metric("m").quantity(3).build();
        try (Spool spool = Spool.open(path, new ArrayList<>())) {
            spool.add(a);
            spool.add(b);
            spool.add(c);
            spool.ack(List.of(a.eventId()));
        }
        Files.writeString(path, "{\"add\":{\"event_id\":\"torn", StandardCharsets.UTF_8, java.nio.file.StandardOpenOption.APPEND);
        List<UsageEvent> pending = new ArrayList<>();
        try (Spool spool = Spool.open(path, pending)) {
            assertEquals(List.of(b.eventId(), c.eventId()), pending.stream().map(UsageEvent::eventId).toList());
            assertEquals(b.toJson(), pending.get(0).toJson(), "replayed byte for byte");
        }
        assertEquals(2, Files.readAllLines(path).size(), "compacted to the pending adds");
    }
}
