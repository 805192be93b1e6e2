package io.aforo.sdk;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;

/** One entitlement check: may this API key (or customer) use {@code units} more of {@code metric} now? */
public record EntitlementRequest(String apiKey, Long customerId, String metric, String units, Map<String, String> dimensions) {
    public EntitlementRequest {
        if ((apiKey == null) == (customerId == null)) throw new IllegalArgumentException("apiKey or customerId, exactly one");
        if (metric == null) throw new IllegalArgumentException("metric");
        units = units == null ? "1" : units;
        dimensions = dimensions == null ? Map.of() : Map.copyOf(dimensions);
    }

    public static EntitlementRequest forApiKey(String apiKey, String metric) {
        return new EntitlementRequest(apiKey, null, metric, "1", Map.of());
    }

    public static EntitlementRequest forCustomer(long customerId, String metric) {
        return new EntitlementRequest(null, customerId, metric, "1", Map.of());
    }

    public EntitlementRequest withUnits(String units) {
        return new EntitlementRequest(apiKey, customerId, metric, units, dimensions);
    }

    public EntitlementRequest withDimension(String name, String value) {
        Map<String, String> d = new LinkedHashMap<>(dimensions);
        d.put(name, value);
        return new EntitlementRequest(apiKey, customerId, metric, units, d);
    }

    String cacheKey() {
        return (apiKey != null ? "k:" + apiKey : "c:" + customerId) + '\u0000' + metric + '\u0000' + units + '\u0000'
                + new TreeMap<>(dimensions);
    }

    Map<String, Object> body() {
        Map<String, Object> m = new LinkedHashMap<>();
        if (apiKey != null) m.put("api_key", apiKey);
        else m.put("customer_id", customerId);
        m.put("metric", metric);
        m.put("units", units);
        if (!dimensions.isEmpty()) m.put("dimensions", dimensions);
        return m;
    }
}
