package fluxsim

import (
	"reflect"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// hasSuffix reports whether name is s or under s (both FQDN or bare).
func hasSuffix(name, s string) bool {
	name, s = strings.TrimSuffix(name, "."), strings.TrimSuffix(s, ".")
	return name == s || strings.HasSuffix(name, "."+s)
}

func TestScenarios(t *testing.T) {
	const perClass = 20
	classes := Scenarios(perClass)
	if again := Scenarios(perClass); !reflect.DeepEqual(classes, again) {
		t.Fatal("Scenarios is not deterministic")
	}
	want := []string{"single", "double", "wildcard", "ipv6", "low-and-slow", "hosting-flux", "shared-pool",
		"unlisted-cdn", "cdn-cname", "multi-asn-saas", "fixed-rr", "multi-host", "dual-stack", "failover", "sinkhole", "internal-rr",
		"cloud-autoscale", "ntp-pool", "crypto-seeds"}
	var all []Name
	for i, c := range classes {
		if i >= len(want) || c.Name != want[i] {
			t.Fatalf("class %d is %q, want %q", i, c.Name, want[i])
		}
		if c.Flux != (i < 7) {
			t.Errorf("%s: Flux = %t", c.Name, c.Flux)
		}
		all = append(all, c.Names...)
	}
	s, err := New(all)
	if err != nil {
		t.Fatalf("New(all classes): %v", err)
	}
	var many []Name // a large suite must be generated and served too
	for _, c := range Scenarios(500) {
		many = append(many, c.Names...)
	}
	if _, err := New(many); err != nil {
		t.Fatalf("New(Scenarios(500)): %v", err)
	}

	// Each class's own shape, checked on its served names.
	checks := map[string]func(t *testing.T, n Name){
		"single": func(t *testing.T, n Name) {
			inRange(t, n, n.Kind == Flux && n.Prefixes == 0, n.Pool, 30, 200, n.PerAnswer, 1, 6, n.TTL, 30, 300)
		},
		"double": func(t *testing.T, n Name) {
			inRange(t, n, n.Kind == Flux && n.NSPool >= 4 && n.Prefixes == 0, n.Pool, 30, 200, n.PerAnswer, 1, 6, n.TTL, 30, 300)
		},
		"wildcard": func(t *testing.T, n Name) {
			inRange(t, n, n.Kind == Flux && n.Wildcard, n.Pool, 30, 200, n.PerAnswer, 1, 6, n.TTL, 30, 300)
		},
		"ipv6": func(t *testing.T, n Name) {
			inRange(t, n, n.Kind == Flux && n.IPv6 && n.Prefixes == 0, n.Pool, 30, 200, n.PerAnswer, 1, 6, n.TTL, 30, 300)
		},
		"low-and-slow": func(t *testing.T, n Name) {
			inRange(t, n, n.Kind == Flux && n.Prefixes == 0, n.Pool, 20, 100, n.PerAnswer, 1, 1, n.TTL, 5, 10)
		},
		"hosting-flux": func(t *testing.T, n Name) {
			inRange(t, n, n.Kind == Flux && len(n.Operators) >= 3 && len(n.Operators) <= 6, n.Pool, 40, 200, n.PerAnswer, 1, 6, n.TTL, 30, 180)
		},
		"shared-pool": func(t *testing.T, n Name) {
			inRange(t, n, n.Kind == Flux && n.PoolOf != "", n.Pool, 60, 200, n.PerAnswer, 1, 6, n.TTL, 30, 300)
		},
		"unlisted-cdn": func(t *testing.T, n Name) {
			inRange(t, n, n.Kind == Flux && len(n.Operators) == 1 && n.Prefixes <= 2, n.Pool, 20, 60, n.PerAnswer, 4, 8, n.TTL, 20, 60)
		},
		"cdn-cname": func(t *testing.T, n Name) {
			if n.Kind == CNAME {
				return
			}
			inRange(t, n, n.Kind == Flux && len(n.Operators) == 1 && n.Prefixes <= 2, n.Pool, 20, 60, n.PerAnswer, 4, 8, n.TTL, 20, 60)
		},
		"multi-asn-saas": func(t *testing.T, n Name) {
			if n.Kind == RoundRobin {
				inRange(t, n, true, len(n.IPs), 8, 24, 1, 1, 1, n.TTL, 60, 300)
				return
			}
			inRange(t, n, n.Kind == Flux && len(n.Operators) >= 2 && len(n.Operators) <= 3, n.Pool, 8, 24, n.PerAnswer, 2, 4, n.TTL, 60, 300)
		},
		"fixed-rr": func(t *testing.T, n Name) {
			inRange(t, n, n.Kind == RoundRobin, len(n.IPs), 2, 8, 1, 1, 1, n.TTL, 60, 3600)
		},
		"multi-host": func(t *testing.T, n Name) {
			inRange(t, n, n.Kind == Static, len(n.IPs), 1, 1, 1, 1, 1, n.TTL, 60, 300)
		},
		"dual-stack": func(t *testing.T, n Name) {
			inRange(t, n, n.Kind == Static, len(n.IPs), 4, 8, 1, 1, 1, n.TTL, 60, 300)
		},
		"failover": func(t *testing.T, n Name) {
			inRange(t, n, n.Kind == Failover, len(n.IPs), 2, 6, n.PerAnswer, 1, 3, n.TTL, 30, 120)
		},
		"sinkhole": func(t *testing.T, n Name) {
			if n.Kind == Static {
				inRange(t, n, true, len(n.IPs), 1, 2, 1, 1, 1, n.TTL, 60, 300)
				return
			}
			inRange(t, n, n.Kind == Flux, len(n.IPs), 2, 6, n.PerAnswer, 1, 2, n.TTL, 60, 300)
		},
		"internal-rr": func(t *testing.T, n Name) {
			inRange(t, n, n.Kind == RoundRobin, len(n.IPs), 2, 8, 1, 1, 1, n.TTL, 60, 1200)
		},
		"cloud-autoscale": func(t *testing.T, n Name) {
			inRange(t, n, n.Kind == Flux && len(n.Operators) == 1, n.Pool, 20, 200, n.PerAnswer, 1, 8, n.TTL, 30, 300)
		},
		"ntp-pool": func(t *testing.T, n Name) {
			inRange(t, n, n.Kind == Flux && hasSuffix(n.Name, "pool.ntp.org") && n.IPv6, n.Pool, 200, 800, n.PerAnswer, 4, 4, n.TTL, 130, 130)
		},
		"crypto-seeds": func(t *testing.T, n Name) {
			inRange(t, n, n.Kind == Flux, n.Pool, 300, 2000, n.PerAnswer, 20, 25, n.TTL, 60, 60)
		},
	}
	// The seed rule's CDN suffixes, internal TLDs and Microsoft suffixes
	// (docs/seed-rule.md): no scenario name may hide under them.
	excluded := strings.Fields(`akamaiedge.net akamaitechnologies.com cloudfront.net fastly.net cloudflare.net
		edgesuite.net azureedge.net trafficmanager.net amazonaws.com googleusercontent.com gstatic.com
		local internal corp lan home arpa microsoft.com windows.com office.com azure.com live.com`)
	owner := map[string]string{} // registered domain of a queried domain -> class
	for _, c := range classes {
		t.Run(c.Name, func(t *testing.T) {
			wantQueries := perClass
			if c.Name == "wildcard" {
				wantQueries *= wildcardQueries
			}
			if len(c.Query) != wantQueries && !(c.Name == "ntp-pool" || c.Name == "crypto-seeds") || len(c.Query) > wantQueries {
				t.Errorf("%d queried names, want %d", len(c.Query), wantQueries)
			}
			for _, n := range c.Names {
				checks[c.Name](t, n)
				for _, x := range excluded {
					if hasSuffix(n.Name, x) {
						t.Errorf("%s is under the seed rule's excluded %s", n.Name, x)
					}
				}
			}
			qtypes := c.QTypes
			if len(qtypes) == 0 {
				qtypes = []uint16{dns.TypeA}
			}
			seen := map[string]bool{}
			for _, q := range c.Query {
				if q != strings.ToLower(dns.Fqdn(q)) || seen[q] {
					t.Errorf("query %q is not a new lower-case FQDN", q)
				}
				seen[q] = true
				d := strings.TrimSuffix(registeredParent(q), ".")
				if o, ok := owner[d]; ok && o != c.Name+"/"+d {
					t.Errorf("%s: registered domain %s also used by %s", q, d, o)
				}
				owner[d] = c.Name + "/" + d
				for _, qt := range qtypes {
					if r := ask(t, s, q, qt); r.Rcode != dns.RcodeSuccess || len(addrsOf(r)) == 0 {
						t.Errorf("%s %s: %s with %d addresses", q, dns.TypeToString[qt], dns.RcodeToString[r.Rcode], len(addrsOf(r)))
					}
				}
			}
		})
	}
}

// inRange checks a served name's kind and sizes: size (pool or IP count),
// per answer and TTL within their ranges.
func inRange(t *testing.T, n Name, kindOK bool, size, sLo, sHi, per, pLo, pHi int, ttl, tLo, tHi uint32) {
	t.Helper()
	if !kindOK || size < sLo || size > sHi || per < pLo || per > pHi || ttl < tLo || ttl > tHi {
		t.Errorf("%s: kind %d, size %d (%d..%d), per answer %d (%d..%d), TTL %d (%d..%d)",
			n.Name, n.Kind, size, sLo, sHi, per, pLo, pHi, ttl, tLo, tHi)
	}
}
