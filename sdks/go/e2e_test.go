package aforo

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"
)

// instrumentedApp is an application behind the middleware, metering `metric`.
func instrumentedApp(t *testing.T, client *Client, metric string) *httptest.Server {
	t.Helper()
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			http.Error(w, "no", http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte("hello"))
	})
	server := httptest.NewServer(Middleware(client, WithMetric(metric))(handler))
	t.Cleanup(server.Close)
	return server
}

func callApp(t *testing.T, server *httptest.Server, apiKey string, path string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		request, _ := http.NewRequest(http.MethodGet, server.URL+path, nil)
		request.Header.Set("X-API-Key", apiKey)
		response, err := http.DefaultClient.Do(request)
		if err != nil {
			t.Fatal(err)
		}
		response.Body.Close()
	}
}

func flush(t *testing.T, client *Client, within time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	if err := client.Flush(ctx); err != nil {
		t.Fatalf("flush: %v (metrics %+v)", err, client.Metrics())
	}
}

// (1) N requests through the instrumented app → exactly N events rated.
func TestE2EMiddlewareRatesEachRequestOnce(t *testing.T) {
	p := platform(t)
	acme := p.customer(t, "Acme Corp")
	before := p.units(t, acme.ID, "api_calls")
	client := p.client(t, nil)
	app := instrumentedApp(t, client, "api_calls")

	const n = 40
	callApp(t, app, acme.APIKey, "/hello", n)
	callApp(t, app, acme.APIKey, "/fail", 3) // 5xx answers are not billable by default
	callApp(t, app, "", "/hello", 2)         // no API key: not metered
	flush(t, client, 30*time.Second)

	p.waitUnits(t, acme.ID, "api_calls", plus(before, n))
	if m := client.Metrics(); m.Sent != n || m.Duplicates != 0 || m.Rejected != 0 || m.Dropped != 0 {
		t.Fatalf("metrics %+v, want %d sent and nothing else", m, n)
	}
}

// (2) The same across an Aforo outage: buffered, retried, nothing lost, nothing doubled.
func TestE2EOutageNothingLostNothingDoubled(t *testing.T) {
	p := platform(t)
	initech := p.customer(t, "Initech")
	before := p.units(t, initech.ID, "api_calls")
	client := p.client(t, nil)
	app := instrumentedApp(t, client, "api_calls")

	callApp(t, app, initech.APIKey, "/hello", 10)
	flush(t, client, 30*time.Second)

	p.web(t, "web stop")
	webStopped := true
	defer func() {
		if webStopped {
			p.web(t, "web start")
		}
	}()
	callApp(t, app, initech.APIKey, "/hello", 25)
	waitFor(t, 10*time.Second, "the client to retry during the outage", func() bool { return client.Metrics().Retried >= 2 })
	if m := client.Metrics(); m.Sent != 10 || m.Buffered != 25 {
		t.Fatalf("during the outage: %+v, want 10 sent and 25 buffered", m)
	}
	p.web(t, "web start")
	webStopped = false
	callApp(t, app, initech.APIKey, "/hello", 5)
	flush(t, client, 60*time.Second)

	p.waitUnits(t, initech.ID, "api_calls", plus(before, 40))
	if m := client.Metrics(); m.Sent != 40 || m.Rejected != 0 || m.Dropped != 0 || m.Buffered != 0 {
		t.Fatalf("after the outage: %+v, want 40 sent", m)
	}
}

// (3) A restart of the instrumented app with the spool on: closed while Aforo is down, a new
// client on the same spool delivers everything exactly once.
func TestE2ESpoolSurvivesRestart(t *testing.T) {
	p := platform(t)
	acme := p.customer(t, "Acme Corp")
	before := p.units(t, acme.ID, "llm_tokens")
	spoolPath := filepath.Join(t.TempDir(), "aforo.spool")

	p.web(t, "web stop")
	webStopped := true
	defer func() {
		if webStopped {
			p.web(t, "web start")
		}
	}()
	first, err := New(Config{BaseURL: p.URL, Token: p.IngestToken, SpoolPath: spoolPath,
		FlushInterval: 50 * time.Millisecond, RetryBase: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	app := instrumentedApp(t, first, "llm_tokens")
	callApp(t, app, acme.APIKey, "/hello", 25)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	err = first.Close(ctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("close during the outage: %v, want the deadline", err)
	}
	if m := first.Metrics(); m.Sent != 0 || m.Dropped != 0 {
		t.Fatalf("first client: %+v", m)
	}

	second, err := New(Config{BaseURL: p.URL, Token: p.IngestToken, SpoolPath: spoolPath,
		FlushInterval: 50 * time.Millisecond, RetryBase: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close(context.Background())
	if m := second.Metrics(); m.Buffered != 25 {
		t.Fatalf("replayed %d events from the spool, want 25", m.Buffered)
	}
	p.web(t, "web start")
	webStopped = false
	flush(t, second, 60*time.Second)
	p.waitUnits(t, acme.ID, "llm_tokens", plus(before, 25))
	if m := second.Metrics(); m.Sent != 25 {
		t.Fatalf("second client: %+v, want 25 sent", m)
	}
	if err := second.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(spoolPath); err != nil || info.Size() != 0 {
		t.Fatalf("spool after everything was acknowledged: %v %v, want empty", info, err)
	}
	third, err := New(Config{BaseURL: p.URL, Token: p.IngestToken, SpoolPath: spoolPath})
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close(context.Background())
	if m := third.Metrics(); m.Buffered != 0 {
		t.Fatalf("a third client replays %d events, want 0", m.Buffered)
	}
}

// (4) Rejected events surface to the callback with the API's code; the batch's others go through.
func TestE2ERejectedEventsReachTheCallback(t *testing.T) {
	p := platform(t)
	initech := p.customer(t, "Initech")
	before := p.units(t, initech.ID, "llm_tokens")
	var mu sync.Mutex
	results := map[string]Result{}
	client := p.client(t, func(c *Config) {
		c.FlushInterval = time.Hour // one batch, sent by Flush
		c.OnResult = func(r Result) { mu.Lock(); results[r.EventID] = r; mu.Unlock() }
	})
	good, _ := client.Record(Event{APIKey: initech.APIKey, Metric: "llm_tokens", Quantity: "7"})
	negative, _ := client.Record(Event{APIKey: initech.APIKey, Metric: "llm_tokens", Quantity: "-1"})
	unparsable, _ := client.Record(Event{APIKey: initech.APIKey, Metric: "llm_tokens", Quantity: "1_000"})
	flush(t, client, 30*time.Second)

	mu.Lock()
	if r := results[good]; r.Status != StatusAccepted {
		t.Errorf("good event: %+v", r)
	}
	if r := results[negative]; r.Status != StatusRejected || r.Code != "negative_quantity" || r.Field != "quantity" {
		t.Errorf("negative quantity: %+v", r)
	}
	if r := results[unparsable]; r.Status != StatusRejected || r.Code != "invalid_quantity" {
		t.Errorf("1_000: %+v", r)
	}
	mu.Unlock()
	// A batch where every event is refused is a 400 invalid_events: still per-event, not retried.
	onlyBad, _ := client.Record(Event{APIKey: initech.APIKey, Metric: "llm_tokens", Quantity: "-2"})
	flush(t, client, 30*time.Second)
	mu.Lock()
	if r := results[onlyBad]; r.Status != StatusRejected || r.Code != "negative_quantity" {
		t.Errorf("all-rejected batch: %+v", r)
	}
	mu.Unlock()
	if m := client.Metrics(); m.Sent != 1 || m.Rejected != 3 || m.Retried != 0 {
		t.Fatalf("metrics %+v, want 1 sent, 3 rejected, no retry", m)
	}
	p.waitUnits(t, initech.ID, "llm_tokens", plus(before, 7))
}

type holdView struct {
	Status          string  `json:"status"`
	Amount          string  `json:"amount"`
	CommittedAmount *string `json:"committed_amount"`
}

type walletView struct {
	Balance   string `json:"balance"`
	Held      string `json:"held"`
	Available string `json:"available"`
}

// (6) Metered session: the hold is placed, committed with the actual amount, released on error.
func TestE2EMeteredSession(t *testing.T) {
	p := platform(t)
	globex := p.customer(t, "Globex")
	if globex.WalletID == nil {
		t.Fatal("Globex has no wallet")
	}
	walletPath := fmt.Sprintf("/api/v1/wallets/%d", *globex.WalletID)
	client := p.client(t, nil)
	var before, during walletView
	p.adminGet(t, walletPath, &before)

	var holdID int64
	err := client.Metered(context.Background(), SessionOptions{WalletID: *globex.WalletID, Amount: "10", TTL: time.Minute},
		func(s *Session) (string, error) {
			holdID = s.Hold.ID
			p.adminGet(t, walletPath, &during)
			return "3.25", nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if held := new(big.Rat).Sub(decimal(t, during.Held), decimal(t, before.Held)); held.Cmp(decimal(t, "10")) != 0 {
		t.Fatalf("held during the session grew by %s, want 10", held.RatString())
	}
	var hold holdView
	p.adminGet(t, fmt.Sprintf("/api/v1/holds/%d", holdID), &hold)
	if hold.Status != "committed" || hold.CommittedAmount == nil || decimal(t, *hold.CommittedAmount).Cmp(decimal(t, "3.25")) != 0 {
		t.Fatalf("hold after commit: %+v", hold)
	}
	var after walletView
	p.adminGet(t, walletPath, &after)
	if spent := new(big.Rat).Sub(decimal(t, before.Balance), decimal(t, after.Balance)); spent.Cmp(decimal(t, "3.25")) != 0 {
		t.Fatalf("balance fell by %s, want 3.25", spent.RatString())
	}

	failure := errors.New("the tool crashed")
	err = client.Metered(context.Background(), SessionOptions{WalletID: *globex.WalletID, Amount: "5"},
		func(s *Session) (string, error) { holdID = s.Hold.ID; return "", failure })
	if !errors.Is(err, failure) {
		t.Fatalf("error from the session: %v", err)
	}
	p.adminGet(t, fmt.Sprintf("/api/v1/holds/%d", holdID), &hold)
	if hold.Status != "released" {
		t.Fatalf("hold after an error: %+v, want released", hold)
	}
	var final walletView
	p.adminGet(t, walletPath, &final)
	if final.Balance != after.Balance || decimal(t, final.Held).Cmp(decimal(t, before.Held)) != 0 {
		t.Fatalf("wallet after a released session: %+v, want balance %s and held %s", final, after.Balance, before.Held)
	}

	// More than the wallet holds: the session does not start.
	err = client.Metered(context.Background(), SessionOptions{WalletID: *globex.WalletID, Amount: "1000000"},
		func(s *Session) (string, error) { t.Error("work ran without a hold"); return "0", nil })
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusPaymentRequired || apiErr.Code != "insufficient_funds" {
		t.Fatalf("an unfundable session: %v", err)
	}
}

// (7) Entitlement check, answered from a cache for EntitlementTTL.
func TestE2EEntitlementCheckCached(t *testing.T) {
	p := platform(t)
	acme := p.customer(t, "Acme Corp")
	now := time.Now()
	var clockMu sync.Mutex
	client := p.client(t, func(c *Config) {
		c.now = func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return now }
	})
	request := EntitlementRequest{APIKey: acme.APIKey, Metric: "api_calls", Units: "1"}
	first, err := client.CheckEntitlement(context.Background(), request)
	if err != nil {
		t.Fatal(err)
	}
	if !first.Allow || first.Reason != "within_limit" || first.Limit == nil || *first.Limit != "250000" || first.Cached {
		t.Fatalf("first answer: %+v", first)
	}
	second, err := client.CheckEntitlement(context.Background(), request)
	if err != nil || !second.Cached || second.Used != first.Used || client.Metrics().Entitlement != 1 {
		t.Fatalf("second answer within the TTL: %+v %v (calls %d), want it from the cache", second, err, client.Metrics().Entitlement)
	}
	other, err := client.CheckEntitlement(context.Background(), EntitlementRequest{APIKey: "sk_live_nobody", Metric: "api_calls"})
	if err != nil || other.Allow || other.Reason != "unknown_api_key" || other.Cached {
		t.Fatalf("an unknown key: %+v %v", other, err)
	}
	clockMu.Lock()
	now = now.Add(1100 * time.Millisecond)
	clockMu.Unlock()
	third, err := client.CheckEntitlement(context.Background(), request)
	if err != nil || third.Cached || client.Metrics().Entitlement != 3 {
		t.Fatalf("after the TTL: %+v %v (calls %d), want a fresh answer", third, err, client.Metrics().Entitlement)
	}
}

func waitFor(t *testing.T, within time.Duration, what string, condition func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !condition() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var _ = strings.TrimSpace
