package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestQuantile(t *testing.T) {
	hundred := make([]float64, 100)
	for i := range hundred {
		hundred[i] = float64(i + 1)
	}
	tests := []struct {
		name   string
		sorted []float64
		q      float64
		want   float64
	}{
		{"empty", nil, 0.99, 0},
		{"one", []float64{7}, 0.5, 7},
		{"p50 of 100", hundred, 0.5, 50},
		{"p99 of 100", hundred, 0.99, 99},
		{"p99.9 of 100", hundred, 0.999, 100},
		{"p0", hundred, 0, 1},
	}
	for _, tc := range tests {
		if got := quantile(tc.sorted, tc.q); got != tc.want {
			t.Errorf("%s: quantile(%v) = %v, want %v", tc.name, tc.q, got, tc.want)
		}
	}
}

func TestReadQueries(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		want    []string // "name type" of each query
		wantErr string
	}{
		{"dnsperf format", "a.example.com A\nb.example.com aaaa\n\n# comment\nc.example.com.\n",
			[]string{"a.example.com. A", "b.example.com. AAAA", "c.example.com. A"}, ""},
		{"unknown type", "a.example.com BOGUS\n", nil, `unknown type "BOGUS"`},
		{"no queries", "# nothing\n", nil, "no queries"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "q.txt")
			if err := os.WriteFile(path, []byte(tc.file), 0o644); err != nil {
				t.Fatal(err)
			}
			qs, err := readQueries(path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Expected an error with %q, got %v", tc.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, q := range qs {
				m := new(dns.Msg)
				if err := m.Unpack(q); err != nil {
					t.Fatal(err)
				}
				got = append(got, m.Question[0].Name+" "+dns.TypeToString[m.Question[0].Qtype])
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("Expected %v, got %v", tc.want, got)
			}
		})
	}
}

// TestRun runs pairlat against two real servers on loopback, one of which
// drops every third query: each server gets every query, the dropped ones
// count as lost, and the latencies are appended to the -out files.
func TestRun(t *testing.T) {
	addrs := make([]string, 2)
	for i := range addrs {
		drop := i == 1
		var n atomic.Int32
		addrs[i] = serve(t, func(w dns.ResponseWriter, r *dns.Msg) {
			if drop && n.Add(1)%3 == 0 {
				return
			}
			m := new(dns.Msg).SetReply(r)
			w.WriteMsg(m)
		})
	}
	dir := t.TempDir()
	names := filepath.Join(dir, "q.txt")
	if err := os.WriteFile(names, []byte("a.example.com A\nb.example.com AAAA\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "lat")
	for range 2 { // -out appends
		if err := run(addrs[0], addrs[1], names, 30, 500*time.Millisecond, out); err != nil { // long enough for a stalled -race run
			t.Fatal(err)
		}
	}
	for suffix, want := range map[string]int{"a": 60, "b": 40} {
		b, err := os.ReadFile(out + "." + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Count(string(b), "\n"); got != want {
			t.Errorf("%s: expected %d latencies, got %d", suffix, want, got)
		}
	}
}

// serve starts a UDP DNS server on loopback and returns its address.
func serve(t *testing.T, h dns.HandlerFunc) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &dns.Server{PacketConn: pc, Handler: h}
	started := make(chan struct{})
	s.NotifyStartedFunc = func() { close(started) }
	go s.ActivateAndServe()
	<-started
	t.Cleanup(func() { s.Shutdown() })
	return pc.LocalAddr().String()
}
