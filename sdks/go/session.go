package aforo

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// SessionOptions describe the escrow hold a metered session places on a prepaid wallet.
type SessionOptions struct {
	WalletID  int64
	Amount    string        // the most the session may cost (decimal string)
	TTL       time.Duration // the hold expires (money back) after this; default 15 min
	Reference string        // default "session-<uuidv7>"; events with dimension session_id=Reference draw from the hold
}

// Hold is the API's view of a hold (GET/POST /api/v1/holds/{id}…).
type Hold struct {
	ID              int64   `json:"id"`
	Status          string  `json:"status"` // active, committed, released, expired
	Amount          string  `json:"amount"`
	Drawn           string  `json:"drawn"`
	Remaining       string  `json:"remaining"`
	CommittedAmount *string `json:"committed_amount"`
	Reference       string  `json:"reference"`
	IdempotencyKey  string  `json:"idempotency_key"`
	ExpiresAt       string  `json:"expires_at"`
}

// Session is a metered session: a hold placed at its start, then exactly one of Commit (charge
// the actual amount, release the rest) or Release. Safe for concurrent use.
type Session struct {
	client *Client
	Hold   Hold

	mu    sync.Mutex
	ended bool
}

// ErrSessionEnded: Commit or Release on a session already committed or released.
var ErrSessionEnded = errors.New("aforo: session already ended")

const sessionAttempts = 5

// StartSession places the hold (POST /api/v1/wallets/{id}/holds). The idempotency key derives
// from the reference, so a retried placement never holds twice. A 402 insufficient_funds is an
// *APIError: the session must not start.
func (c *Client) StartSession(ctx context.Context, options SessionOptions) (*Session, error) {
	if options.TTL <= 0 {
		options.TTL = 15 * time.Minute
	}
	if options.Reference == "" {
		options.Reference = "session-" + NewEventID()
	}
	seconds := int64(options.TTL / time.Second)
	if seconds < 1 {
		seconds = 1
	}
	body := map[string]any{
		"amount": options.Amount, "ttl_seconds": seconds, "reference": options.Reference,
		"idempotency_key": options.Reference + ":open",
	}
	session := &Session{client: c}
	path := fmt.Sprintf("/api/v1/wallets/%d/holds", options.WalletID)
	if err := c.callJSON(ctx, path, body, &session.Hold, sessionAttempts); err != nil {
		return nil, err
	}
	return session, nil
}

// Record records an event of this session: its dimension session_id is the hold's reference,
// so once rated it draws from the hold first.
func (s *Session) Record(event Event) (string, error) {
	dimensions := make(map[string]string, len(event.Dimensions)+1)
	for name, value := range event.Dimensions {
		dimensions[name] = value
	}
	dimensions["session_id"] = s.Hold.Reference
	event.Dimensions = dimensions
	return s.client.Record(event)
}

// Commit charges amount (on top of what the session's rated events already drew) and releases
// the rest of the hold. Retries are safe: the API answers a repeated commit with its first result.
func (s *Session) Commit(ctx context.Context, amount string) error {
	return s.end(ctx, "commit", map[string]any{"amount": amount})
}

// Release gives the whole hold back (nothing charged beyond what rated events drew).
func (s *Session) Release(ctx context.Context) error {
	return s.end(ctx, "release", map[string]any{})
}

func (s *Session) end(ctx context.Context, action string, body map[string]any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return ErrSessionEnded
	}
	var hold Hold
	path := fmt.Sprintf("/api/v1/holds/%d/%s", s.Hold.ID, action)
	if err := s.client.callJSON(ctx, path, body, &hold, sessionAttempts); err != nil {
		return err
	}
	s.Hold, s.ended = hold, true
	return nil
}

// Metered runs work inside a session: the hold is placed first; when work returns an error (or
// panics) the hold is released and the error returned (the panic re-raised); otherwise the
// actual amount work returns is committed.
//
//	err := client.Metered(ctx, aforo.SessionOptions{WalletID: 7, Amount: "10"},
//		func(s *aforo.Session) (string, error) { …; return "3.25", nil })
func (c *Client) Metered(ctx context.Context, options SessionOptions, work func(*Session) (string, error)) (err error) {
	session, err := c.StartSession(ctx, options)
	if err != nil {
		return err
	}
	defer func() {
		if recovered := recover(); recovered != nil {
			if releaseErr := session.Release(context.Background()); releaseErr != nil {
				c.cfg.Logger.Printf("aforo: releasing hold %d after a panic: %v", session.Hold.ID, releaseErr)
			}
			panic(recovered)
		}
	}()
	actual, workErr := work(session)
	if workErr != nil {
		if releaseErr := session.Release(ctx); releaseErr != nil {
			return fmt.Errorf("%w (and releasing hold %d failed: %v)", workErr, session.Hold.ID, releaseErr)
		}
		return workErr
	}
	return session.Commit(ctx, actual)
}
