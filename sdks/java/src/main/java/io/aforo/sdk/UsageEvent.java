package io.aforo.sdk;

import java.math.BigDecimal;
import java.time.Instant;
import java.time.OffsetDateTime;
import java.time.temporal.ChronoUnit;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;

/**
 * One usage event (the usage event contract v1). Immutable; built with {@link #builder()}, which
 * gives it a UUIDv7 id and the current time when the caller sets none — at call time, so every
 * retry of it carries the same id and the server counts it once.
 *
 * <p>The quantity is a decimal string (never a float): pass a {@code String}, a {@code long} or a
 * {@code BigDecimal}.
 */
public final class UsageEvent {
    private final String eventId;
    private final String apiKey;
    private final Long customerId;
    private final Long subscriptionId;
    private final String metric;
    private final String quantity;
    private final String timestamp;
    private final Map<String, String> dimensions;
    private final Map<String, Object> metadata;
    private volatile String json;

    private UsageEvent(Builder b) {
        this.eventId = b.eventId != null ? b.eventId : UuidV7.nextString();
        this.apiKey = b.apiKey;
        this.customerId = b.customerId;
        this.subscriptionId = b.subscriptionId;
        this.metric = Objects.requireNonNull(b.metric, "metric");
        this.quantity = Objects.requireNonNull(b.quantity, "quantity");
        this.timestamp = b.timestamp != null ? b.timestamp : Instant.now().truncatedTo(ChronoUnit.MICROS).toString();
        this.dimensions = Collections.unmodifiableMap(new LinkedHashMap<>(b.dimensions));
        this.metadata = Collections.unmodifiableMap(new LinkedHashMap<>(b.metadata));
        int subjects = (apiKey != null ? 1 : 0) + (customerId != null ? 1 : 0) + (subscriptionId != null ? 1 : 0);
        if (subjects != 1) {
            throw new IllegalArgumentException("an event names exactly one of apiKey, customerId, subscriptionId");
        }
    }

    /** An event rebuilt from its JSON (the spool): kept byte for byte. */
    static UsageEvent fromJson(String json) {
        Map<String, Object> m = Json.decodeObject(json);
        Builder b = builder().eventId((String) m.get("event_id")).metric((String) m.get("metric"));
        if (m.get("api_key") != null) b.apiKey((String) m.get("api_key"));
        if (m.get("customer_id") != null) b.customerId(((Number) m.get("customer_id")).longValue());
        if (m.get("subscription_id") != null) b.subscriptionId(((Number) m.get("subscription_id")).longValue());
        Object q = m.get("quantity");
        b.quantity(q instanceof String s ? s : q.toString());
        b.timestamp((String) m.get("timestamp"));
        if (m.get("dimensions") instanceof Map<?, ?> dims) dims.forEach((k, v) -> b.dimension((String) k, (String) v));
        if (m.get("metadata") instanceof Map<?, ?> meta) meta.forEach((k, v) -> b.metadata((String) k, v));
        UsageEvent event = b.build();
        event.json = json;
        return event;
    }

    public static Builder builder() {
        return new Builder();
    }

    public String eventId() { return eventId; }
    public String apiKey() { return apiKey; }
    public Long customerId() { return customerId; }
    public Long subscriptionId() { return subscriptionId; }
    public String metric() { return metric; }
    public String quantity() { return quantity; }
    public String timestamp() { return timestamp; }
    public Map<String, String> dimensions() { return dimensions; }
    public Map<String, Object> metadata() { return metadata; }

    /** The event as the API takes it (encoded once, then reused by every retry and the spool). */
    public String toJson() {
        String j = json;
        if (j == null) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("event_id", eventId);
            if (apiKey != null) m.put("api_key", apiKey);
            if (customerId != null) m.put("customer_id", customerId);
            if (subscriptionId != null) m.put("subscription_id", subscriptionId);
            m.put("metric", metric);
            m.put("quantity", quantity);
            m.put("timestamp", timestamp);
            m.put("dimensions", dimensions);
            m.put("metadata", metadata);
            json = j = Json.encode(m);
        }
        return j;
    }

    @Override
    public String toString() {
        return "UsageEvent" + toJson();
    }

    public static final class Builder {
        private String eventId;
        private String apiKey;
        private Long customerId;
        private Long subscriptionId;
        private String metric;
        private String quantity;
        private String timestamp;
        private final Map<String, String> dimensions = new LinkedHashMap<>();
        private final Map<String, Object> metadata = new LinkedHashMap<>();

        private Builder() {}

        /** Only to re-send an event whose id you already hold; by default a UUIDv7 is generated. */
        public Builder eventId(String eventId) { this.eventId = eventId; return this; }
        public Builder apiKey(String apiKey) { this.apiKey = apiKey; return this; }
        public Builder customerId(long customerId) { this.customerId = customerId; return this; }
        public Builder subscriptionId(long subscriptionId) { this.subscriptionId = subscriptionId; return this; }
        public Builder metric(String metric) { this.metric = metric; return this; }
        /** A decimal string such as "1" or "2.50" (sent as is: the server validates it). */
        public Builder quantity(String quantity) { this.quantity = quantity; return this; }
        public Builder quantity(long quantity) { this.quantity = Long.toString(quantity); return this; }
        public Builder quantity(BigDecimal quantity) { this.quantity = quantity.toPlainString(); return this; }
        /** RFC 3339 with an offset; by default the moment {@link #build()} is called. */
        public Builder timestamp(String timestamp) { this.timestamp = timestamp; return this; }
        public Builder timestamp(Instant timestamp) { this.timestamp = timestamp.toString(); return this; }
        public Builder timestamp(OffsetDateTime timestamp) { this.timestamp = timestamp.toString(); return this; }
        public Builder dimension(String name, String value) { dimensions.put(name, value); return this; }
        public Builder dimensions(Map<String, String> values) { dimensions.putAll(values); return this; }
        /** Free-form context (strings, numbers, booleans, lists, maps). */
        public Builder metadata(String key, Object value) { metadata.put(key, value); return this; }

        public UsageEvent build() {
            return new UsageEvent(this);
        }
    }
}
