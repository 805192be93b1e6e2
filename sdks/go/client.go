// Package aforo is the Go SDK of Aforo's usage ingest: a client that buffers usage events in
// memory (optionally in an append-only spool file), sends them in batches from a background
// goroutine with idempotent retries, and reports every event's outcome to a callback.
//
// Contracts (the same in every Aforo SDK):
//   - Every event gets its id (a UUIDv7) when it is recorded, so a retry resends the same id and
//     the API deduplicates it on (tenant, event_id): an event is rated at most once.
//   - Network errors, 408, 429 and 5xx are retried with exponential backoff and jitter, honouring
//     Retry-After; any other 4xx is never retried: its events are reported as rejected.
//   - Every recorded event ends in exactly one Result passed to Config.OnResult: accepted,
//     duplicate, rejected, dropped (buffer full) or undelivered (Close gave up, no spool).
//   - Memory is bounded by Config.MaxBuffer events; past it, Record drops the NEW event, counts it
//     in Metrics.Dropped, reports it and returns ErrBufferFull (it never blocks the caller).
package aforo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults; see Config.
const (
	DefaultBatchSize      = 500
	MaxBatchSize          = 1000 // the API's limit per request
	DefaultFlushInterval  = time.Second
	DefaultMaxBuffer      = 100_000
	DefaultRetryBase      = 200 * time.Millisecond
	DefaultRetryMax       = 30 * time.Second
	DefaultRequestTimeout = 10 * time.Second
	DefaultEntitlementTTL = time.Second
	// maxBodyBytes keeps a batch under the API's 2 MiB body limit with room for the envelope.
	maxBodyBytes = 2*1024*1024 - 4096
	// maxEventBytes: one event that could never fit a batch is refused at Record.
	maxEventBytes = 256 * 1024
	maxRetryAfter = 5 * time.Minute
)

var (
	// ErrBufferFull: the in-memory buffer holds MaxBuffer events; the event was dropped (and counted).
	ErrBufferFull = errors.New("aforo: buffer full, event dropped")
	// ErrClosed: Record or Flush after Close.
	ErrClosed = errors.New("aforo: client closed")
	// ErrEventTooLarge: the encoded event exceeds 256 KiB.
	ErrEventTooLarge = errors.New("aforo: event too large")
)

// Config configures a Client. BaseURL and Token are required.
type Config struct {
	BaseURL string // e.g. "https://aforo.example.com"
	Token   string // the tenant's ingest token (events, holds, entitlement checks)

	BatchSize     int           // events per request (default 500, at most 1000)
	FlushInterval time.Duration // send what is buffered at least this often (default 1 s)
	MaxBuffer     int           // events held in memory, sending included (default 100,000)
	// SpoolPath, when set, names an append-only file holding every event not yet acknowledged;
	// New replays it, so events survive a restart of the process. One client per file.
	SpoolPath string

	RetryBase      time.Duration // first backoff (default 200 ms), doubled per attempt
	RetryMax       time.Duration // backoff cap (default 30 s); Retry-After may ask for longer (≤ 5 min)
	RequestTimeout time.Duration // per HTTP attempt (default 10 s)
	HTTPClient     *http.Client  // default: a client with its own keep-alive transport

	EntitlementTTL time.Duration // how long a check's answer is reused (default 1 s; negative: no cache)

	// OnResult receives each event's outcome, from the sending goroutine (or from Record for
	// "dropped"); it must not block for long. nil: rejected/dropped/undelivered events are logged.
	OnResult func(Result)
	Logger   *log.Logger // nil: the standard logger

	now func() time.Time // tests move the clock of the entitlement cache
}

// Result statuses.
const (
	StatusAccepted    = "accepted"
	StatusDuplicate   = "duplicate"   // already received: it counts once, as before
	StatusRejected    = "rejected"    // refused by the API (Code, Field, Message say why); not retried
	StatusDropped     = "dropped"     // the buffer was full when it was recorded
	StatusUndelivered = "undelivered" // Close gave up before it was acknowledged and no spool holds it
)

// Result is the outcome of one recorded event.
type Result struct {
	EventID string
	Status  string
	Code    string // rejected: the API's code (e.g. negative_quantity); duplicate: the reason
	Field   string
	Message string
	Event   json.RawMessage // the event as sent
}

// Metrics is a snapshot of the client's counters.
type Metrics struct {
	Recorded    int64 // accepted by Record into the buffer
	Sent        int64 // acknowledged by the API: accepted or duplicate
	Duplicates  int64 // of Sent, answered duplicate
	Retried     int64 // HTTP attempts retried (network error, 408, 429, 5xx)
	Rejected    int64 // refused by the API (per event or whole batch 4xx)
	Dropped     int64 // refused by Record (buffer full) or undelivered at Close without a spool
	Buffered    int64 // in memory now, being sent included
	Requests    int64 // HTTP attempts to the events endpoint
	Entitlement int64 // entitlement checks that went to the API (cache misses)
}

type pendingEvent struct {
	seq uint64
	id  string
	raw []byte
}

// Client sends usage events to Aforo. Safe for concurrent use. Create with New, end with Close.
type Client struct {
	cfg    Config
	http   *http.Client
	events string // the events endpoint URL
	auth   string

	mu       sync.Mutex
	buffer   []pendingEvent // in order; the head may be in flight (removed once answered)
	seq      uint64         // last sequence number given out
	doneSeq  uint64         // every event up to here has its Result
	progress chan struct{}  // closed and replaced whenever doneSeq moves
	closed   bool
	spool    *spool

	kick      chan struct{}
	runCtx    context.Context
	cancelRun context.CancelFunc
	done      chan struct{}

	recorded, sent, duplicates, retried, rejected, dropped, requests, entitlementCalls atomic.Int64

	entitlements entitlementCache
}

// New starts a client (and its sending goroutine). With a SpoolPath, the events the file holds
// that were never acknowledged are buffered again and sent first.
func New(cfg Config) (*Client, error) {
	if cfg.BaseURL == "" || cfg.Token == "" {
		return nil, errors.New("aforo: Config.BaseURL and Config.Token are required")
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.BatchSize > MaxBatchSize {
		cfg.BatchSize = MaxBatchSize
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = DefaultFlushInterval
	}
	if cfg.MaxBuffer <= 0 {
		cfg.MaxBuffer = DefaultMaxBuffer
	}
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = DefaultRetryBase
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = DefaultRetryMax
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.EntitlementTTL == 0 {
		cfg.EntitlementTTL = DefaultEntitlementTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = log.Default()
	}
	if cfg.now == nil {
		cfg.now = time.Now
	}
	httpClient := cfg.HTTPClient
	if httpClient == nil {
		transport := http.DefaultTransport.(*http.Transport).Clone()
		transport.MaxIdleConnsPerHost = 8
		httpClient = &http.Client{Transport: transport}
	}
	c := &Client{
		cfg:      cfg,
		http:     httpClient,
		events:   strings.TrimRight(cfg.BaseURL, "/") + "/api/v1/events",
		auth:     "Bearer " + cfg.Token,
		progress: make(chan struct{}),
		kick:     make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	c.entitlements.entries = map[string]entitlementEntry{}
	if cfg.SpoolPath != "" {
		sp, replayed, err := openSpool(cfg.SpoolPath)
		if err != nil {
			return nil, err
		}
		c.spool = sp
		for _, e := range replayed {
			c.seq++
			c.buffer = append(c.buffer, pendingEvent{seq: c.seq, id: e.id, raw: e.raw})
		}
		c.doneSeq = 0
	}
	c.runCtx, c.cancelRun = context.WithCancel(context.Background())
	go c.run()
	if len(c.buffer) > 0 {
		c.wake()
	}
	return c, nil
}

// Event is one usage event. Exactly one of APIKey, CustomerID, SubscriptionID names who is
// billed. Zero values are filled at Record: EventID (a new UUIDv7), Quantity ("1"), Timestamp (now).
type Event struct {
	EventID        string
	APIKey         string
	CustomerID     int64
	SubscriptionID int64
	Metric         string
	Quantity       string // a decimal STRING ("1", "2.50"), never a float
	Timestamp      time.Time
	Dimensions     map[string]string
	Metadata       map[string]any
}

type wireEvent struct {
	EventID        string            `json:"event_id"`
	APIKey         string            `json:"api_key,omitempty"`
	CustomerID     int64             `json:"customer_id,omitempty"`
	SubscriptionID int64             `json:"subscription_id,omitempty"`
	Metric         string            `json:"metric"`
	Quantity       string            `json:"quantity"`
	Timestamp      string            `json:"timestamp"`
	Dimensions     map[string]string `json:"dimensions"`
	Metadata       map[string]any    `json:"metadata"`
}

var emptyDimensions = map[string]string{}
var emptyMetadata = map[string]any{}

// Record buffers one event for sending and returns its id. It never blocks on the network:
// when the buffer is full the event is dropped (ErrBufferFull, Metrics.Dropped, OnResult).
func (c *Client) Record(event Event) (string, error) {
	wire := wireEvent{
		EventID: event.EventID, APIKey: event.APIKey, CustomerID: event.CustomerID,
		SubscriptionID: event.SubscriptionID, Metric: event.Metric, Quantity: event.Quantity,
		Dimensions: event.Dimensions, Metadata: event.Metadata,
	}
	if wire.EventID == "" {
		wire.EventID = NewEventID()
	}
	if wire.Quantity == "" {
		wire.Quantity = "1"
	}
	timestamp := event.Timestamp
	if timestamp.IsZero() {
		timestamp = time.Now()
	}
	wire.Timestamp = timestamp.UTC().Format("2006-01-02T15:04:05.000000Z07:00")
	if wire.Dimensions == nil {
		wire.Dimensions = emptyDimensions
	}
	if wire.Metadata == nil {
		wire.Metadata = emptyMetadata
	}
	raw, err := json.Marshal(wire)
	if err != nil {
		return "", fmt.Errorf("aforo: encoding event: %w", err)
	}
	if len(raw) > maxEventBytes {
		return wire.EventID, ErrEventTooLarge
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return wire.EventID, ErrClosed
	}
	if len(c.buffer) >= c.cfg.MaxBuffer {
		c.mu.Unlock()
		c.dropped.Add(1)
		c.report([]Result{{EventID: wire.EventID, Status: StatusDropped, Code: "buffer_full",
			Message: "the client's buffer was full", Event: raw}})
		return wire.EventID, ErrBufferFull
	}
	if c.spool != nil {
		if err := c.spool.appendEvent(raw); err != nil {
			// The event is still buffered in memory; only its survival of a restart is lost.
			c.cfg.Logger.Printf("aforo: spool write failed: %v", err)
		}
	}
	c.seq++
	c.buffer = append(c.buffer, pendingEvent{seq: c.seq, id: wire.EventID, raw: raw})
	full := len(c.buffer) >= c.cfg.BatchSize
	c.mu.Unlock()
	c.recorded.Add(1)
	if full {
		c.wake()
	}
	return wire.EventID, nil
}

// Flush waits until every event recorded before the call has its Result (sent, rejected), or
// ctx ends. During an outage it keeps waiting while the sender retries.
func (c *Client) Flush(ctx context.Context) error {
	c.mu.Lock()
	target := c.seq
	c.mu.Unlock()
	for {
		c.mu.Lock()
		finished, progress := c.doneSeq >= target, c.progress
		c.mu.Unlock()
		if finished {
			return nil
		}
		select {
		case <-c.done:
			return ErrClosed
		default:
		}
		c.wake()
		select {
		case <-progress:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close stops accepting events, sends what is buffered until ctx ends, then stops the sender.
// What is still unacknowledged then stays in the spool (replayed by the next New on the same
// file) or, without a spool, is reported as undelivered and counted as dropped. It returns
// ctx's error when it gave up.
func (c *Client) Close(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	err := c.Flush(ctx)
	c.cancelRun()
	<-c.done
	c.mu.Lock()
	left := c.buffer
	c.buffer = nil
	sp := c.spool
	c.mu.Unlock()
	if sp != nil {
		if closeErr := sp.close(); closeErr != nil && err == nil {
			err = closeErr
		}
	} else if len(left) > 0 {
		results := make([]Result, len(left))
		for i, e := range left {
			results[i] = Result{EventID: e.id, Status: StatusUndelivered, Code: "client_closed",
				Message: "the client closed before Aforo acknowledged the event", Event: e.raw}
		}
		c.dropped.Add(int64(len(left)))
		c.report(results)
	}
	return err
}

// Metrics returns the counters now.
func (c *Client) Metrics() Metrics {
	c.mu.Lock()
	buffered := int64(len(c.buffer))
	c.mu.Unlock()
	return Metrics{
		Recorded: c.recorded.Load(), Sent: c.sent.Load(), Duplicates: c.duplicates.Load(),
		Retried: c.retried.Load(), Rejected: c.rejected.Load(), Dropped: c.dropped.Load(),
		Buffered: buffered, Requests: c.requests.Load(), Entitlement: c.entitlementCalls.Load(),
	}
}

func (c *Client) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *Client) report(results []Result) {
	if c.cfg.OnResult != nil {
		for _, r := range results {
			c.cfg.OnResult(r)
		}
		return
	}
	for _, r := range results {
		if r.Status != StatusAccepted && r.Status != StatusDuplicate {
			c.cfg.Logger.Printf("aforo: event %s %s: %s %s %s", r.EventID, r.Status, r.Code, r.Field, r.Message)
		}
	}
}

// run is the sending goroutine: one batch in flight at a time, in record order, so Flush can
// wait on a sequence number and the spool's acknowledgements follow its appends.
func (c *Client) run() {
	defer close(c.done)
	ticker := time.NewTicker(c.cfg.FlushInterval)
	defer ticker.Stop()
	for {
		select {
		case <-c.runCtx.Done():
			return
		case <-ticker.C:
		case <-c.kick:
		}
		for c.sendBatch() {
		}
	}
}

// sendBatch sends the buffer's head (retrying until answered or the client stops) and settles
// it. It reports whether a batch was settled.
func (c *Client) sendBatch() bool {
	c.mu.Lock()
	var batch []pendingEvent
	size := len(`{"events":[]}`)
	for _, e := range c.buffer {
		if len(batch) == c.cfg.BatchSize || (len(batch) > 0 && size+len(e.raw)+1 > maxBodyBytes) {
			break
		}
		batch = append(batch, e)
		size += len(e.raw) + 1
	}
	c.mu.Unlock()
	if len(batch) == 0 {
		return false
	}
	body := make([]byte, 0, size)
	body = append(body, `{"events":[`...)
	for i, e := range batch {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, e.raw...)
	}
	body = append(body, "]}"...)
	results, err := c.deliver(body, batch)
	if err != nil { // the client is stopping: the batch stays buffered (and spooled)
		return false
	}
	c.settle(batch, results)
	return true
}

func (c *Client) settle(batch []pendingEvent, results []Result) {
	var sent, duplicates, rejected int64
	for _, r := range results {
		switch r.Status {
		case StatusAccepted:
			sent++
		case StatusDuplicate:
			sent++
			duplicates++
		default:
			rejected++
		}
	}
	c.sent.Add(sent)
	c.duplicates.Add(duplicates)
	c.rejected.Add(rejected)
	c.report(results) // before doneSeq moves: when Flush returns, every callback has run
	c.mu.Lock()
	c.buffer = c.buffer[len(batch):]
	if len(c.buffer) == 0 {
		c.buffer = nil // let the old backing array go
	}
	c.doneSeq = batch[len(batch)-1].seq
	if c.spool != nil {
		ids := make([]string, len(batch))
		var ackedBytes int64
		for i, e := range batch {
			ids[i] = e.id
			ackedBytes += int64(len(e.raw) + 1)
		}
		if err := c.spool.acknowledge(ids, ackedBytes, c.buffer); err != nil {
			c.cfg.Logger.Printf("aforo: spool acknowledgement failed: %v", err)
		}
	}
	close(c.progress)
	c.progress = make(chan struct{})
	c.mu.Unlock()
}

// deliver posts one batch until the API answers it (2xx, or a 4xx that is final) and returns a
// Result per event; it returns an error only when the client stops first.
func (c *Client) deliver(body []byte, batch []pendingEvent) ([]Result, error) {
	for attempt := 0; ; attempt++ {
		status, answer, retryAfter, err := c.post(c.runCtx, c.events, body)
		c.requests.Add(1)
		if err == nil && !retryable(status) {
			return batchResults(status, answer, batch), nil
		}
		if c.runCtx.Err() != nil {
			return nil, c.runCtx.Err()
		}
		c.retried.Add(1)
		timer := time.NewTimer(backoff(attempt, c.cfg.RetryBase, c.cfg.RetryMax, retryAfter))
		select {
		case <-timer.C:
		case <-c.runCtx.Done():
			timer.Stop()
			return nil, c.runCtx.Err()
		}
	}
}

func retryable(status int) bool {
	return status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500
}

// post sends one JSON request; err is a transport error (the status is then 0).
func (c *Client) post(ctx context.Context, url string, body []byte) (int, []byte, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	request, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, 0, err
	}
	request.Header.Set("Authorization", c.auth)
	request.Header.Set("Content-Type", "application/json")
	request.Header.Set("User-Agent", "aforo-go/"+Version)
	response, err := c.http.Do(request)
	if err != nil {
		return 0, nil, 0, err
	}
	defer response.Body.Close()
	answer, err := readAll(response)
	if err != nil {
		return 0, nil, 0, err
	}
	return response.StatusCode, answer, parseRetryAfter(response.Header.Get("Retry-After"), time.Now()), nil
}

type batchAnswer struct {
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	Results []struct {
		Index   int    `json:"index"`
		Status  string `json:"status"`
		Reason  string `json:"reason"`
		Code    string `json:"code"`
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"results"`
}

// batchResults maps the API's answer onto the batch: per-index results when it gives them
// (202, 207, or 400 invalid_events when every event was refused), else one outcome for all
// (a 2xx without results: accepted; a 4xx: every event rejected with the request's error code).
func batchResults(status int, answer []byte, batch []pendingEvent) []Result {
	results := make([]Result, len(batch))
	for i, e := range batch {
		results[i] = Result{EventID: e.id, Event: e.raw}
	}
	var parsed batchAnswer
	_ = json.Unmarshal(answer, &parsed)
	if status < 300 {
		for i := range results {
			results[i].Status = StatusAccepted
		}
	} else {
		code, message := fmt.Sprintf("http_%d", status), strings.TrimSpace(string(answer))
		if parsed.Error != nil {
			code, message = parsed.Error.Code, parsed.Error.Message
		}
		for i := range results {
			results[i].Status, results[i].Code, results[i].Message = StatusRejected, code, message
		}
	}
	for _, r := range parsed.Results {
		if r.Index < 0 || r.Index >= len(results) {
			continue
		}
		result := &results[r.Index]
		switch r.Status {
		case "accepted":
			result.Status, result.Code, result.Message = StatusAccepted, "", ""
		case "duplicate":
			result.Status, result.Code, result.Message = StatusDuplicate, r.Reason, ""
		case "rejected":
			result.Status, result.Code, result.Field, result.Message = StatusRejected, r.Code, r.Field, r.Message
		}
	}
	return results
}
