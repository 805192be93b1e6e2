package io.aforo.sdk;

/** A synchronous call (hold, commit, release, entitlement check) failed. */
public class AforoException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final int status;
    private final String code;

    public AforoException(int status, String code, String message) {
        super(message);
        this.status = status;
        this.code = code;
    }

    public AforoException(String message, Throwable cause) {
        super(message, cause);
        this.status = 0;
        this.code = "network_error";
    }

    /** The HTTP status, or 0 when no answer came (network error, timeout). */
    public int status() {
        return status;
    }

    /** The server's stable error code ({@code insufficient_funds}, …) or {@code network_error}. */
    public String code() {
        return code;
    }
}
