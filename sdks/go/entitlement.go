package aforo

import (
	"context"
	"encoding/json"
	"sync"
	"time"
)

// EntitlementRequest asks whether a customer may use Units more of Metric now
// (POST /api/v1/entitlements/check). One of APIKey or CustomerID.
type EntitlementRequest struct {
	APIKey     string            `json:"api_key,omitempty"`
	CustomerID int64             `json:"customer_id,omitempty"`
	Metric     string            `json:"metric"`
	Units      string            `json:"units,omitempty"` // decimal string; the API's default is "1"
	Dimensions map[string]string `json:"dimensions,omitempty"`
}

// Entitlement is the API's answer. Limit, Reserved, Remaining and Overage are nil when the
// metric has no limit.
type Entitlement struct {
	Allow          bool    `json:"allow"`
	Reason         string  `json:"reason"` // no_limit, within_limit, over_limit_billed, limit_reached, unknown_api_key, …
	Metric         string  `json:"metric"`
	Limit          *string `json:"limit"`
	Used           string  `json:"used"`
	Reserved       *string `json:"reserved"`
	Remaining      *string `json:"remaining"`
	ResetsAt       string  `json:"resets_at"`
	Overage        *string `json:"overage"`
	SubscriptionID int64   `json:"subscription_id"`
	DimensionKey   string  `json:"dimension_key"`
	Degraded       bool    `json:"degraded"`
	// Cached: this answer came from the client's cache (at most EntitlementTTL old).
	Cached bool `json:"-"`
}

type entitlementEntry struct {
	answer  Entitlement
	expires time.Time
}

// entitlementCache remembers answers for Config.EntitlementTTL; it holds at most
// maxEntitlementEntries (then starts over), so memory stays bounded whatever the key space.
type entitlementCache struct {
	mu      sync.Mutex
	entries map[string]entitlementEntry
}

const maxEntitlementEntries = 10_000

// CheckEntitlement answers from the cache when the same question was answered less than
// EntitlementTTL ago, else asks the API (network errors, 429 and 5xx retried twice within ctx).
// Errors are returned, never cached: whether to fail open is the caller's decision.
func (c *Client) CheckEntitlement(ctx context.Context, request EntitlementRequest) (Entitlement, error) {
	key, err := json.Marshal(request) // map keys are sorted: equal questions, equal keys
	if err != nil {
		return Entitlement{}, err
	}
	now := c.cfg.now()
	if c.cfg.EntitlementTTL > 0 {
		c.entitlements.mu.Lock()
		entry, found := c.entitlements.entries[string(key)]
		c.entitlements.mu.Unlock()
		if found && now.Before(entry.expires) {
			answer := entry.answer
			answer.Cached = true
			return answer, nil
		}
	}
	var answer Entitlement
	c.entitlementCalls.Add(1)
	if err := c.callJSON(ctx, "/api/v1/entitlements/check", request, &answer, 3); err != nil {
		return Entitlement{}, err
	}
	if c.cfg.EntitlementTTL > 0 {
		c.entitlements.mu.Lock()
		if len(c.entitlements.entries) >= maxEntitlementEntries {
			c.entitlements.entries = map[string]entitlementEntry{}
		}
		c.entitlements.entries[string(key)] = entitlementEntry{answer: answer, expires: now.Add(c.cfg.EntitlementTTL)}
		c.entitlements.mu.Unlock()
	}
	return answer, nil
}
