package io.aforo.sdk;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.Map;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;

/** Proof (4): what Aforo refuses reaches the listener with its code, and is counted — never silently dropped. */
class RejectedEventsTest {
    private final Platform platform = Platform.get();

    @Test
    void perEventRejectionsReachTheListener() {
        String key = platform.apiKey("Acme Corp");
        Collector results = new Collector();
        try (AforoClient aforo = platform.client().listener(results).build()) {
            UsageEvent good = aforo.record(key, "agent_sessions", "1");
            UsageEvent negative = aforo.record(key, "agent_sessions", "-1");
            UsageEvent badMetric = aforo.record(key, "not a metric!", "1");
            UsageEvent floaty = aforo.record(key, "agent_sessions", "1.5.5");
            assertTrue(aforo.flush(Duration.ofSeconds(20)));
            Map<String, EventResult> byId = results.results.stream()
                    .collect(Collectors.toMap(EventResult::eventId, r -> r));
            assertEquals(EventResult.Status.ACCEPTED, byId.get(good.eventId()).status());
            assertEquals("negative_quantity", byId.get(negative.eventId()).code());
            assertEquals("quantity", byId.get(negative.eventId()).field());
            assertEquals("invalid_metric", byId.get(badMetric.eventId()).code());
            assertEquals("invalid_quantity", byId.get(floaty.eventId()).code());
            assertEquals(EventResult.Status.REJECTED, byId.get(floaty.eventId()).status());
            assertEquals(3, aforo.metrics().rejected());
            assertEquals(1, aforo.metrics().sent());
            assertEquals(0, aforo.metrics().retries());
        }
    }

    @Test
    void aWholeBatch4xxIsReportedAndNotRetried() {
        Collector results = new Collector();
        try (AforoClient aforo = AforoClient.builder(platform.url, "aft_ingest_wrong").shutdownHook(false)
                .listener(results).build()) {
            aforo.record(platform.apiKey("Acme Corp"), "agent_sessions", "1");
            aforo.record(platform.apiKey("Acme Corp"), "agent_sessions", "2");
            assertTrue(aforo.flush(Duration.ofSeconds(20)));
            assertEquals(2, results.count(EventResult.Status.REJECTED));
            assertEquals("invalid_credentials", results.results.get(0).code());
            assertEquals(0, aforo.metrics().retries());
            assertEquals(1, aforo.metrics().batches());
        }
    }

    @Test
    void aBatchWhoseEveryEventIsRejectedReportsEachEventsCode() {
        Collector results = new Collector();
        try (AforoClient aforo = platform.client().listener(results).build()) {
            aforo.record(platform.apiKey("Acme Corp"), "agent_sessions", "-3");
            aforo.record(UsageEvent.builder().apiKey(platform.apiKey("Acme Corp")).metric("agent_sessions").quantity(1)
                    .timestamp("2020-01-01T00:00:00Z").build());
            assertTrue(aforo.flush(Duration.ofSeconds(20)));
            assertEquals(java.util.List.of("negative_quantity", "timestamp_too_old"),
                    results.results.stream().map(EventResult::code).toList(), "per event, not the batch's invalid_events");
            assertEquals(2, aforo.metrics().rejected());
            assertEquals(0, aforo.metrics().retries());
        }
    }
}
