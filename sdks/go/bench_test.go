package aforo

// Benchmarks (go test -run '^$' -bench . -benchtime 200000x):
//   - the middleware's added latency per request: BenchmarkHandlerBare vs BenchmarkMiddleware
//     (same handler, called in process, so only the middleware's own work differs), with p50/p99;
//   - events/s one process can emit: BenchmarkRecordAndSend (to a fake ingest that answers 202
//     at once: the SDK's own ceiling) and BenchmarkE2EThroughput (to the real testplatform).

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"testing"
	"time"
)

func benchIngest(b *testing.B) *httptest.Server {
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{}`)) // no per-event results: a 2xx counts every event accepted
	}))
	b.Cleanup(server.Close)
	return server
}

func benchClient(b *testing.B, url string) *Client {
	client, err := New(Config{BaseURL: url, Token: "t", BatchSize: 1000, MaxBuffer: 10_000_000})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = client.Close(context.Background()) })
	return client
}

var benchHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte("ok"))
})

func serveTimed(b *testing.B, handler http.Handler) {
	request := httptest.NewRequest(http.MethodGet, "/v1/search?q=x", nil)
	request.Header.Set("X-API-Key", "sk_live_bench")
	durations := make([]time.Duration, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		recorder := httptest.NewRecorder()
		started := time.Now()
		handler.ServeHTTP(recorder, request)
		durations[i] = time.Since(started)
	}
	b.StopTimer()
	sort.Slice(durations, func(i, j int) bool { return durations[i] < durations[j] })
	b.ReportMetric(float64(durations[len(durations)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(durations[len(durations)*99/100].Nanoseconds()), "p99-ns")
}

func BenchmarkHandlerBare(b *testing.B) {
	serveTimed(b, benchHandler)
}

func BenchmarkMiddleware(b *testing.B) {
	client := benchClient(b, benchIngest(b).URL)
	serveTimed(b, Middleware(client)(benchHandler))
	b.StopTimer()
	if m := client.Metrics(); m.Dropped != 0 {
		b.Fatalf("dropped %d", m.Dropped)
	}
}

func BenchmarkMiddlewareParallel(b *testing.B) {
	client := benchClient(b, benchIngest(b).URL)
	handler := Middleware(client)(benchHandler)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		request := httptest.NewRequest(http.MethodGet, "/v1/search", nil)
		request.Header.Set("X-API-Key", "sk_live_bench")
		for pb.Next() {
			handler.ServeHTTP(httptest.NewRecorder(), request)
		}
	})
}

// events/s recorded AND acknowledged by a fake ingest: the SDK's own ceiling.
func BenchmarkRecordAndSend(b *testing.B) {
	client := benchClient(b, benchIngest(b).URL)
	started := time.Now()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_, _ = client.Record(Event{APIKey: "sk_live_bench", Metric: "api_calls"})
	}
	if err := client.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if m := client.Metrics(); m.Sent != int64(b.N) {
		b.Fatalf("sent %d of %d", m.Sent, b.N)
	}
	b.ReportMetric(float64(b.N)/time.Since(started).Seconds(), "events/s")
}

// events/s acknowledged by the real Aforo (web + Kafka acks=all) on this machine.
func BenchmarkE2EThroughput(b *testing.B) {
	p := platform(b)
	acme := p.customer(b, "Acme Corp")
	client, err := New(Config{BaseURL: p.URL, Token: p.IngestToken, BatchSize: 1000, MaxBuffer: 10_000_000})
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close(context.Background())
	started := time.Now()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_, _ = client.Record(Event{APIKey: acme.APIKey, Metric: "agent_sessions"})
	}
	if err := client.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if m := client.Metrics(); m.Sent != int64(b.N) || m.Rejected != 0 {
		b.Fatalf("metrics %+v", m)
	}
	b.ReportMetric(float64(b.N)/time.Since(started).Seconds(), "events/s")
}
