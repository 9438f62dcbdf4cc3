package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/fluxguard/fluxguard/internal/fluxsim"
)

// TestAllowReleasesHeldChain runs the real binary with block and an
// allow_file: a name held for the flux behind its CNAME is answered again,
// over UDP and TCP, once the file allows the CNAME's target, while another
// held name stays blocked.
func TestAllowReleasesHeldChain(t *testing.T) {
	sim := startSim(t,
		fluxsim.Name{Name: "promo.relay.top.", Kind: fluxsim.CNAME, Target: "edge.fluxnet.top.", TTL: 5},
		fluxsim.Name{Name: "edge.fluxnet.top.", Kind: fluxsim.Flux, Pool: 60, PerAnswer: 4, TTL: 5})
	allow := filepath.Join(t.TempDir(), "allow.txt")
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(allow, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("# nothing yet\n")
	addr := freeAddr(t)
	core := startCoreDNS(t, fmt.Sprintf(`
%s {
    bind 127.0.0.1
    fluxguard {
        action block
        allow_file %s
    }
    cache 30
    forward . %s
}
`, zoneAt(addr), allow, sim.Addr()))
	flag(t, addr, "promo.relay.top.")
	flag(t, addr, "login.fluxy.top.")

	write("fluxnet.top\n")
	waitFor(t, reloadWithin, "the allow file to be reloaded", func() bool {
		return strings.Contains(core.String(), "policy file "+allow+" reloaded: 1 names")
	})
	for range 3 {
		for _, netw := range []string{"udp", "tcp"} {
			r := query(t, netw, addr, "promo.relay.top.", dns.TypeA, true)
			if r.Rcode != dns.RcodeSuccess || len(r.Answer) < 2 || blockedAnswer(r) {
				t.Fatalf("its CNAME's target allowed, the held name is still blocked over %s:\n%s", netw, r)
			}
		}
	}
	for _, netw := range []string{"udp", "tcp"} {
		if r := query(t, netw, addr, "login.fluxy.top.", dns.TypeA, true); !blockedAnswer(r) {
			t.Fatalf("another held name answered over %s after the allows changed:\n%s", netw, r)
		}
	}
}
