package aforo

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"strconv"
	"time"
)

// MiddlewareOption configures Middleware.
type MiddlewareOption func(*middlewareConfig)

type middlewareConfig struct {
	metric     string
	apiKey     func(*http.Request) string
	customerID func(*http.Request) int64
	meter      func(r *http.Request, status int) bool
	dimensions func(r *http.Request, status int) map[string]string
	quantity   func(r *http.Request, status int) string
}

// WithMetric sets the metric each request is recorded under (default "api_calls").
func WithMetric(metric string) MiddlewareOption {
	return func(m *middlewareConfig) { m.metric = metric }
}

// WithAPIKey sets how a request's customer API key is found (default: the X-API-Key header).
func WithAPIKey(extract func(*http.Request) string) MiddlewareOption {
	return func(m *middlewareConfig) { m.apiKey = extract }
}

// WithCustomerID bills Aforo's customer id instead of an API key (0: not metered).
func WithCustomerID(extract func(*http.Request) int64) MiddlewareOption {
	return func(m *middlewareConfig) { m.customerID = extract; m.apiKey = nil }
}

// WithFilter decides which requests are billable (default: responses with status < 400).
func WithFilter(meter func(r *http.Request, status int) bool) MiddlewareOption {
	return func(m *middlewareConfig) { m.meter = meter }
}

// WithDimensions adds dimensions (they select prices: use the names your plan prices on).
func WithDimensions(dimensions func(r *http.Request, status int) map[string]string) MiddlewareOption {
	return func(m *middlewareConfig) { m.dimensions = dimensions }
}

// WithQuantity sets the quantity per request (default "1").
func WithQuantity(quantity func(r *http.Request, status int) string) MiddlewareOption {
	return func(m *middlewareConfig) { m.quantity = quantity }
}

// Middleware meters every billable request served by the wrapped handler: once the handler
// returns, one event (metric, the caller's API key, quantity 1, metadata method/path/status/
// duration) is recorded into c's buffer. Nothing touches the network on the request's path;
// a request without an API key (or customer id) is not metered.
func Middleware(c *Client, options ...MiddlewareOption) func(http.Handler) http.Handler {
	config := middlewareConfig{
		metric: "api_calls",
		apiKey: func(r *http.Request) string { return r.Header.Get("X-API-Key") },
		meter:  func(_ *http.Request, status int) bool { return status < 400 },
	}
	for _, option := range options {
		option(&config)
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			started := time.Now()
			recorder := &statusRecorder{ResponseWriter: w}
			next.ServeHTTP(recorder, r)
			status := recorder.status
			if status == 0 {
				status = http.StatusOK
			}
			if !config.meter(r, status) {
				return
			}
			event := Event{Metric: config.metric}
			if config.apiKey != nil {
				event.APIKey = config.apiKey(r)
			}
			if config.customerID != nil {
				event.CustomerID = config.customerID(r)
			}
			if event.APIKey == "" && event.CustomerID == 0 {
				return
			}
			if config.quantity != nil {
				event.Quantity = config.quantity(r, status)
			}
			if config.dimensions != nil {
				event.Dimensions = config.dimensions(r, status)
			}
			event.Timestamp = started
			event.Metadata = map[string]any{
				"method": r.Method, "path": r.URL.Path, "status": status,
				"duration_us": strconv.FormatInt(time.Since(started).Microseconds(), 10),
			}
			_, _ = c.Record(event) // a full buffer is counted and reported by the client
		})
	}
}

// statusRecorder remembers the status the handler wrote; Flush passes through for streaming.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(status int) {
	if s.status == 0 {
		s.status = status
	}
	s.ResponseWriter.WriteHeader(status)
}

func (s *statusRecorder) Write(body []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(body)
}

func (s *statusRecorder) Flush() {
	if flusher, ok := s.ResponseWriter.(http.Flusher); ok {
		flusher.Flush()
	}
}

// Hijack passes through (WebSocket upgrades behind the middleware); a hijacked request whose
// handler wrote no status is metered as 200 (101 for an upgrade it wrote itself).
func (s *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if hijacker, ok := s.ResponseWriter.(http.Hijacker); ok {
		return hijacker.Hijack()
	}
	return nil, nil, errors.New("aforo: the underlying ResponseWriter cannot be hijacked")
}

// Unwrap lets http.ResponseController (Go 1.20+) reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
