package aforo

import (
	"io"
	"math/rand"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Version of the SDK, sent in the User-Agent.
const Version = "0.1.0"

// backoff is the wait before retry number attempt+1: "equal jitter" — half of
// min(max, base·2^attempt) plus a random part of the other half, so concurrent clients spread
// out but never retry at once. A Retry-After from the server wins when it asks for longer
// (bounded at 5 minutes so a bogus header cannot stall the sender for ever).
func backoff(attempt int, base, max, retryAfter time.Duration) time.Duration {
	ceiling := max
	if attempt < 30 && base<<attempt < max {
		ceiling = base << attempt
	}
	wait := ceiling/2 + time.Duration(rand.Int63n(int64(ceiling/2)+1))
	if retryAfter > maxRetryAfter {
		retryAfter = maxRetryAfter
	}
	if retryAfter > wait {
		wait = retryAfter
	}
	return wait
}

// parseRetryAfter reads either form of Retry-After: delay-seconds or an HTTP date.
func parseRetryAfter(value string, now time.Time) time.Duration {
	value = strings.TrimSpace(value)
	if value == "" {
		return 0
	}
	if seconds, err := strconv.ParseFloat(value, 64); err == nil {
		if seconds <= 0 {
			return 0
		}
		return time.Duration(seconds * float64(time.Second))
	}
	if at, err := http.ParseTime(value); err == nil && at.After(now) {
		return at.Sub(now)
	}
	return 0
}

// readAll reads an answer body, at most 8 MiB (a per-event answer for 1,000 events is ~100 KiB).
func readAll(response *http.Response) ([]byte, error) {
	return io.ReadAll(io.LimitReader(response.Body, 8<<20))
}
