package io.aforo.sdk.servlet;

import io.aforo.sdk.AforoClient;
import io.aforo.sdk.AforoException;
import io.aforo.sdk.Entitlement;
import io.aforo.sdk.EntitlementRequest;
import io.aforo.sdk.UsageEvent;
import jakarta.servlet.AsyncEvent;
import jakarta.servlet.AsyncListener;
import jakarta.servlet.Filter;
import jakarta.servlet.FilterChain;
import jakarta.servlet.FilterConfig;
import jakarta.servlet.ServletException;
import jakarta.servlet.ServletRequest;
import jakarta.servlet.ServletResponse;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.function.Function;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * A Jakarta Servlet filter (Servlet 5+: Tomcat 10, Jetty 11+, Spring Boot 3) that records one
 * usage event per request that carries an API key, after the request is answered — metering is
 * off the critical path: {@code record} only appends to the client's in-memory buffer.
 *
 * <p>Programmatically: {@code new AforoMeteringFilter(aforo).metric("api_calls")}. In web.xml, with
 * init-params {@code aforo.url}, {@code aforo.token} (or the environment's {@code AFORO_URL},
 * {@code AFORO_INGEST_TOKEN}), optional {@code metric} (default {@code api_calls}),
 * {@code apiKeyHeader} (default {@code X-Api-Key}; else a {@code Bearer} token), {@code enforce}
 * (true: check the entitlement first and answer 429 when it denies) and {@code spool} (a path);
 * the filter then owns its client and closes it in {@link #destroy}.
 *
 * <p>What is billed: a request with an API key whose answer is not a 5xx (the server's failure is
 * not the customer's usage; {@link #meterIf} changes that). The event's metadata carries the method,
 * the route (the servlet path), the status and the latency in ms.
 */
public class AforoMeteringFilter implements Filter {
    private static final Logger LOG = Logger.getLogger(AforoMeteringFilter.class.getName());

    /** Decides whether an answered request is billable. */
    @FunctionalInterface
    public interface MeterIf {
        boolean test(HttpServletRequest request, HttpServletResponse response);
    }

    private AforoClient client;
    private boolean ownsClient;
    private String metric = "api_calls";
    private String apiKeyHeader = "X-Api-Key";
    private Function<HttpServletRequest, String> apiKeyOf = this::defaultApiKey;
    private MeterIf meterIf = (req, resp) -> resp.getStatus() < 500;
    private boolean enforce;

    /** For web.xml: the client is built in {@link #init} from the init-params. */
    public AforoMeteringFilter() {}

    public AforoMeteringFilter(AforoClient client) {
        this.client = client;
    }

    public AforoMeteringFilter metric(String metric) { this.metric = metric; return this; }
    /** Where the API key comes from (default: the X-Api-Key header, else {@code Authorization: Bearer}). */
    public AforoMeteringFilter apiKey(Function<HttpServletRequest, String> apiKeyOf) { this.apiKeyOf = apiKeyOf; return this; }
    public AforoMeteringFilter meterIf(MeterIf meterIf) { this.meterIf = meterIf; return this; }
    /** Check the entitlement (cached ~1 s) before the request; deny with 429 when it says no. */
    public AforoMeteringFilter enforce(boolean enforce) { this.enforce = enforce; return this; }

    @Override
    public void init(FilterConfig config) throws ServletException {
        if (client != null) return;
        String url = param(config, "aforo.url", "AFORO_URL");
        String token = param(config, "aforo.token", "AFORO_INGEST_TOKEN");
        if (url == null || token == null) {
            throw new ServletException("AforoMeteringFilter needs aforo.url and aforo.token (or AFORO_URL, AFORO_INGEST_TOKEN)");
        }
        AforoClient.Builder builder = AforoClient.builder(url, token);
        String spool = config.getInitParameter("spool");
        if (spool != null) builder.spool(java.nio.file.Path.of(spool));
        client = builder.build();
        ownsClient = true;
        if (config.getInitParameter("metric") != null) metric = config.getInitParameter("metric");
        if (config.getInitParameter("apiKeyHeader") != null) apiKeyHeader = config.getInitParameter("apiKeyHeader");
        enforce = Boolean.parseBoolean(config.getInitParameter("enforce"));
    }

    private static String param(FilterConfig config, String name, String env) {
        String v = config.getInitParameter(name);
        return v != null ? v : System.getenv(env);
    }

    @Override
    public void doFilter(ServletRequest req, ServletResponse resp, FilterChain chain) throws IOException, ServletException {
        if (!(req instanceof HttpServletRequest request) || !(resp instanceof HttpServletResponse response)) {
            chain.doFilter(req, resp);
            return;
        }
        String apiKey = apiKeyOf.apply(request);
        if (apiKey == null || apiKey.isEmpty()) {
            chain.doFilter(req, resp);
            return;
        }
        if (enforce && !allowed(apiKey, response)) return;
        long start = System.nanoTime();
        try {
            chain.doFilter(req, resp);
        } finally {
            if (request.isAsyncStarted()) {
                request.getAsyncContext().addListener(new AsyncListener() {
                    @Override public void onComplete(AsyncEvent e) { meter(request, response, apiKey, start); }
                    @Override public void onTimeout(AsyncEvent e) {}
                    @Override public void onError(AsyncEvent e) {}
                    @Override public void onStartAsync(AsyncEvent e) {}
                });
            } else {
                meter(request, response, apiKey, start);
            }
        }
    }

    private boolean allowed(String apiKey, HttpServletResponse response) throws IOException {
        Entitlement e;
        try {
            e = client.checkEntitlement(EntitlementRequest.forApiKey(apiKey, metric));
        } catch (AforoException unavailable) {
            LOG.log(Level.FINE, "aforo: entitlement check failed; allowing (fail open)", unavailable);
            return true;
        }
        if (e.allow()) return true;
        response.setStatus(429);
        response.setContentType("application/json");
        response.getOutputStream().write(("{\"error\":{\"code\":\"" + e.reason() + "\",\"message\":\"usage limit of "
                + metric + " reached\"}}").getBytes(StandardCharsets.UTF_8));
        return false;
    }

    private void meter(HttpServletRequest request, HttpServletResponse response, String apiKey, long start) {
        try {
            if (!meterIf.test(request, response)) return;
            String route = request.getServletPath() + (request.getPathInfo() != null ? request.getPathInfo() : "");
            client.record(UsageEvent.builder().apiKey(apiKey).metric(metric).quantity("1")
                    .metadata("method", request.getMethod())
                    .metadata("route", route.isEmpty() ? "/" : route)
                    .metadata("status", response.getStatus())
                    .metadata("latency_ms", (System.nanoTime() - start) / 1_000_000)
                    .build());
        } catch (RuntimeException e) {
            LOG.log(Level.WARNING, "aforo: metering the request failed (the request itself is unaffected)", e);
        }
    }

    private String defaultApiKey(HttpServletRequest request) {
        String key = request.getHeader(apiKeyHeader);
        if (key != null) return key.trim();
        String auth = request.getHeader("Authorization");
        if (auth != null && auth.regionMatches(true, 0, "Bearer ", 0, 7)) return auth.substring(7).trim();
        return null;
    }

    @Override
    public void destroy() {
        if (ownsClient && client != null) client.close();
    }
}
