package aforo

// Unit tests: the retry policy against a tiny local fake of the events endpoint (the end-to-end
// tests use the real platform), ids, the spool file and the overflow policy.

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeIngest answers each POST with the next of answers (the last repeats) and records the
// arrival time of each attempt.
type fakeIngest struct {
	mu       sync.Mutex
	answers  []func(w http.ResponseWriter, body []byte)
	arrivals []time.Time
	bodies   [][]byte
}

func (f *fakeIngest) start(t *testing.T) *httptest.Server {
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		n := len(f.arrivals)
		f.arrivals = append(f.arrivals, time.Now())
		f.bodies = append(f.bodies, body)
		answer := f.answers[len(f.answers)-1]
		if n < len(f.answers) {
			answer = f.answers[n]
		}
		f.mu.Unlock()
		answer(w, body)
	}))
	t.Cleanup(server.Close)
	return server
}

func (f *fakeIngest) attempts() int { f.mu.Lock(); defer f.mu.Unlock(); return len(f.arrivals) }

func status(code int, headers ...string) func(http.ResponseWriter, []byte) {
	return func(w http.ResponseWriter, _ []byte) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = w.Write([]byte(`{"error":{"code":"test_` + http.StatusText(code) + `","message":"from the fake"}}`))
	}
}

// acceptAll answers 202 with an accepted result per event of the batch.
func acceptAll(w http.ResponseWriter, body []byte) {
	var batch struct {
		Events []json.RawMessage `json:"events"`
	}
	_ = json.Unmarshal(body, &batch)
	results := make([]map[string]any, len(batch.Events))
	for i := range batch.Events {
		results[i] = map[string]any{"index": i, "status": "accepted"}
	}
	w.WriteHeader(http.StatusAccepted)
	_ = json.NewEncoder(w).Encode(map[string]any{"results": results})
}

func hangUp(w http.ResponseWriter, _ []byte) { // a network error: the connection drops
	connection, _, _ := w.(http.Hijacker).Hijack()
	connection.Close()
}

func fakeClient(t *testing.T, url string, results *[]Result) *Client {
	var mu sync.Mutex
	client, err := New(Config{BaseURL: url, Token: "aft_ingest_test", FlushInterval: time.Hour,
		RetryBase: 10 * time.Millisecond, RetryMax: 40 * time.Millisecond,
		OnResult: func(r Result) { mu.Lock(); *results = append(*results, r); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close(context.Background()) })
	return client
}

func within(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// (5) A 4xx is final: one attempt, every event rejected with its code, never retried.
func TestClientErrorIsNotRetried(t *testing.T) {
	for _, code := range []int{400, 401, 403, 413, 422} {
		fake := &fakeIngest{answers: []func(http.ResponseWriter, []byte){status(code), acceptAll}}
		var results []Result
		client := fakeClient(t, fake.start(t).URL, &results)
		id, _ := client.Record(Event{APIKey: "k", Metric: "m"})
		if err := client.Flush(within(t, 5*time.Second)); err != nil {
			t.Fatal(err)
		}
		if fake.attempts() != 1 || client.Metrics().Retried != 0 {
			t.Fatalf("%d: %d attempts, metrics %+v; want exactly one", code, fake.attempts(), client.Metrics())
		}
		if len(results) != 1 || results[0].EventID != id || results[0].Status != StatusRejected || results[0].Code != "test_"+http.StatusText(code) {
			t.Fatalf("%d: results %+v", code, results)
		}
	}
}

// (5) 429, 5xx and network errors are retried until answered, with the same event ids.
func TestServerErrorsAreRetried(t *testing.T) {
	fake := &fakeIngest{answers: []func(http.ResponseWriter, []byte){
		status(500), status(503), hangUp, status(429), status(408), acceptAll}}
	var results []Result
	client := fakeClient(t, fake.start(t).URL, &results)
	for i := 0; i < 3; i++ {
		client.Record(Event{APIKey: "k", Metric: "m"})
	}
	if err := client.Flush(within(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if m := client.Metrics(); fake.attempts() != 6 || m.Retried != 5 || m.Sent != 3 {
		t.Fatalf("%d attempts, metrics %+v; want 6 attempts, 5 retries, 3 sent", fake.attempts(), m)
	}
	for _, body := range fake.bodies[1:] {
		if string(body) != string(fake.bodies[0]) {
			t.Fatalf("a retry sent another body:\n%s\n%s", fake.bodies[0], body)
		}
	}
	if len(results) != 3 || results[0].Status != StatusAccepted {
		t.Fatalf("results %+v", results)
	}
}

// (5) Retry-After is honoured (here 1 s, far above the 40 ms backoff cap), in both of its forms.
func TestRetryAfterIsHonoured(t *testing.T) {
	for _, header := range []string{"1", "date"} {
		value := header
		answers := []func(http.ResponseWriter, []byte){func(w http.ResponseWriter, b []byte) {
			if value == "date" {
				value = time.Now().Add(2 * time.Second).UTC().Format(http.TimeFormat) // 1–2 s ahead (second precision)
			}
			status(503, "Retry-After", value)(w, b)
		}, acceptAll}
		fake := &fakeIngest{answers: answers}
		var results []Result
		client := fakeClient(t, fake.start(t).URL, &results)
		client.Record(Event{APIKey: "k", Metric: "m"})
		if err := client.Flush(within(t, 10*time.Second)); err != nil {
			t.Fatal(err)
		}
		if gap := fake.arrivals[1].Sub(fake.arrivals[0]); gap < 950*time.Millisecond {
			t.Fatalf("Retry-After %s: retried after %v", header, gap)
		}
	}
}

// Per-event results in a 202: accepted, duplicate and rejected, each reported once.
func TestPerEventResults(t *testing.T) {
	fake := &fakeIngest{answers: []func(http.ResponseWriter, []byte){func(w http.ResponseWriter, _ []byte) {
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"results":[{"index":0,"status":"accepted"},{"index":1,"status":"duplicate","reason":"already_received"},` +
			`{"index":2,"status":"rejected","code":"invalid_metric","field":"metric","message":"bad"}]}`))
	}}}
	var results []Result
	client := fakeClient(t, fake.start(t).URL, &results)
	for i := 0; i < 3; i++ {
		client.Record(Event{APIKey: "k", Metric: "m"})
	}
	if err := client.Flush(within(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	want := []string{StatusAccepted, StatusDuplicate, StatusRejected}
	for i, r := range results {
		if r.Status != want[i] {
			t.Fatalf("results %+v", results)
		}
	}
	if m := client.Metrics(); m.Sent != 2 || m.Duplicates != 1 || m.Rejected != 1 {
		t.Fatalf("metrics %+v", m)
	}
}

// The overflow policy: past MaxBuffer the NEW event is dropped, counted and reported.
func TestOverflowDropsNewest(t *testing.T) {
	block := make(chan struct{})
	fake := &fakeIngest{answers: []func(http.ResponseWriter, []byte){func(w http.ResponseWriter, b []byte) { <-block; acceptAll(w, b) }}}
	var results []Result
	server := fake.start(t)
	client, _ := New(Config{BaseURL: server.URL, Token: "t", MaxBuffer: 3, FlushInterval: time.Hour,
		OnResult: func(r Result) { results = append(results, r) }})
	defer client.Close(within(t, 5*time.Second))
	defer close(block) // first: the fake answers, then Close flushes
	var ids []string
	for i := 0; i < 5; i++ {
		id, err := client.Record(Event{APIKey: "k", Metric: "m"})
		if (i < 3) != (err == nil) || (i >= 3 && err != ErrBufferFull) {
			t.Fatalf("record %d: %v", i, err)
		}
		ids = append(ids, id)
	}
	if m := client.Metrics(); m.Dropped != 2 || m.Buffered != 3 {
		t.Fatalf("metrics %+v", m)
	}
	if len(results) != 2 || results[0].EventID != ids[3] || results[1].Status != StatusDropped {
		t.Fatalf("results %+v", results)
	}
}

// Without a spool, what Close cannot deliver is reported undelivered, never silently lost.
func TestCloseReportsUndelivered(t *testing.T) {
	listener, _ := net.Listen("tcp", "127.0.0.1:0")
	url := "http://" + listener.Addr().String()
	listener.Close() // connection refused from now on
	var results []Result
	client := fakeClient(t, url, &results)
	client.Record(Event{APIKey: "k", Metric: "m"})
	if err := client.Close(within(t, 200*time.Millisecond)); err != context.DeadlineExceeded {
		t.Fatalf("close: %v", err)
	}
	if len(results) != 1 || results[0].Status != StatusUndelivered || client.Metrics().Dropped != 1 {
		t.Fatalf("results %+v metrics %+v", results, client.Metrics())
	}
	if _, err := client.Record(Event{APIKey: "k", Metric: "m"}); err != ErrClosed {
		t.Fatalf("record after close: %v", err)
	}
}

func TestEventWireFormat(t *testing.T) {
	fake := &fakeIngest{answers: []func(http.ResponseWriter, []byte){acceptAll}}
	var results []Result
	client := fakeClient(t, fake.start(t).URL, &results)
	client.Record(Event{CustomerID: 7, Metric: "tokens", Quantity: "2.50", Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.FixedZone("x", 3600))})
	client.Flush(within(t, 5*time.Second))
	var batch struct {
		Events []map[string]any `json:"events"`
	}
	if err := json.Unmarshal(fake.bodies[0], &batch); err != nil {
		t.Fatal(err)
	}
	event := batch.Events[0]
	if event["quantity"] != "2.50" || event["timestamp"] != "2026-01-02T02:04:05.000006Z" || event["customer_id"] != 7.0 {
		t.Fatalf("event %v", event)
	}
	if _, present := event["api_key"]; present {
		t.Fatalf("api_key sent with a customer_id: %v", event)
	}
	if _, ok := event["dimensions"].(map[string]any); !ok {
		t.Fatalf("dimensions not an object: %v", event)
	}
}

var uuidV7Pattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestEventIDsAreUUIDv7(t *testing.T) {
	seen := map[string]bool{}
	previous := ""
	for i := 0; i < 10000; i++ {
		id := NewEventID()
		if !uuidV7Pattern.MatchString(id) || seen[id] {
			t.Fatalf("id %q (seen before: %v)", id, seen[id])
		}
		seen[id] = true
		if id[:13] < previous[:min13(previous)] {
			t.Fatalf("ids go back in time: %s after %s", id, previous)
		}
		previous = id
	}
	at := time.UnixMilli(0x0189_abcd_ef01)
	if id := uuidV7(at); id[:13] != "0189abcd-ef01" {
		t.Fatalf("timestamp bits: %s", id)
	}
}

func min13(s string) int {
	if len(s) < 13 {
		return len(s)
	}
	return 13
}

// The spool replays only unacknowledged events, in order, and skips a torn last line.
func TestSpoolReplay(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spool")
	content := `{"event_id":"a","metric":"m"}` + "\n" +
		`{"event_id":"b","metric":"m"}` + "\n" +
		`{"ack":["a"]}` + "\n" +
		`{"event_id":"c","metric":"m"}` + "\n" +
		`{"event_id":"b","metric":"m"}` + "\n" +
		`{"event_id":"d","met`
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	sp, pending, err := openSpool(path)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.close()
	if len(pending) != 2 || pending[0].id != "b" || pending[1].id != "c" {
		t.Fatalf("pending %+v", pending)
	}
	rewritten, _ := os.ReadFile(path)
	if string(rewritten) != `{"event_id":"b","metric":"m"}`+"\n"+`{"event_id":"c","metric":"m"}`+"\n" {
		t.Fatalf("rewritten spool %q", rewritten)
	}
}

func TestBackoffBounds(t *testing.T) {
	for attempt := 0; attempt < 40; attempt++ {
		wait := backoff(attempt, 100*time.Millisecond, 2*time.Second, 0)
		ceiling := 100 * time.Millisecond << attempt
		if attempt >= 5 {
			ceiling = 2 * time.Second
		}
		if wait < ceiling/2 || wait > ceiling {
			t.Fatalf("attempt %d: %v outside [%v, %v]", attempt, wait, ceiling/2, ceiling)
		}
	}
	if wait := backoff(0, 100*time.Millisecond, time.Second, 3*time.Second); wait != 3*time.Second {
		t.Fatalf("Retry-After 3 s: %v", wait)
	}
}

var _ atomic.Int64

// A spool under constant load (never empty) is compacted instead of growing for ever.
func TestSpoolCompaction(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spool")
	sp, _, err := openSpool(path)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.close()
	var pending []pendingEvent
	for i := 0; i < 40000; i++ { // append one, acknowledge the previous: one always pending
		id := NewEventID()
		e := pendingEvent{id: id, raw: []byte(`{"event_id":"` + id + `","metric":"m","padding":"0123456789"}`)}
		if err := sp.appendEvent(e.raw); err != nil {
			t.Fatal(err)
		}
		pending = append(pending, e)
		if len(pending) == 2 {
			if err := sp.acknowledge([]string{pending[0].id}, int64(len(pending[0].raw)+1), pending[1:]); err != nil {
				t.Fatal(err)
			}
			pending = pending[1:]
		}
	}
	info, _ := os.Stat(path)
	if info.Size() > 2*spoolCompactAfter {
		t.Fatalf("spool grew to %d bytes with one event pending", info.Size())
	}
	sp.close()
	_, replayed, err := openSpool(path)
	if err != nil || len(replayed) != 1 || replayed[0].id != pending[0].id {
		t.Fatalf("replayed %d events (%v), want the one pending", len(replayed), err)
	}
}
