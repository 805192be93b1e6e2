package io.aforo.sdk;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.math.BigDecimal;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

/**
 * The real Aforo of the end-to-end tests: {@code python -m aforo.devserver.testplatform}, started
 * once per test run (the first test that asks for it), stopped when the JVM exits (closing its
 * stdin makes it stop everything and drop its database).
 */
final class Platform {
    private static Platform instance;

    final String url;
    final String ingestToken;
    final String adminToken;
    final List<Map<String, Object>> customers;
    private final Process process;
    private final OutputStream stdin;
    private final BufferedReader stdout;
    private final HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();

    static synchronized Platform get() {
        if (instance == null) instance = start();
        return instance;
    }

    @SuppressWarnings("unchecked")
    private Platform(Process process, Map<String, Object> info) {
        this.process = process;
        this.stdin = process.getOutputStream();
        this.stdout = new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8));
        this.url = (String) info.get("url");
        this.ingestToken = (String) info.get("ingest_token");
        this.adminToken = (String) info.get("admin_token");
        this.customers = (List<Map<String, Object>>) info.get("customers");
    }

    private static Platform start() {
        Path root = Path.of(System.getProperty("aforo.root", "../..")).toAbsolutePath().normalize();
        String python = System.getProperty("aforo.python", root.resolve(".venv/bin/python").toString());
        ProcessBuilder pb = new ProcessBuilder(python, "-m", "aforo.devserver.testplatform", "--name", "sdkjava",
                "--redis-db", "10").directory(root.toFile()).redirectError(ProcessBuilder.Redirect.INHERIT);
        try {
            Process p = pb.start();
            BufferedReader out = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
            String line = out.readLine();
            if (line == null) throw new IllegalStateException("the testplatform exited before printing its credentials");
            Platform platform = new Platform(p, Json.decodeObject(line));
            Runtime.getRuntime().addShutdownHook(new Thread(platform::stop, "testplatform-stop"));
            return platform;
        } catch (IOException e) {
            throw new IllegalStateException("cannot start the testplatform", e);
        }
    }

    private void stop() {
        try {
            stdin.close();
            if (!process.waitFor(30, TimeUnit.SECONDS)) process.destroy();
        } catch (IOException | InterruptedException ignored) {
            process.destroy();
        }
    }

    /** An outage: the web server stops (connection refused) until {@link #webStart}. */
    synchronized void webStop() {
        command("web stop");
    }

    synchronized void webStart() {
        command("web start");
    }

    private void command(String line) {
        try {
            stdin.write((line + "\n").getBytes(StandardCharsets.UTF_8));
            stdin.flush();
            String answer = stdout.readLine();
            if (!"ok".equals(answer)) throw new IllegalStateException(line + " answered " + answer);
        } catch (IOException e) {
            throw new IllegalStateException(line + " failed", e);
        }
    }

    Map<String, Object> customer(String name) {
        return customers.stream().filter(c -> name.equals(c.get("name"))).findFirst().orElseThrow();
    }

    String apiKey(String name) {
        return (String) customer(name).get("api_key");
    }

    long customerId(String name) {
        return ((Number) customer(name).get("id")).longValue();
    }

    AforoClient.Builder client() {
        return AforoClient.builder(url, ingestToken).shutdownHook(false);
    }

    Map<String, Object> get(String path) {
        return request(HttpRequest.newBuilder(URI.create(url + path)).GET(), adminToken);
    }

    Map<String, Object> post(String path, String json, String token) {
        return request(HttpRequest.newBuilder(URI.create(url + path))
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(json)), token);
    }

    /** GETs and the barrier POST (its event id makes it idempotent) are retried once on a network error or timeout. */
    private Map<String, Object> request(HttpRequest.Builder b, String token) {
        HttpRequest request = b.header("Authorization", "Bearer " + token).timeout(Duration.ofSeconds(30)).build();
        for (int attempt = 1; ; attempt++) {
            try {
                HttpResponse<String> r = http.send(request, HttpResponse.BodyHandlers.ofString());
                if (r.statusCode() >= 300) throw new IllegalStateException(r.statusCode() + " " + r.body());
                return Json.decodeObject(r.body());
            } catch (IOException e) {
                if (attempt == 2) throw new IllegalStateException(request.uri() + ": " + e, e);
            } catch (InterruptedException e) {
                throw new IllegalStateException(e);
            }
        }
    }

    /** The customer's running total of a metric this period (GET /api/v1/customers/{id}/usage). */
    @SuppressWarnings("unchecked")
    BigDecimal units(long customerId, String metric) {
        Map<String, Object> usage = get("/api/v1/customers/" + customerId + "/usage");
        for (Object s : (List<Object>) usage.get("subscriptions")) {
            for (Object m : (List<Object>) ((Map<String, Object>) s).get("metrics")) {
                Map<String, Object> row = (Map<String, Object>) m;
                if (metric.equals(row.get("metric")) && "".equals(row.get("dimension_key"))) {
                    return new BigDecimal(row.get("units").toString());
                }
            }
        }
        return BigDecimal.ZERO;
    }

    /**
     * Proves that exactly {@code delta} units were rated since {@code before}: sends a barrier
     * event (1,000 units, same key, so the same partition: rated after everything sent before it)
     * straight to the API, polls until the total includes it, and returns the delta it shows.
     */
    BigDecimal ratedSince(String customer, String metric, BigDecimal before) {
        String barrier = "{\"event_id\":\"barrier-" + UuidV7.nextString() + "\",\"api_key\":\"" + apiKey(customer)
                + "\",\"metric\":\"" + metric + "\",\"quantity\":\"1000\",\"timestamp\":\"" + Instant.now() + "\"}";
        post("/api/v1/events", barrier, ingestToken);
        long id = customerId(customer);
        BigDecimal threshold = before.add(new BigDecimal(1000));
        BigDecimal now = poll(Duration.ofSeconds(30), () -> {
            BigDecimal u = units(id, metric);
            return u.compareTo(threshold) >= 0 ? u : null;
        });
        return now.subtract(threshold);
    }

    /** Polls until {@code probe} returns non-null, or fails after the deadline. */
    static <T> T poll(Duration timeout, Supplier<T> probe) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            T value = probe.get();
            if (value != null) return value;
            if (System.nanoTime() > deadline) throw new AssertionError("not true within " + timeout);
            try {
                Thread.sleep(50);
            } catch (InterruptedException e) {
                throw new AssertionError(e);
            }
        }
    }
}
