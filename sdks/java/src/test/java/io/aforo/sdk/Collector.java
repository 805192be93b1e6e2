package io.aforo.sdk;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.stream.Collectors;

/** A result listener that keeps every result, for assertions. */
final class Collector implements ResultListener {
    final List<EventResult> results = new CopyOnWriteArrayList<>();

    @Override
    public void onResult(EventResult result) {
        results.add(result);
    }

    long count(EventResult.Status status) {
        return results.stream().filter(r -> r.status() == status).count();
    }

    List<EventResult> of(EventResult.Status status) {
        return results.stream().filter(r -> r.status() == status).collect(Collectors.toList());
    }
}
