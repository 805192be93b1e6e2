package io.aforo.sdk;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import org.junit.jupiter.api.Test;

/** Proof (7): the entitlement check against the real API, with its short local cache. */
class EntitlementTest {
    private final Platform platform = Platform.get();

    @Test
    void checkIsCachedForItsTtl() {
        try (AforoClient aforo = platform.client().entitlementCacheTtl(Duration.ofMillis(300)).build()) {
            Entitlement first = aforo.checkEntitlement(platform.apiKey("Globex"), "tool_calls");
            assertTrue(first.allow());
            assertEquals("no_limit", first.reason());
            assertFalse(first.fromCache());
            Entitlement second = aforo.checkEntitlement(platform.apiKey("Globex"), "tool_calls");
            assertTrue(second.fromCache(), "asked again within the TTL: answered locally");
            assertEquals(first.raw(), second.raw());
            // another question is another cache entry
            assertFalse(aforo.checkEntitlement(EntitlementRequest.forApiKey(platform.apiKey("Globex"), "tool_calls")
                    .withUnits("5")).fromCache());
            // past the TTL the server is asked again
            Entitlement later = Platform.poll(Duration.ofSeconds(5), () -> {
                Entitlement e = aforo.checkEntitlement(platform.apiKey("Globex"), "tool_calls");
                return e.fromCache() ? null : e;
            });
            assertTrue(later.allow());
        }
    }

    @Test
    void unknownKeyIsDenied() {
        try (AforoClient aforo = platform.client().build()) {
            Entitlement e = aforo.checkEntitlement("sk_live_nobody", "api_calls");
            assertFalse(e.allow());
            assertEquals("unknown_api_key", e.reason());
        }
    }
}
