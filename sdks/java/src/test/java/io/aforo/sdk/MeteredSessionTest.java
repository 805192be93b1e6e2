package io.aforo.sdk;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.math.BigDecimal;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Proof (6): a hold is placed at the start, committed with the actual amount, released on error (Globex's prepaid wallet). */
class MeteredSessionTest {
    private final Platform platform = Platform.get();

    private long walletId() {
        return ((Number) platform.customer("Globex").get("wallet_id")).longValue();
    }

    private BigDecimal held() {
        return new BigDecimal(platform.get("/api/v1/wallets/" + walletId()).get("held").toString());
    }

    @Test
    void holdPlacedThenCommittedWithTheActualAmount() {
        try (AforoClient aforo = platform.client().build()) {
            BigDecimal heldBefore = held();
            MeteredSession.Hold committed = aforo.withSession(MeteredSession.options(walletId(), "10"), session -> {
                assertEquals("active", session.hold().status());
                assertEquals(0, heldBefore.add(BigDecimal.TEN).compareTo(held()), "the hold reserves 10 while open");
                assertTrue(session.record(UsageEvent.builder().apiKey(platform.apiKey("Globex")).metric("tool_calls")
                        .quantity(1)));
                return new BigDecimal("3.25");
            });
            assertEquals("committed", committed.status());
            assertEquals(0, new BigDecimal("3.25").compareTo(new BigDecimal(committed.committedAmount())));
            assertEquals(0, heldBefore.compareTo(held()), "nothing stays reserved after the commit");
            Map<String, Object> hold = platform.get("/api/v1/holds/" + committed.id());
            assertEquals("committed", hold.get("status"));
            assertTrue(aforo.flush(Duration.ofSeconds(20)));
            assertEquals(1, aforo.metrics().sent());
        }
    }

    @Test
    void holdReleasedWhenTheWorkThrows() {
        try (AforoClient aforo = platform.client().build()) {
            BigDecimal heldBefore = held();
            long[] holdId = new long[1];
            IllegalStateException thrown = assertThrows(IllegalStateException.class, () ->
                    aforo.withSession(MeteredSession.options(walletId(), "5"), session -> {
                        holdId[0] = session.holdId();
                        throw new IllegalStateException("the tool crashed");
                    }));
            assertEquals("the tool crashed", thrown.getMessage());
            assertEquals("released", platform.get("/api/v1/holds/" + holdId[0]).get("status"));
            assertEquals(0, heldBefore.compareTo(held()));
        }
    }

    @Test
    void aHoldTheWalletCannotCoverIsRefused() {
        try (AforoClient aforo = platform.client().build()) {
            AforoException e = assertThrows(AforoException.class,
                    () -> aforo.openSession(MeteredSession.options(walletId(), "100000000")));
            assertEquals(402, e.status());
            assertEquals("insufficient_funds", e.code());
        }
    }
}
