package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestTracedChain checks that under the trace plugin the plugin after
// fluxguard still gets its span: fluxguard calls it through
// plugin.NextOrFailure, which it leaves out in a block without the trace
// plugin. The spans go to a Zipkin collector on loopback, as the trace
// plugin sends them.
func TestTracedChain(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]bool{} // the names of the spans received
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var spans []struct {
			Name string `json:"name"`
		}
		if err := json.NewDecoder(r.Body).Decode(&spans); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		for _, s := range spans {
			seen[s.Name] = true
		}
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(collector.Close)
	sim := startSim(t)
	addr := freeAddr(t)
	core := startCoreDNS(t, fmt.Sprintf(`%s {
    bind 127.0.0.1
    trace zipkin %s/api/v2/spans {
        zipkin_max_batch_interval 100ms
    }
    fluxguard
    cache
    forward . %s
}
`, zoneAt(addr), collector.URL, sim.Addr()))
	for _, netw := range []string{"udp", "tcp"} {
		if r := query(t, netw, addr, "www.stable.example.", dns.TypeA, true); r.Rcode != dns.RcodeSuccess {
			t.Fatalf("over %s:\n%s", netw, r)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			mu.Lock()
			defer mu.Unlock()
			t.Logf("spans seen: %v\n%s", seen, core)
		}
	})
	waitFor(t, 10*time.Second, "the spans of fluxguard, cache and forward", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return seen["fluxguard"] && seen["cache"] && seen["forward"]
	})
}
