package io.aforo.sdk;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * Proof (5), against a tiny local fake (the only test that does not use the real platform): 4xx is
 * never retried; 429 and 5xx are, honouring Retry-After; network errors are; every retry carries
 * the same event ids.
 */
class RetryPolicyTest {
    record Reply(int status, String retryAfter, String body) {}

    private HttpServer server;
    private final ArrayDeque<Reply> script = new ArrayDeque<>();
    private final List<String> bodies = new CopyOnWriteArrayList<>();
    private final List<Long> times = new CopyOnWriteArrayList<>();

    private String start() throws IOException {
        server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        server.createContext("/api/v1/events", exchange -> {
            String body = new String(exchange.getRequestBody().readAllBytes(), StandardCharsets.UTF_8);
            bodies.add(body);
            times.add(System.nanoTime());
            Reply reply;
            synchronized (script) {
                reply = script.isEmpty() ? null : script.poll();
            }
            String out = reply != null && reply.body() != null ? reply.body() : accepted(body);
            int status = reply != null ? reply.status() : 202;
            if (reply != null && reply.retryAfter() != null) exchange.getResponseHeaders().add("Retry-After", reply.retryAfter());
            exchange.getResponseHeaders().add("Content-Type", "application/json");
            byte[] bytes = out.getBytes(StandardCharsets.UTF_8);
            exchange.sendResponseHeaders(status, bytes.length);
            exchange.getResponseBody().write(bytes);
            exchange.close();
        });
        server.start();
        return "http://127.0.0.1:" + server.getAddress().getPort();
    }

    /** A 202 with every event accepted, as the real API answers. */
    @SuppressWarnings("unchecked")
    private static String accepted(String body) {
        List<Object> events = (List<Object>) Json.decodeObject(body).get("events");
        StringBuilder results = new StringBuilder();
        for (int i = 0; i < events.size(); i++) {
            if (i > 0) results.append(',');
            results.append("{\"index\":").append(i).append(",\"event_id\":\"")
                    .append(((Map<String, Object>) events.get(i)).get("event_id")).append("\",\"status\":\"accepted\"}");
        }
        return "{\"accepted\":" + events.size() + ",\"results\":[" + results + "]}";
    }

    @AfterEach
    void stop() {
        if (server != null) server.stop(0);
    }

    private AforoClient.Builder client(String url) {
        return AforoClient.builder(url, "aft_ingest_test").shutdownHook(false)
                .backoffBase(Duration.ofMillis(20)).backoffMax(Duration.ofMillis(100));
    }

    @Test
    void fiveHundredsAre_retried_withTheSameIds() throws IOException {
        String url = start();
        script.add(new Reply(503, null, "{\"error\":{\"code\":\"broker_unavailable\",\"message\":\"later\"}}"));
        script.add(new Reply(500, null, "oops"));
        Collector results = new Collector();
        try (AforoClient aforo = client(url).listener(results).build()) {
            UsageEvent e = aforo.record("sk_1", "api_calls", "1");
            assertTrue(aforo.flush(Duration.ofSeconds(10)));
            assertEquals(3, bodies.size());
            assertEquals(bodies.get(0), bodies.get(2), "a retry re-sends the very same events (ids included)");
            assertTrue(bodies.get(0).contains(e.eventId()));
            assertEquals(2, aforo.metrics().retries());
            assertEquals(1, results.count(EventResult.Status.ACCEPTED));
        }
    }

    @Test
    void tooManyRequestsHonoursRetryAfter() throws IOException {
        String url = start();
        script.add(new Reply(429, "1", "{\"error\":{\"code\":\"throttled\",\"message\":\"slow down\"}}"));
        try (AforoClient aforo = client(url).build()) {
            aforo.record("sk_1", "api_calls", "1");
            assertTrue(aforo.flush(Duration.ofSeconds(10)));
            assertEquals(2, bodies.size());
            long waitedMs = (times.get(1) - times.get(0)) / 1_000_000;
            assertTrue(waitedMs >= 950, "waited " + waitedMs + " ms, Retry-After said 1 s");
            assertEquals(1, aforo.metrics().sent());
        }
    }

    @Test
    void fourHundredsAreNotRetried() throws IOException {
        String url = start();
        script.add(new Reply(400, null, "{\"error\":{\"code\":\"malformed_json\",\"message\":\"bad\"}}"));
        Collector results = new Collector();
        try (AforoClient aforo = client(url).listener(results).build()) {
            aforo.record("sk_1", "api_calls", "1");
            aforo.record("sk_1", "api_calls", "2");
            assertTrue(aforo.flush(Duration.ofSeconds(10)));
            assertEquals(1, bodies.size());
            assertEquals(0, aforo.metrics().retries());
            assertEquals(2, aforo.metrics().rejected());
            assertEquals("malformed_json", results.results.get(0).code());
        }
    }

    @Test
    void tooLargeBatchesAreSplit() throws IOException {
        String url = start();
        script.add(new Reply(413, null, "{\"error\":{\"code\":\"payload_too_large\",\"message\":\"big\"}}"));
        try (AforoClient aforo = client(url).build()) {
            for (int i = 0; i < 4; i++) aforo.record("sk_1", "api_calls", "1");
            assertTrue(aforo.flush(Duration.ofSeconds(10)));
            assertEquals(3, bodies.size(), "the batch of 4, then two halves");
            assertEquals(4, aforo.metrics().sent());
        }
    }

    @Test
    void networkErrorsAreRetriedUntilTheServerAnswers() throws Exception {
        int port;
        try (ServerSocket s = new ServerSocket(0)) {
            port = s.getLocalPort(); // closed again: connection refused until the fake starts on it
        }
        Collector results = new Collector();
        try (AforoClient aforo = client("http://127.0.0.1:" + port).listener(results).build()) {
            aforo.record("sk_1", "api_calls", "1");
            assertTrue(!aforo.flush(Duration.ofMillis(300)));
            assertTrue(aforo.metrics().retries() >= 1);
            server = HttpServer.create(new InetSocketAddress("127.0.0.1", port), 0);
            server.createContext("/api/v1/events", exchange -> {
                String body = new String(exchange.getRequestBody().readAllBytes(), StandardCharsets.UTF_8);
                bodies.add(body);
                byte[] bytes = accepted(body).getBytes(StandardCharsets.UTF_8);
                exchange.sendResponseHeaders(202, bytes.length);
                exchange.getResponseBody().write(bytes);
                exchange.close();
            });
            server.start();
            assertTrue(aforo.flush(Duration.ofSeconds(10)));
            assertEquals(1, results.count(EventResult.Status.ACCEPTED));
        }
    }

    @Test
    void overflowDropsNewestAndCountsIt() throws IOException {
        String url = start();
        Collector results = new Collector();
        try (AforoClient aforo = client(url).listener(results).maxBufferedEvents(3)
                .flushInterval(Duration.ofHours(1)).build()) {
            for (int i = 0; i < 5; i++) aforo.record("sk_1", "api_calls", "1");
            assertEquals(2, aforo.metrics().dropped());
            assertEquals(2, results.count(EventResult.Status.DROPPED));
            assertEquals("buffer_full", results.of(EventResult.Status.DROPPED).get(0).code());
            assertTrue(aforo.flush(Duration.ofSeconds(10)));
            assertEquals(3, aforo.metrics().sent());
        }
    }

    @Test
    void closingWithoutASpoolReportsWhatCouldNotBeDelivered() throws IOException {
        String url = start();
        for (int i = 0; i < 1000; i++) script.add(new Reply(503, null, "{}"));
        Collector results = new Collector();
        AforoClient aforo = client(url).listener(results).build();
        aforo.record("sk_1", "api_calls", "1");
        aforo.close(Duration.ofMillis(300));
        assertEquals(1, aforo.metrics().dropped());
        assertEquals("closed_undelivered", results.of(EventResult.Status.DROPPED).get(0).code());
    }

    @Test
    void manyRecordingThreadsEachEventSentOnce() throws Exception {
        String url = start();
        int threads = 8, each = 5_000;
        try (AforoClient aforo = client(url).maxBufferedEvents(threads * each).build()) {
            Thread[] workers = new Thread[threads];
            for (int t = 0; t < threads; t++) {
                workers[t] = new Thread(() -> {
                    for (int i = 0; i < each; i++) aforo.record("sk_1", "api_calls", "1");
                });
                workers[t].start();
            }
            for (Thread w : workers) w.join();
            assertTrue(aforo.flush(Duration.ofSeconds(30)));
            java.util.Set<Object> ids = new java.util.HashSet<>();
            int sent = 0;
            for (String body : bodies) {
                for (Object e : (List<?>) Json.decodeObject(body).get("events")) {
                    ids.add(((Map<?, ?>) e).get("event_id"));
                    sent++;
                }
            }
            assertEquals(threads * each, sent, "every event sent once");
            assertEquals(threads * each, ids.size(), "unique ids");
            assertEquals(threads * each, aforo.metrics().sent());
        }
    }
}
