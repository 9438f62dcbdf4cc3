package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// reloadWithin is how soon a changed intel file must apply: fluxguard's
// housekeeping rereads the files every 10 seconds; the rest is room for a
// slow machine.
const reloadWithin = 15 * time.Second

// TestIntel runs the real binary with intel_domains and intel_addrs: a
// benign-looking name on the domain list is blocked on its first query,
// an allowed one on it is not; an address list holding a flux name's
// addresses flags it with known_bad_addr; and changing the files changes
// the verdicts within the reload interval.
func TestIntel(t *testing.T) {
	sim := startSim(t)
	dir := t.TempDir()
	domains, addrs := filepath.Join(dir, "domains.txt"), filepath.Join(dir, "addrs.txt")
	write := func(path, content string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(domains, "# a feed\nstable.example\nalias.example\n")
	write(addrs, "# nothing yet\n")
	addr, reportAddr := freeAddr(t), freeAddr(t)
	core := startCoreDNS(t, fmt.Sprintf(`
%s {
    bind 127.0.0.1
    metadata
    log . "{type} {name} {rcode} fluxguard={/fluxguard/level} reasons={/fluxguard/reasons}"
    fluxguard {
        action block
        allow alias.example
        intel_domains %s
        intel_addrs %s
        report %s
    }
    forward . %s
}
`, zoneAt(addr), domains, addrs, reportAddr, sim.Addr()))

	t.Run("a listed name is blocked on its first query", func(t *testing.T) {
		r := query(t, "udp", addr, "www.stable.example.", dns.TypeA, true)
		if !blockedAnswer(r) || r.Rcode != dns.RcodeNameError {
			t.Fatalf("first query not blocked:\n%s", r)
		}
		checkEDE(t, r, true, "fluxguard: flagged; intel")
		core.waitLog(t, "A www.stable.example. NXDOMAIN fluxguard=flagged reasons=intel")
	})

	t.Run("an allowed name on the list is not blocked", func(t *testing.T) {
		for range 3 {
			if r := query(t, "udp", addr, "www.alias.example.", dns.TypeA, true); r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
				t.Fatalf("allowed name touched:\n%s", r)
			}
		}
		core.waitLog(t, "A www.alias.example. NOERROR fluxguard=allowed reasons=-")
	})

	t.Run("listed addresses flag a flux name with known_bad_addr", func(t *testing.T) {
		// The list is the flux name's pool, as fluxsim answers it directly.
		var pool []string
		for range 40 {
			for _, rr := range query(t, "udp", sim.Addr(), "login.fluxy.top.", dns.TypeA, false).Answer {
				if a, ok := rr.(*dns.A); ok && !slices.Contains(pool, a.A.String()) {
					pool = append(pool, a.A.String())
				}
			}
		}
		write(addrs, "# the flux pool\n"+strings.Join(pool, "\n")+"\n")
		waitFor(t, reloadWithin, "the address list to be reloaded", func() bool {
			return strings.Contains(core.String(), "intel file "+addrs+" reloaded: "+fmt.Sprint(len(pool))+" addresses")
		})
		// Its first answer through fluxguard, 4 addresses, is short of
		// the behavioural evidence (min_ips 5): the list flags it.
		if r := query(t, "udp", addr, "login.fluxy.top.", dns.TypeA, true); !blockedAnswer(r) {
			t.Fatalf("first query not blocked:\n%s", r)
		}
		core.waitLog(t, "A login.fluxy.top. NXDOMAIN fluxguard=flagged reasons=known_bad_addr")
		var in struct {
			Name    string   `json:"name"`
			Reasons []string `json:"reasons"`
		}
		for line := range strings.Lines(httpGet(t, "http://"+reportAddr+"/indicators")) {
			if err := json.Unmarshal([]byte(line), &in); err != nil {
				t.Fatalf("indicator %q: %v", line, err)
			}
			if in.Name == "login.fluxy.top" {
				break
			}
		}
		if in.Name != "login.fluxy.top" || !slices.Contains(in.Reasons, "known_bad_addr") {
			t.Fatalf("indicator %+v: want login.fluxy.top with known_bad_addr", in)
		}
	})

	t.Run("a changed domain list applies within the reload interval", func(t *testing.T) {
		write(domains, "kwik.tk\nalias.example\n")
		start := time.Now()
		waitFor(t, reloadWithin, "stable.example to leave the list", func() bool {
			r := query(t, "udp", addr, "www.stable.example.", dns.TypeA, true)
			return r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0
		})
		if r := query(t, "udp", addr, "cdn.kwik.tk.", dns.TypeA, true); r.Rcode != dns.RcodeNameError {
			t.Fatalf("newly listed name not blocked on its first query:\n%s", r)
		}
		core.waitLog(t, "A cdn.kwik.tk. NXDOMAIN fluxguard=flagged reasons=intel")
		t.Logf("the changed list applied after %v", time.Since(start).Round(100*time.Millisecond))
	})
}
