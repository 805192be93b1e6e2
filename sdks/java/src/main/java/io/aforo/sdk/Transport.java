package io.aforo.sdk;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.List;
import java.util.Map;

/** HTTP to Aforo with the ingest token: the batch POST, and the JSON calls of the helpers. */
final class Transport {
    record Answer(int status, Map<String, Object> body, String text, Long retryAfterMs) {}

    private final URI base;
    private final String authorization;
    private final HttpClient http;
    private final Duration timeout;

    Transport(URI base, String token, HttpClient http, Duration timeout) {
        String s = base.toString();
        this.base = URI.create(s.endsWith("/") ? s.substring(0, s.length() - 1) : s);
        this.authorization = "Bearer " + token;
        this.http = http;
        this.timeout = timeout;
    }

    /** Network errors, 408, 429 and 5xx are worth retrying; any other 4xx is final. */
    static boolean retryable(int status) {
        return status == 408 || status == 429 || status >= 500;
    }

    Answer postEvents(List<UsageEvent> batch) throws IOException, InterruptedException {
        StringBuilder body = new StringBuilder(64 + batch.size() * 256).append("{\"events\":[");
        for (int i = 0; i < batch.size(); i++) {
            if (i > 0) body.append(',');
            body.append(batch.get(i).toJson());
        }
        body.append("]}");
        return post("/api/v1/events", body.toString(), timeout);
    }

    Answer post(String path, String json, Duration requestTimeout) throws IOException, InterruptedException {
        HttpRequest request = HttpRequest.newBuilder(URI.create(base + path))
                .timeout(requestTimeout)
                .header("Authorization", authorization)
                .header("Content-Type", "application/json")
                .header("User-Agent", "aforo-java/0.1")
                .POST(HttpRequest.BodyPublishers.ofString(json))
                .build();
        HttpResponse<String> response = http.send(request, HttpResponse.BodyHandlers.ofString());
        Map<String, Object> parsed = null;
        String text = response.body();
        if (text != null && text.startsWith("{")) {
            try {
                parsed = Json.decodeObject(text);
            } catch (IllegalArgumentException notJson) {
                // kept as text for the error message
            }
        }
        Long retryAfter = Backoff.parseRetryAfter(response.headers().firstValue("Retry-After").orElse(null));
        return new Answer(response.statusCode(), parsed, text, retryAfter);
    }

    /**
     * A JSON call of a helper (hold, commit, release): retried a few times on network errors,
     * 429 and 5xx — each is idempotent on the server — then an {@link AforoException}.
     */
    Map<String, Object> call(String path, Map<String, Object> body, int attempts) {
        String json = Json.encode(body);
        AforoException last = null;
        for (int attempt = 0; attempt < attempts; attempt++) {
            try {
                Answer a = post(path, json, timeout);
                if (a.status() >= 200 && a.status() < 300) return a.body() != null ? a.body() : Map.of();
                AforoException e = error(a);
                if (!retryable(a.status())) throw e;
                last = e;
                if (attempt + 1 < attempts) {
                    Thread.sleep(Backoff.delayMs(attempt, Duration.ofMillis(100), Duration.ofSeconds(2), a.retryAfterMs()));
                }
            } catch (IOException e) {
                last = new AforoException("POST " + path + " failed: " + e, e);
                if (attempt + 1 < attempts) {
                    try {
                        Thread.sleep(Backoff.delayMs(attempt, Duration.ofMillis(100), Duration.ofSeconds(2), null));
                    } catch (InterruptedException ie) {
                        Thread.currentThread().interrupt();
                        throw last;
                    }
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new AforoException("interrupted", e);
            }
        }
        throw last;
    }

    static AforoException error(Answer a) {
        Map<?, ?> error = a.body() != null && a.body().get("error") instanceof Map<?, ?> m ? m : Map.of();
        String code = error.get("code") != null ? error.get("code").toString() : "http_" + a.status();
        String message = error.get("message") != null ? error.get("message").toString() : a.text();
        return new AforoException(a.status(), code, "HTTP " + a.status() + " " + code + ": " + message);
    }
}
