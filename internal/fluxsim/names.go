package fluxsim

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"

	"github.com/miekg/dns"
)

// Kind of behaviour a simulated name has.
type Kind int

const (
	Static     Kind = iota // fixed IP set, same order each time
	RoundRobin             // fixed IP set, rotated order each query
	Flux                   // PerAnswer IPs per query, walking a deterministic pool of Pool public IPs
	CNAME                  // CNAME to Target, plus the target's records when the target is served too
	Failover               // IPs in groups of PerAnswer: one group until SwitchAfter answers, then the next, staying on the last
)

// Name describes one simulated name and how it answers.
type Name struct {
	Name      string   // FQDN or bare name; normalized to lower-case FQDN
	Kind      Kind     // behaviour
	IPs       []string // Static / RoundRobin / Failover addresses (v4 and/or v6); Flux: an explicit pool instead of a generated one
	Pool      int      // Flux: pool size (default 50)
	PerAnswer int      // Flux: IPs per answer (default 4, 1 with explicit IPs); Failover: IPs per group (default 1)
	TTL       uint32   // default 300, 30 for Flux
	IPv6      bool     // Flux: also answer AAAA from a public-looking IPv6 pool
	Target    string   // CNAME target
	Wildcard  bool     // also answer for any subdomain of Name
	NSPool    int      // >0: double flux, NS records rotate over NSPool names ns<k>.<parent>

	// Prefixes (Flux) > 0 draws the generated pool from only that many /16s
	// (IPv6: /48s), spread evenly over them, like one provider's ranges (a
	// CDN); 0 spreads it over many /16s, like a botnet's residential hosts.
	Prefixes int
	// Provider (Flux with Prefixes) names whose prefixes the pool uses: names
	// with the same Provider share their /16s (the first Prefixes of the
	// provider's). Default: the name itself.
	Provider string
	// SwitchAfter (Failover) is how many answers each group serves before
	// the next takes over (default 10).
	SwitchAfter int
	// Operators (Flux) draws the generated pool from the real address
	// ranges of these network operators (internal/owner's ids: "amazon",
	// "hetzner", ...), spread evenly over them: a cloud's, a CDN's or a
	// hosting provider's addresses. With Prefixes, only that many of each
	// operator's ranges are used.
	Operators []string
	// PoolOf (Flux) seeds the generated pool from this string rather than
	// the name, so that names with the same PoolOf share a botnet's
	// addresses; each name starts its walk at its own place in the pool.
	PoolOf string
}

const (
	defaultPool        = 50
	defaultPerAnswer   = 4
	defaultSwitchAfter = 10
	maxPool            = 100000    // upper bound for Pool and NSPool
	hostsPer16         = 256 * 254 // addresses prefixPool4 can draw from one /16
	nsPerResp          = 2         // NS records per double-flux response
)

// entry is a validated Name with its precomputed address pools and rotation counters.
type entry struct {
	Name
	v4, v6 []net.IP
	parent string   // registered parent, e.g. kwik.tk. for cdn.kwik.tk.
	ns     []string // double flux name servers
	glue   []net.IP // double flux glue pool
	ctr    atomic.Uint64
	nsCtr  atomic.Uint64
}

// fqdn lower-cases and fully qualifies s.
func fqdn(s string) string { return dns.Fqdn(strings.ToLower(strings.TrimSpace(s))) }

// registeredParent approximates the registered domain of name as its last two labels.
func registeredParent(name string) string {
	labels := dns.SplitDomainName(name)
	if len(labels) <= 2 {
		return name
	}
	return dns.Fqdn(strings.Join(labels[len(labels)-2:], "."))
}

// newEntry validates n and builds its entry.
func newEntry(n Name) (*entry, error) {
	n.Name = fqdn(n.Name)
	if n.Name == "." {
		return nil, errors.New("fluxsim: empty name")
	}
	if _, ok := dns.IsDomainName(n.Name); !ok {
		return nil, fmt.Errorf("fluxsim: invalid name %q", n.Name)
	}
	if n.NSPool < 0 || n.NSPool > maxPool {
		return nil, fmt.Errorf("fluxsim: %s: bad NSPool %d", n.Name, n.NSPool)
	}
	if n.Prefixes < 0 || n.SwitchAfter < 0 {
		return nil, fmt.Errorf("fluxsim: %s: negative Prefixes or SwitchAfter", n.Name)
	}
	if (n.Prefixes > 0 || n.Provider != "" || len(n.Operators) > 0 || n.PoolOf != "") && (n.Kind != Flux || len(n.IPs) > 0) {
		return nil, fmt.Errorf("fluxsim: %s: Prefixes, Provider, Operators and PoolOf apply to a generated Flux pool only", n.Name)
	}
	for _, op := range n.Operators {
		if len(operatorRanges4(op)) == 0 {
			return nil, fmt.Errorf("fluxsim: %s: no IPv4 ranges for operator %q", n.Name, op)
		}
	}
	if n.Provider != "" && n.Prefixes == 0 && len(n.Operators) == 0 {
		return nil, fmt.Errorf("fluxsim: %s: Provider without Prefixes", n.Name)
	}
	e := &entry{Name: n, parent: registeredParent(n.Name)}
	if e.TTL == 0 {
		e.TTL = 300
	}
	switch n.Kind {
	case Static, RoundRobin:
		if err := e.parseIPs(); err != nil {
			return nil, err
		}
	case Failover:
		if err := e.parseIPs(); err != nil {
			return nil, err
		}
		if e.PerAnswer == 0 {
			e.PerAnswer = 1
		}
		if e.SwitchAfter == 0 {
			e.SwitchAfter = defaultSwitchAfter
		}
		if e.PerAnswer < 1 {
			return nil, fmt.Errorf("fluxsim: %s: bad PerAnswer %d", n.Name, e.PerAnswer)
		}
	case Flux:
		if n.TTL == 0 {
			e.TTL = 30
		}
		if len(n.IPs) > 0 {
			if err := e.explicitPool(); err != nil {
				return nil, err
			}
			break
		}
		if e.Pool == 0 {
			e.Pool = defaultPool
		}
		if e.PerAnswer == 0 {
			e.PerAnswer = defaultPerAnswer
		}
		if e.PerAnswer < 1 || e.Pool < e.PerAnswer || e.Pool > maxPool {
			return nil, fmt.Errorf("fluxsim: %s: need 0 < PerAnswer (%d) <= Pool (%d) <= %d", n.Name, e.PerAnswer, e.Pool, maxPool)
		}
		if len(e.Operators) == 0 && (e.Prefixes > e.Pool || e.Prefixes > 0 && e.Pool > e.Prefixes*hostsPer16) {
			return nil, fmt.Errorf("fluxsim: %s: %d prefixes cannot hold a pool of %d", n.Name, e.Prefixes, e.Pool)
		}
		e.v4, e.v6 = e.generatedPool()
	case CNAME:
		e.Target = fqdn(n.Target)
		if e.Target == "." {
			return nil, fmt.Errorf("fluxsim: %s: CNAME without Target", n.Name)
		}
		if _, ok := dns.IsDomainName(e.Target); !ok || e.Target == n.Name {
			return nil, fmt.Errorf("fluxsim: %s: bad CNAME target %q", n.Name, n.Target)
		}
	default:
		return nil, fmt.Errorf("fluxsim: %s: unknown kind %d", n.Name, int(n.Kind))
	}
	if n.NSPool > 0 {
		for k := 1; k <= n.NSPool; k++ {
			e.ns = append(e.ns, fmt.Sprintf("ns%d.%s", k, e.parent))
		}
		e.glue = pool4("glue:"+e.parent, 2*n.NSPool)
	}
	return e, nil
}

// parseIPs parses e.IPs into e.v4 and e.v6; there must be at least one.
func (e *entry) parseIPs() error {
	if len(e.IPs) == 0 {
		return fmt.Errorf("fluxsim: %s: no IPs", e.Name.Name)
	}
	for _, s := range e.IPs {
		ip := net.ParseIP(strings.TrimSpace(s))
		if ip == nil {
			return fmt.Errorf("fluxsim: %s: bad IP %q", e.Name.Name, s)
		}
		if v4 := ip.To4(); v4 != nil {
			e.v4 = append(e.v4, v4)
		} else {
			e.v6 = append(e.v6, ip)
		}
	}
	return nil
}

// explicitPool makes e.IPs the pool of a Flux entry, walked PerAnswer
// (default 1) at a time; Pool is ignored.
func (e *entry) explicitPool() error {
	if err := e.parseIPs(); err != nil {
		return err
	}
	if e.PerAnswer == 0 {
		e.PerAnswer = 1
	}
	for _, fam := range [][]net.IP{e.v4, e.v6} {
		if len(fam) > 0 && (e.PerAnswer < 1 || e.PerAnswer > len(fam)) {
			return fmt.Errorf("fluxsim: %s: need 0 < PerAnswer (%d) <= %d addresses", e.Name.Name, e.PerAnswer, len(fam))
		}
	}
	return nil
}

// generatedPool returns the deterministic pools of a Flux entry: spread
// wide, or within Prefixes prefixes of its provider.
func (e *entry) generatedPool() (v4, v6 []net.IP) {
	if len(e.Operators) > 0 {
		return operatorPool4(e.Name.Name, e.Operators, e.Pool, e.Prefixes), nil
	}
	if e.PoolOf != "" {
		start := int(rng("start:" + e.Name.Name).IntN(e.Pool))
		v4 = rotate(pool4(e.PoolOf, e.Pool), start)
		if e.IPv6 {
			v6 = rotate(pool6(e.PoolOf, e.Pool), start)
		}
		return v4, v6
	}
	if e.Prefixes == 0 {
		v4 = pool4(e.Name.Name, e.Pool)
		if e.IPv6 {
			v6 = pool6(e.Name.Name, e.Pool)
		}
		return v4, v6
	}
	provider := e.Provider
	if provider == "" {
		provider = e.Name.Name
	}
	v4 = prefixPool4(e.Name.Name, provider, e.Pool, e.Prefixes)
	if e.IPv6 {
		v6 = prefixPool6(e.Name.Name, provider, e.Pool, e.Prefixes)
	}
	return v4, v6
}

// pick returns the addresses for one answer, rotating as the kind requires.
func (e *entry) pick(ips []net.IP) []net.IP {
	if len(ips) == 0 {
		return nil
	}
	switch e.Kind {
	case RoundRobin:
		off := (e.ctr.Add(1) - 1) % uint64(len(ips))
		return append(append([]net.IP{}, ips[off:]...), ips[:off]...)
	case Flux:
		off := (e.ctr.Add(1) - 1) * uint64(e.PerAnswer)
		out := make([]net.IP, e.PerAnswer)
		for i := range out {
			out[i] = ips[(off+uint64(i))%uint64(len(ips))]
		}
		return out
	case Failover:
		step := (e.ctr.Add(1) - 1) / uint64(e.SwitchAfter)
		last := uint64((len(ips) - 1) / e.PerAnswer)
		lo := int(min(step, last)) * e.PerAnswer
		return ips[lo:min(lo+e.PerAnswer, len(ips))]
	}
	return ips
}

// nameServers returns the rotating NS names and their current glue addresses.
func (e *entry) nameServers() ([]string, []net.IP) {
	off := e.nsCtr.Add(1) - 1
	n := min(nsPerResp, len(e.ns))
	names, glue := make([]string, n), make([]net.IP, n)
	for j := range n {
		k := (off*uint64(n) + uint64(j)) % uint64(len(e.ns))
		names[j], glue[j] = e.ns[k], e.glueFor(k, off)
	}
	return names, glue
}

// glueFor is the address of name server k at rotation step off.
func (e *entry) glueFor(k, off uint64) net.IP {
	return e.glue[(k+off)%uint64(len(e.glue))]
}
