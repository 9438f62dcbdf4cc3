package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/fluxguard/fluxguard/internal/testenv"
)

// TestTracedChain checks that under the trace plugin the plugin after
// fluxguard still gets its span, a child of fluxguard's: fluxguard calls
// it through plugin.NextOrFailure, which it leaves out in a block without
// the trace plugin. The spans go to a real Jaeger on loopback, through
// its Zipkin receiver, as the trace plugin sends them, and are read back
// from its query API.
func TestTracedChain(t *testing.T) {
	jaeger := testenv.StartJaeger(t)
	sim := startSim(t)
	addr := freeAddr(t)
	core := startCoreDNS(t, fmt.Sprintf(`%s {
    bind 127.0.0.1
    trace zipkin %s {
        zipkin_max_batch_interval 100ms
    }
    fluxguard
    cache
    forward . %s
}
`, zoneAt(addr), jaeger.ZipkinURL, sim.Addr()))
	for _, netw := range []string{"udp", "tcp"} {
		if r := query(t, netw, addr, "www.stable.example.", dns.TypeA, true); r.Rcode != dns.RcodeSuccess {
			t.Fatalf("over %s:\n%s", netw, r)
		}
	}
	var traces []jaegerTrace
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("traces: %+v\n%s", traces, core)
		}
	})
	// The first query went upstream: fluxguard's span, cache's under it,
	// forward's under cache's.
	waitFor(t, 15*time.Second, "a trace of fluxguard, cache and forward, each a child of the one before", func() bool {
		traces = jaegerTraces(t, jaeger, "coredns")
		for _, tr := range traces {
			if tr.chain("fluxguard", "cache", "forward") {
				return true
			}
		}
		return false
	})
}

// jaegerTrace is a trace as Jaeger's query API returns it.
type jaegerTrace struct {
	Spans []jaegerSpan `json:"spans"`
}

type jaegerSpan struct {
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	References    []struct {
		RefType string `json:"refType"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
}

// chain reports whether the trace has a span for each of names, each a
// child of one for the name before.
func (tr jaegerTrace) chain(names ...string) bool {
	var parents map[string]bool // the spans of the name before; nil for the first
	for _, name := range names {
		spans := map[string]bool{}
		for _, s := range tr.Spans {
			if s.OperationName == name && (parents == nil || s.childOf(parents)) {
				spans[s.SpanID] = true
			}
		}
		if len(spans) == 0 {
			return false
		}
		parents = spans
	}
	return true
}

// childOf reports whether s is the child of one of parents.
func (s jaegerSpan) childOf(parents map[string]bool) bool {
	for _, r := range s.References {
		if r.RefType == "CHILD_OF" && parents[r.SpanID] {
			return true
		}
	}
	return false
}

// jaegerTraces returns the traces of service that Jaeger holds.
func jaegerTraces(t *testing.T, j *testenv.Jaeger, service string) []jaegerTrace {
	t.Helper()
	resp, err := http.Get(j.QueryURL + "/api/traces?service=" + service + "&limit=100")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Data []jaegerTrace `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("Jaeger's traces: %v", err)
	}
	return body.Data
}
