package io.aforo.sdk;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.math.BigDecimal;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** Flush on shutdown: a process that records and exits without calling close() still delivers (the JVM shutdown hook). */
class ShutdownHookTest {
    private final Platform platform = Platform.get();

    /** The child process: records n events and returns from main at once. */
    public static void main(String[] args) {
        AforoClient aforo = AforoClient.builder(args[0], args[1]).flushInterval(java.time.Duration.ofHours(1)).build();
        for (int i = 0; i < Integer.parseInt(args[3]); i++) aforo.record(args[2], "agent_sessions", "1");
        // no close(), no flush(): only the shutdown hook can deliver these
    }

    @Test
    void eventsRecordedJustBeforeExitAreDelivered() throws Exception {
        int n = 12;
        BigDecimal before = platform.units(platform.customerId("Initech"), "agent_sessions");
        String java = ProcessHandle.current().info().command().orElse("java");
        Process child = new ProcessBuilder(java, "-cp", System.getProperty("aforo.classpath"), ShutdownHookTest.class.getName(),
                platform.url, platform.ingestToken, platform.apiKey("Initech"), Integer.toString(n))
                .inheritIO().start();
        assertEquals(true, child.waitFor(60, TimeUnit.SECONDS));
        assertEquals(0, child.exitValue());
        assertEquals(0, new BigDecimal(n).compareTo(platform.ratedSince("Initech", "agent_sessions", before)));
    }
}
