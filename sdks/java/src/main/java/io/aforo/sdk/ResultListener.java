package io.aforo.sdk;

/**
 * Called on the SDK's flusher thread once per event when its fate is known. Keep it fast and
 * never throw (a throwing listener is logged and ignored). The default logs REJECTED and DROPPED
 * at WARNING through java.util.logging.
 */
@FunctionalInterface
public interface ResultListener {
    void onResult(EventResult result);
}
