package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/fluxguard/fluxguard/internal/fluxsim"
	"github.com/fluxguard/fluxguard/internal/testenv"
)

// trafficRounds is how many times each domain is asked, once a round: its
// own name, or for a wildcard domain the next of its random subdomains.
const trafficRounds = 20

// TestRealTraffic serves the scenario suite's classes (fluxsim.Scenarios)
// from fluxsim on loopback and asks the real binary, with the default
// profile and action block, for every domain of every class, round after
// round, over UDP and TCP in turn, as a client would: every flux class
// must be blocked at 98% or more, every benign class at 1% or less, and
// the public pools (the NTP Pool, crypto-currency DNS seeds) never. It
// runs with the embedded table of operators' networks alone, and with
// asn_db over the full ip-location-db table (FLUXGUARD_ASN_DATA).
//
// No cache is in the chain, so that every answer comes from upstream and
// rotates as it would over the TTLs of a longer run.
func TestRealTraffic(t *testing.T) {
	classes := fluxsim.Scenarios(20)
	var served []fluxsim.Name
	for _, c := range classes {
		served = append(served, c.Names...)
	}
	sim, err := fluxsim.New(served)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })

	for _, tc := range []struct {
		name  string
		asnDB bool
	}{
		{"embedded table", false},
		{"asn_db", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			options := ""
			if tc.asnDB {
				options = "asn_db " + testenv.ASNData(t)
			}
			addr := freeAddr(t)
			startCoreDNS(t, fmt.Sprintf(`
%s {
    bind 127.0.0.1
    fluxguard {
        action block
        block_rcode REFUSED
        %s
    }
    forward . %s
}
`, zoneAt(addr), options, sim.Addr()))
			for _, c := range classes {
				blocked, domains := askClass(t, addr, c)
				rate := 100 * float64(len(blocked)) / float64(domains)
				t.Logf("%s: %d of %d blocked", c.Name, len(blocked), domains)
				switch {
				case c.Flux && rate < 98:
					t.Errorf("%s: %.1f%% of %d flux domains blocked, want at least 98%%", c.Name, rate, domains)
				case !c.Flux && rate > 1:
					t.Errorf("%s: %.1f%% of %d benign domains blocked, want at most 1%%: %s", c.Name, rate, domains, strings.Join(blocked, " "))
				case (c.Name == "ntp-pool" || c.Name == "crypto-seeds") && len(blocked) > 0:
					t.Errorf("%s: public pool names blocked: %s", c.Name, strings.Join(blocked, " "))
				}
			}
		})
	}
}

// askClass asks addr for every domain of class c, trafficRounds times, and
// returns the domains blocked (REFUSED) on the flux ones, or the names
// blocked on the benign ones, with the number of domains.
func askClass(t *testing.T, addr string, c fluxsim.Class) (blocked []string, domains int) {
	t.Helper()
	qtypes := c.QTypes
	if len(qtypes) == 0 {
		qtypes = []uint16{dns.TypeA}
	}
	// A wildcard domain's queries are its random subdomains, in turn.
	perDomain := len(c.Query) / max(len(c.Names), 1)
	if perDomain < 1 {
		perDomain = 1
	}
	domains = len(c.Query) / perDomain
	for d := range domains {
		queries := c.Query[d*perDomain : (d+1)*perDomain]
		for round := range trafficRounds {
			netw := []string{"udp", "tcp"}[round%2]
			name := queries[round%len(queries)]
			r := query(t, netw, addr, name, qtypes[round%len(qtypes)], true)
			if r.Rcode == dns.RcodeRefused {
				blocked = append(blocked, queries[0])
				break
			}
			if r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
				t.Fatalf("%s over %s: %s", name, netw, dns.RcodeToString[r.Rcode])
			}
		}
	}
	return blocked, domains
}
