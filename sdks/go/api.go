package aforo

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// APIError is a final (non-retried) error answer of the API: {"error": {"code", "message"}}.
type APIError struct {
	Status  int
	Code    string
	Message string
	Body    json.RawMessage
}

func (e *APIError) Error() string {
	return fmt.Sprintf("aforo: HTTP %d %s: %s", e.Status, e.Code, e.Message)
}

// callJSON posts body to path and decodes a 2xx answer into out. Network errors, 408, 429 and
// 5xx are retried (backoff, Retry-After) up to attempts times while ctx lasts: callers only use
// it for requests that are safe to repeat (idempotency keys, reads, checks).
func (c *Client) callJSON(ctx context.Context, path string, body any, out any, attempts int) error {
	encoded, err := json.Marshal(body)
	if err != nil {
		return err
	}
	url := strings.TrimRight(c.cfg.BaseURL, "/") + path
	for attempt := 0; ; attempt++ {
		status, answer, retryAfter, err := c.post(ctx, url, encoded)
		if err == nil && !retryable(status) {
			if status >= 300 {
				apiErr := &APIError{Status: status, Body: answer}
				var parsed batchAnswer
				if json.Unmarshal(answer, &parsed) == nil && parsed.Error != nil {
					apiErr.Code, apiErr.Message = parsed.Error.Code, parsed.Error.Message
				}
				return apiErr
			}
			if out == nil {
				return nil
			}
			return json.Unmarshal(answer, out)
		}
		if err == nil {
			err = &APIError{Status: status, Body: answer, Code: fmt.Sprintf("http_%d", status)}
		}
		if attempt+1 >= attempts || ctx.Err() != nil {
			return err
		}
		timer := time.NewTimer(backoff(attempt, c.cfg.RetryBase, c.cfg.RetryMax, retryAfter))
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		}
	}
}
