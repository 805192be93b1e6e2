package io.aforo.sdk;

import io.aforo.sdk.servlet.AforoMeteringFilter;
import jakarta.servlet.FilterChain;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.lang.reflect.Proxy;
import java.time.Duration;
import java.util.Arrays;

/**
 * Not a test: the figures of the README (./bench.sh). Against the real testplatform:
 * (1) events/s one process emits — record() calls/s, and events/s delivered and acknowledged;
 * (2) the filter's added latency per request, p50/p99, timed around doFilter in process (the
 * request's critical path; delivery happens on the flusher thread meanwhile).
 */
public final class Bench {
    public static void main(String[] args) throws Exception {
        int events = args.length > 0 ? Integer.parseInt(args[0]) : 100_000;
        sdkCapacity(300_000);
        Platform platform = Platform.get();
        String key = platform.apiKey("Acme Corp");
        System.out.printf("setup: %d cores, %s %s, testplatform (gunicorn 1 worker x 4 threads, embedded broker)%n",
                Runtime.getRuntime().availableProcessors(), System.getProperty("java.vm.name"), System.getProperty("java.version"));

        try (AforoClient aforo = platform.client().batchSize(1000).maxBufferedEvents(events + 1).build()) {
            long t0 = System.nanoTime();
            for (int i = 0; i < events; i++) {
                aforo.record(UsageEvent.builder().apiKey(key).metric("agent_sessions").quantity("1")
                        .metadata("route", "/bench").build());
            }
            long t1 = System.nanoTime();
            if (!aforo.flush(Duration.ofMinutes(5))) throw new IllegalStateException("not delivered in 5 min");
            long t2 = System.nanoTime();
            Metrics.Snapshot m = aforo.metrics();
            System.out.printf("record(): %d events in %.0f ms = %.0f events/s (buffer only)%n", events,
                    (t1 - t0) / 1e6, events / ((t1 - t0) / 1e9));
            System.out.printf("delivered: %d accepted (+%d duplicates, %d rejected, %d retries) in %.1f s = %.0f events/s end to end%n",
                    m.sent(), m.duplicates(), m.rejected(), m.retries(), (t2 - t0) / 1e9, m.sent() / ((t2 - t0) / 1e9));
        }

        try (AforoClient aforo = platform.client().build()) {
            filterOverhead(aforo, key, "filter");
        }
        java.nio.file.Path spool = java.nio.file.Files.createTempDirectory("aforo-bench").resolve("spool.jsonl");
        try (AforoClient aforo = platform.client().spool(spool).build()) {
            filterOverhead(aforo, key, "filter, spool on");
        }
        System.exit(0);
    }

    private static void filterOverhead(AforoClient aforo, String key, String label) throws Exception {
        AforoMeteringFilter filter = new AforoMeteringFilter(aforo);
        HttpServletRequest request = (HttpServletRequest) Proxy.newProxyInstance(Bench.class.getClassLoader(),
                new Class<?>[] {HttpServletRequest.class}, (p, method, a) -> switch (method.getName()) {
                    case "getHeader" -> "X-Api-Key".equals(a[0]) ? key : null;
                    case "getMethod" -> "GET";
                    case "getServletPath" -> "/v1/search";
                    case "isAsyncStarted" -> false;
                    default -> null;
                });
        HttpServletResponse response = (HttpServletResponse) Proxy.newProxyInstance(Bench.class.getClassLoader(),
                new Class<?>[] {HttpServletResponse.class}, (p, method, a) ->
                        "getStatus".equals(method.getName()) ? 200 : null);
        FilterChain chain = (req, resp) -> {};
        int n = 50_000;
        long[] bare = new long[n], filtered = new long[n];
        for (int round = 0; round < 2; round++) { // the first round warms the JIT up
            for (int i = 0; i < n; i++) {
                long a = System.nanoTime();
                chain.doFilter(request, response);
                long b = System.nanoTime();
                filter.doFilter(request, response, chain);
                long c = System.nanoTime();
                bare[i] = b - a;
                filtered[i] = c - b;
            }
            if (!aforo.flush(Duration.ofMinutes(2))) throw new IllegalStateException("not delivered");
        }
        Arrays.sort(bare);
        Arrays.sort(filtered);
        System.out.printf("%s: %d requests, doFilter with metering p50 %.1f us, p99 %.1f us, p99.9 %.1f us "
                        + "(bare chain p50 %.2f us, p99 %.2f us)%n", label, n, filtered[n / 2] / 1e3, filtered[n * 99 / 100] / 1e3,
                filtered[n * 999 / 1000] / 1e3, bare[n / 2] / 1e3, bare[n * 99 / 100] / 1e3);
    }

    /** The SDK's own ceiling: a local fake that answers 202 at once (no per-event results: all accepted). */
    private static void sdkCapacity(int events) throws Exception {
        com.sun.net.httpserver.HttpServer fake = com.sun.net.httpserver.HttpServer.create(
                new java.net.InetSocketAddress("127.0.0.1", 0), 0);
        fake.createContext("/api/v1/events", exchange -> {
            exchange.getRequestBody().readAllBytes();
            exchange.sendResponseHeaders(202, 2);
            exchange.getResponseBody().write("{}".getBytes());
            exchange.close();
        });
        fake.start();
        try (AforoClient aforo = AforoClient.builder("http://127.0.0.1:" + fake.getAddress().getPort(), "t")
                .shutdownHook(false).batchSize(1000).maxBufferedEvents(events + 1).build()) {
            long t0 = System.nanoTime();
            for (int i = 0; i < events; i++) {
                aforo.record(UsageEvent.builder().apiKey("sk_live_bench").metric("agent_sessions").quantity("1")
                        .metadata("route", "/bench").build());
            }
            long t1 = System.nanoTime();
            aforo.flush(Duration.ofMinutes(2));
            long t2 = System.nanoTime();
            System.out.printf("SDK ceiling (local fake answering 202 at once): record() %.0f events/s, "
                    + "delivered %d in %.1f s = %.0f events/s%n", events / ((t1 - t0) / 1e9), aforo.metrics().sent(),
                    (t2 - t0) / 1e9, aforo.metrics().sent() / ((t2 - t0) / 1e9));
        } finally {
            fake.stop(0);
        }
    }
}
