package aforo

// The end-to-end tests run against a whole Aforo started ONCE per `go test` run (lazily, by the
// first test that needs it; stopped by TestMain): python -m aforo.devserver.testplatform.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

type platformCustomer struct {
	ID         int64    `json:"id"`
	Name       string   `json:"name"`
	APIKey     string   `json:"api_key"`
	WalletID   *int64   `json:"wallet_id"`
	Metrics    []string `json:"metrics"`
	BillingMod string   `json:"billing_mode"`
}

type testPlatform struct {
	URL         string             `json:"url"`
	IngestToken string             `json:"ingest_token"`
	AdminToken  string             `json:"admin_token"`
	Customers   []platformCustomer `json:"customers"`

	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	mu     sync.Mutex
}

var (
	platformOnce    sync.Once
	sharedPlatform  *testPlatform
	platformFailure error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedPlatform != nil {
		sharedPlatform.stop()
	}
	os.Exit(code)
}

// platform returns the running Aforo, starting it on first use; a test that needs it fails
// (never skips) when it cannot start.
func platform(t testing.TB) *testPlatform {
	t.Helper()
	platformOnce.Do(func() { sharedPlatform, platformFailure = startPlatform() })
	if platformFailure != nil {
		t.Fatalf("testplatform: %v", platformFailure)
	}
	return sharedPlatform
}

func startPlatform() (*testPlatform, error) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return nil, err
	}
	python := os.Getenv("AFORO_PYTHON")
	if python == "" {
		python = filepath.Join(root, ".venv", "bin", "python")
	}
	cmd := exec.Command(python, "-m", "aforo.devserver.testplatform", "--name", "sdkgo", "--redis-db", "8")
	cmd.Dir = root
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &testPlatform{cmd: cmd, stdin: stdin, stdout: bufio.NewReader(stdout)}
	line := make(chan string, 1)
	go func() {
		text, _ := p.stdout.ReadString('\n')
		line <- text
	}()
	select {
	case text := <-line:
		if err := json.Unmarshal([]byte(text), p); err != nil || p.URL == "" {
			p.stop()
			return nil, fmt.Errorf("unexpected first line %q: %v", text, err)
		}
	case <-time.After(150 * time.Second):
		p.stop()
		return nil, fmt.Errorf("no credentials line within 150 s")
	}
	return p, nil
}

func (p *testPlatform) stop() {
	_ = p.stdin.Close() // the platform stops everything and drops its database
	finished := make(chan error, 1)
	go func() { finished <- p.cmd.Wait() }()
	select {
	case <-finished:
	case <-time.After(60 * time.Second):
		_ = p.cmd.Process.Kill()
	}
}

// web sends "web stop" / "web start" and waits for its "ok".
func (p *testPlatform) web(t testing.TB, command string) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := io.WriteString(p.stdin, command+"\n"); err != nil {
		t.Fatalf("%s: %v", command, err)
	}
	answer := make(chan string, 1)
	go func() {
		text, _ := p.stdout.ReadString('\n')
		answer <- strings.TrimSpace(text)
	}()
	select {
	case text := <-answer:
		if text != "ok" {
			t.Fatalf("%s answered %q", command, text)
		}
	case <-time.After(90 * time.Second):
		t.Fatalf("%s: no answer within 90 s", command)
	}
}

func (p *testPlatform) customer(t testing.TB, name string) platformCustomer {
	t.Helper()
	for _, c := range p.Customers {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no demo customer %q", name)
	return platformCustomer{}
}

func (p *testPlatform) client(t testing.TB, configure func(*Config)) *Client {
	t.Helper()
	config := Config{BaseURL: p.URL, Token: p.IngestToken, FlushInterval: 100 * time.Millisecond,
		RetryBase: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond}
	if configure != nil {
		configure(&config)
	}
	client, err := New(config)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = client.Close(ctx)
	})
	return client
}

// adminGet decodes GET path (admin token) into out.
func (p *testPlatform) adminGet(t testing.TB, path string, out any) {
	t.Helper()
	request, _ := http.NewRequest(http.MethodGet, p.URL+path, nil)
	request.Header.Set("Authorization", "Bearer "+p.AdminToken)
	response, err := http.DefaultClient.Do(request)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer response.Body.Close()
	body, _ := io.ReadAll(response.Body)
	if response.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, response.StatusCode, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

// units is the customer's running total of metric this period (all dimension keys together).
func (p *testPlatform) units(t testing.TB, customerID int64, metric string) *big.Rat {
	t.Helper()
	var usage struct {
		Subscriptions []struct {
			Metrics []struct {
				Metric string `json:"metric"`
				Units  string `json:"units"`
			} `json:"metrics"`
		} `json:"subscriptions"`
	}
	p.adminGet(t, fmt.Sprintf("/api/v1/customers/%d/usage", customerID), &usage)
	total := new(big.Rat)
	for _, s := range usage.Subscriptions {
		for _, m := range s.Metrics {
			if m.Metric == metric {
				total.Add(total, decimal(t, m.Units))
			}
		}
	}
	return total
}

// waitUnits polls the running total until it equals want (the consumer rates asynchronously).
func (p *testPlatform) waitUnits(t testing.TB, customerID int64, metric string, want *big.Rat) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := p.units(t, customerID, metric)
		if got.Cmp(want) == 0 {
			return
		}
		if got.Cmp(want) > 0 {
			t.Fatalf("%s units: %s, more than the %s expected (an event counted twice?)", metric, got.RatString(), want.RatString())
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s units: still %s after 30 s, want %s", metric, got.RatString(), want.RatString())
		}
		time.Sleep(100 * time.Millisecond) // polling interval, not a wait for the work itself
	}
}

func decimal(t testing.TB, text string) *big.Rat {
	t.Helper()
	value, ok := new(big.Rat).SetString(text)
	if !ok {
		t.Fatalf("not a decimal: %q", text)
	}
	return value
}

func plus(base *big.Rat, n int64) *big.Rat {
	return new(big.Rat).Add(base, big.NewRat(n, 1))
}
