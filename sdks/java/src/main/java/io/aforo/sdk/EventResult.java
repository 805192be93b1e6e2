package io.aforo.sdk;

/**
 * What became of one event, reported to the {@link ResultListener} exactly once per event.
 *
 * @param eventId the event's id (a UUIDv7 unless the caller set one)
 * @param status  ACCEPTED / DUPLICATE (the server already had it: a retry that had landed) are
 *                delivered; REJECTED (the server refused it: never retried) and DROPPED (the SDK
 *                could not keep it: buffer full, or closed without a spool before delivery) are not
 * @param code    the server's stable error code for REJECTED (e.g. {@code negative_quantity}),
 *                the SDK's reason for DROPPED ({@code buffer_full}, {@code closed_undelivered}),
 *                the duplicate reason for DUPLICATE, else null
 * @param field   the field at fault for REJECTED, else null
 * @param message a sentence for REJECTED / DROPPED, else null
 * @param event   the event itself
 */
public record EventResult(String eventId, Status status, String code, String field, String message, UsageEvent event) {
    public enum Status { ACCEPTED, DUPLICATE, REJECTED, DROPPED }

    public boolean delivered() {
        return status == Status.ACCEPTED || status == Status.DUPLICATE;
    }
}
