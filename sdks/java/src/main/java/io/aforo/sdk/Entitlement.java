package io.aforo.sdk;

import java.util.Map;

/**
 * The answer of {@code POST /api/v1/entitlements/check}: {@code allow}, the {@code reason}
 * ({@code no_limit}, {@code within_limit}, {@code over_limit_billed}, {@code limit_reached},
 * {@code unknown_api_key}, …) and the figures as decimal strings (null when there is no limit).
 * {@code fromCache} says whether it came from the client's short local cache.
 */
public record Entitlement(boolean allow, String reason, String limit, String used, String reserved, String remaining,
                          boolean degraded, boolean fromCache, Map<String, Object> raw) {
    static Entitlement of(Map<String, Object> m) {
        return new Entitlement(Boolean.TRUE.equals(m.get("allow")), s(m.get("reason")), s(m.get("limit")),
                s(m.get("used")), s(m.get("reserved")), s(m.get("remaining")), Boolean.TRUE.equals(m.get("degraded")),
                false, m);
    }

    Entitlement cached() {
        return new Entitlement(allow, reason, limit, used, reserved, remaining, degraded, true, raw);
    }

    private static String s(Object o) {
        return o == null ? null : o.toString();
    }
}
