package io.aforo.sdk;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.aforo.sdk.servlet.AforoMeteringFilter;
import java.math.BigDecimal;
import java.time.Duration;
import org.junit.jupiter.api.Test;

/** Proofs (1) and (2): N requests through a real Tomcat with the filter → exactly N events rated, with and without an outage. */
class FilterEndToEndTest {
    private final Platform platform = Platform.get();

    @Test
    void everyRequestIsRatedExactlyOnce() throws Exception {
        int n = 40;
        String key = platform.apiKey("Acme Corp");
        BigDecimal before = platform.units(platform.customerId("Acme Corp"), "api_calls");
        Collector results = new Collector();
        try (AforoClient aforo = platform.client().listener(results).build();
             TestApp app = new TestApp(new AforoMeteringFilter(aforo).metric("api_calls"))) {
            for (int i = 0; i < n; i++) assertEquals(200, app.get("/v1/search?i=" + i, key));
            assertEquals(200, app.get("/v1/search", null)); // no key: not metered
            assertEquals(500, app.get("/fail", key)); // a server error: not billed
            assertTrue(aforo.flush(Duration.ofSeconds(20)));
            assertEquals(n, results.count(EventResult.Status.ACCEPTED), results.results::toString);
            assertEquals(n, aforo.metrics().sent());
        }
        assertEquals(0, new BigDecimal(n).compareTo(platform.ratedSince("Acme Corp", "api_calls", before)));
    }

    @Test
    void anOutageInTheMiddleLosesNothingAndDoublesNothing() throws Exception {
        int before_ = 15, during = 25, after = 10;
        String key = platform.apiKey("Acme Corp");
        BigDecimal before = platform.units(platform.customerId("Acme Corp"), "llm_tokens");
        Collector results = new Collector();
        try (AforoClient aforo = platform.client().listener(results).flushInterval(Duration.ofMillis(100))
                .backoffBase(Duration.ofMillis(50)).backoffMax(Duration.ofMillis(400)).build();
             TestApp app = new TestApp(new AforoMeteringFilter(aforo).metric("llm_tokens"))) {
            for (int i = 0; i < before_; i++) assertEquals(200, app.get("/chat?i=" + i, key));
            assertTrue(aforo.flush(Duration.ofSeconds(20)));
            platform.webStop();
            try {
                for (int i = 0; i < during; i++) assertEquals(200, app.get("/chat?o=" + i, key));
                // the flusher keeps failing and retrying while Aforo is down
                Platform.poll(Duration.ofSeconds(20), () -> aforo.metrics().retries() >= 2 ? true : null);
                assertEquals(during, aforo.metrics().buffered());
            } finally {
                platform.webStart();
            }
            for (int i = 0; i < after; i++) assertEquals(200, app.get("/chat?a=" + i, key));
            assertTrue(aforo.flush(Duration.ofSeconds(30)));
            int n = before_ + during + after;
            assertEquals(n, results.count(EventResult.Status.ACCEPTED) + results.count(EventResult.Status.DUPLICATE),
                    results.results::toString);
            assertEquals(0, aforo.metrics().dropped() + aforo.metrics().rejected());
            assertEquals(0, new BigDecimal(n).compareTo(platform.ratedSince("Acme Corp", "llm_tokens", before)));
        }
    }

    @Test
    void enforcementDeniesWith429WhenTheCheckSaysNo() throws Exception {
        Collector results = new Collector();
        try (AforoClient aforo = platform.client().listener(results).build();
             TestApp app = new TestApp(new AforoMeteringFilter(aforo).metric("api_calls").enforce(true))) {
            assertEquals(429, app.get("/v1/search", "sk_live_unknown_to_aforo"));
            assertEquals(200, app.get("/v1/search", platform.apiKey("Acme Corp")));
            assertTrue(aforo.flush(Duration.ofSeconds(20)));
            assertEquals(1, results.results.size(), "the denied request is not metered");
        }
    }
}
