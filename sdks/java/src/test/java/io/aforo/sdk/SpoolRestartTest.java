package io.aforo.sdk;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.UncheckedIOException;
import java.math.BigDecimal;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashSet;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** Proof (3): the app restarts while Aforo is down; the spool carries the events to the next client, delivered once. */
class SpoolRestartTest {
    private final Platform platform = Platform.get();

    @Test
    void eventsSurviveARestartThroughTheSpool() throws Exception {
        int n = 30;
        String key = platform.apiKey("Initech");
        BigDecimal before = platform.units(platform.customerId("Initech"), "api_calls");
        Path spool = Files.createTempDirectory("aforo-spool").resolve("events.jsonl");
        Set<String> ids = new HashSet<>();
        platform.webStop();
        Collector first = new Collector();
        try {
            AforoClient a = platform.client().spool(spool).listener(first).backoffMax(Duration.ofMillis(200)).build();
            for (int i = 0; i < n; i++) ids.add(a.record(key, "api_calls", "1").eventId());
            assertThrows(UncheckedIOException.class, () -> platform.client().spool(spool).build(), "one client per spool");
            assertTrue(!a.flush(Duration.ofMillis(500)), "nothing can be delivered while the web is down");
            a.close(Duration.ofMillis(300)); // the "process" stops with everything undelivered
            assertEquals(0, a.metrics().sent());
            assertEquals(0, first.results.size(), "spooled events are not reported lost");
        } finally {
            platform.webStart();
        }
        Collector second = new Collector();
        try (AforoClient b = platform.client().spool(spool).listener(second).build()) {
            assertTrue(b.flush(Duration.ofSeconds(30)));
            assertEquals(n, second.count(EventResult.Status.ACCEPTED), second.results::toString);
            Set<String> delivered = new HashSet<>();
            second.results.forEach(r -> delivered.add(r.eventId()));
            assertEquals(ids, delivered, "the same ids: a retry, not new events");
        }
        try (AforoClient c = platform.client().spool(spool).build()) {
            assertEquals(0, c.metrics().buffered(), "acknowledged events are not replayed again");
        }
        assertEquals(0, new BigDecimal(n).compareTo(platform.ratedSince("Initech", "api_calls", before)));
    }
}
