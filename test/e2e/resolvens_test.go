package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/fluxguard/fluxguard/internal/fluxsim"
)

// TestResolveNS runs double flux through the real binary with minimal
// responses: the answers that reach fluxguard carry no authority section,
// so the rotating name servers show only by resolving them (resolve_ns),
// which goes down the chain to the upstream again as the NS records' TTL
// passes. The name's addresses alone (a fixed set in two networks) keep it
// suspicious; the block without resolve_ns never sees its name servers.
func TestResolveNS(t *testing.T) {
	sim := startSim(t, fluxsim.Name{Name: "www.dblns.com.", Kind: fluxsim.RoundRobin, TTL: 5, NSPool: 20,
		IPs: []string{"45.1.0.1", "45.1.0.2", "45.1.0.3", "46.1.0.1", "46.1.0.2", "46.1.0.3"}})
	with, without := freeAddr(t), freeAddr(t)
	block := func(addr, name, options string) string {
		return fmt.Sprintf(`
%s {
    bind 127.0.0.1
    metadata
    log . "%s {name} reasons={/fluxguard/reasons}"
    fluxguard {
        %s
    }
    minimal
    forward . %s
}`, zoneAt(addr), name, options, sim.Addr())
	}
	core := startCoreDNS(t, block(with, "with-resolve-ns", "resolve_ns 100")+block(without, "without-resolve-ns", ""))
	for deadline := time.Now().Add(45 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		for _, addr := range []string{with, without} {
			if r := query(t, "udp", addr, "www.dblns.com.", dns.TypeA, false); len(r.Ns) != 0 {
				t.Fatalf("minimal left the authority section:\n%s", r)
			}
		}
		if strings.Contains(core.String(), "with-resolve-ns www.dblns.com. reasons=") &&
			strings.Contains(core.String(), "ns_churn") {
			break
		}
	}
	var withNS, withoutNS int
	var firstNS string
	for _, line := range strings.Split(core.String(), "\n") {
		switch {
		case strings.Contains(line, "without-resolve-ns") && strings.Contains(line, "ns_"):
			withoutNS++
		case strings.Contains(line, "with-resolve-ns") && strings.Contains(line, "ns_churn"):
			if withNS++; withNS == 1 {
				firstNS = line
			}
		}
	}
	t.Logf("%d answers with ns_churn; the first:\n%s", withNS, firstNS)
	if withNS == 0 {
		t.Errorf("resolve_ns never showed the name servers' rotation (ns_churn)")
	}
	if withoutNS != 0 {
		t.Errorf("without resolve_ns, %d answers showed name servers: minimal should have stripped them", withoutNS)
	}
}
