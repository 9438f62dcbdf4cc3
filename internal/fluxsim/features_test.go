package fluxsim

import (
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// memWriter is an in-process dns.ResponseWriter: Server.ServeDNS answers
// without a listener, as the scenario suite drives it.
type memWriter struct{ msg *dns.Msg }

func (w *memWriter) LocalAddr() net.Addr { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53} }
func (w *memWriter) RemoteAddr() net.Addr {
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
}
func (w *memWriter) WriteMsg(m *dns.Msg) error { w.msg = m; return nil }
func (w *memWriter) Write(b []byte) (int, error) {
	return len(b), nil
}
func (w *memWriter) Close() error        { return nil }
func (w *memWriter) TsigStatus() error   { return nil }
func (w *memWriter) TsigTimersOnly(bool) {}
func (w *memWriter) Hijack()             {}

// ask queries s in-process (with EDNS, so that big answers are not
// truncated) and returns the reply.
func ask(t *testing.T, s *Server, name string, qtype uint16) *dns.Msg {
	t.Helper()
	r := new(dns.Msg).SetQuestion(dns.Fqdn(name), qtype)
	r.SetEdns0(4096, false)
	w := &memWriter{}
	s.ServeDNS(w, r)
	if w.msg == nil {
		t.Fatalf("%s: no reply", name)
	}
	return w.msg
}

// addrsOf returns the A/AAAA addresses of m's answer.
func addrsOf(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			out = append(out, rr.A.String())
		case *dns.AAAA:
			out = append(out, rr.AAAA.String())
		}
	}
	return out
}

// prefixOf returns ip's /16 (IPv4) or /48 (IPv6) as a string.
func prefixOf(s string) string {
	ip := net.ParseIP(s)
	if v4 := ip.To4(); v4 != nil {
		return v4.Mask(net.CIDRMask(16, 32)).String()
	}
	return ip.Mask(net.CIDRMask(48, 128)).String()
}

func mustEntry(t *testing.T, n Name) *entry {
	t.Helper()
	e, err := newEntry(n)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestPrefixes(t *testing.T) {
	tests := []struct {
		name              string
		in                Name
		minPrefixes, maxP int // distinct prefixes (/16, /48 for v6) of the pool
	}{
		{"wide spread", Name{Name: "wide.top", Kind: Flux, Pool: 60}, 55, 60},
		{"one /16", Name{Name: "img.brand.com", Kind: Flux, Pool: 60, Prefixes: 1}, 1, 1},
		{"two /16s", Name{Name: "img.brand2.com", Kind: Flux, Pool: 40, Prefixes: 2}, 2, 2},
		{"six /16s, small pool", Name{Name: "api.saas.com", Kind: Flux, Pool: 8, PerAnswer: 2, Prefixes: 6}, 6, 6},
		{"pool = prefixes", Name{Name: "x.saas.com", Kind: Flux, Pool: 3, PerAnswer: 1, Prefixes: 3}, 3, 3},
		{"ipv6 two /48s", Name{Name: "v6.brand.com", Kind: Flux, Pool: 50, IPv6: true, Prefixes: 2}, 2, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := mustEntry(t, tc.in)
			pools := [][]net.IP{e.v4}
			if tc.in.IPv6 {
				pools = append(pools, e.v6)
			}
			for _, pool := range pools {
				var all, pfx []string
				for _, ip := range pool {
					if !public(ip.String()) {
						t.Errorf("%s is not public", ip)
					}
					all, pfx = append(all, ip.String()), append(pfx, prefixOf(ip.String()))
				}
				if distinct(all) != tc.in.Pool {
					t.Errorf("%d distinct addresses, want %d", distinct(all), tc.in.Pool)
				}
				if n := distinct(pfx); n < tc.minPrefixes || n > tc.maxP {
					t.Errorf("%d distinct prefixes, want %d..%d", n, tc.minPrefixes, tc.maxP)
				}
			}
			again := mustEntry(t, tc.in)
			if !slices.EqualFunc(e.v4, again.v4, net.IP.Equal) || !slices.EqualFunc(e.v6, again.v6, net.IP.Equal) {
				t.Error("pool not deterministic")
			}
		})
	}
}

func TestProvider(t *testing.T) {
	prefixes := func(n Name) []string {
		var out []string
		for _, ip := range mustEntry(t, n).v4 {
			out = append(out, prefixOf(ip.String()))
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	a := prefixes(Name{Name: "a.edge.net", Kind: Flux, Pool: 30, Prefixes: 2, Provider: "edge.net"})
	b := prefixes(Name{Name: "b.edge.net", Kind: Flux, Pool: 40, Prefixes: 2, Provider: "edge.net"})
	c := prefixes(Name{Name: "c.edge.net", Kind: Flux, Pool: 20, Prefixes: 1, Provider: "edge.net"})
	other := prefixes(Name{Name: "a.other.net", Kind: Flux, Pool: 30, Prefixes: 2, Provider: "other.net"})
	if len(a) != 2 || !slices.Equal(a, b) {
		t.Errorf("same provider, different /16s: %v vs %v", a, b)
	}
	if len(c) != 1 || !slices.Contains(a, c[0]) {
		t.Errorf("one prefix %v is not one of the provider's %v", c, a)
	}
	if slices.Equal(a, other) {
		t.Errorf("different providers share /16s %v", a)
	}
	x := mustEntry(t, Name{Name: "a.edge.net", Kind: Flux, Pool: 30, Prefixes: 2, Provider: "edge.net"})
	y := mustEntry(t, Name{Name: "b.edge.net", Kind: Flux, Pool: 30, Prefixes: 2, Provider: "edge.net"})
	if slices.EqualFunc(x.v4, y.v4, net.IP.Equal) {
		t.Error("names of one provider share their whole pool")
	}
}

func TestFailoverAndExplicitPool(t *testing.T) {
	tests := []struct {
		name string
		in   Name
		want []string // the answers in order, addresses joined by spaces
	}{
		{"two IPs, switch once",
			Name{Name: "vpn.a.com", Kind: Failover, IPs: []string{"8.8.8.8", "9.9.9.9"}, SwitchAfter: 3},
			[]string{"8.8.8.8", "8.8.8.8", "8.8.8.8", "9.9.9.9", "9.9.9.9", "9.9.9.9", "9.9.9.9"}},
		{"groups of two",
			Name{Name: "vpn.b.com", Kind: Failover, IPs: []string{"8.8.8.8", "8.8.4.4", "9.9.9.9", "9.9.9.10"}, PerAnswer: 2, SwitchAfter: 2},
			[]string{"8.8.8.8 8.8.4.4", "8.8.8.8 8.8.4.4", "9.9.9.9 9.9.9.10", "9.9.9.9 9.9.9.10", "9.9.9.9 9.9.9.10"}},
		{"short last group",
			Name{Name: "vpn.c.com", Kind: Failover, IPs: []string{"8.8.8.8", "8.8.4.4", "9.9.9.9"}, PerAnswer: 2, SwitchAfter: 1},
			[]string{"8.8.8.8 8.8.4.4", "9.9.9.9", "9.9.9.9"}},
		{"default switch after 10",
			Name{Name: "vpn.d.com", Kind: Failover, IPs: []string{"8.8.8.8", "9.9.9.9"}},
			append(slices.Repeat([]string{"8.8.8.8"}, 10), "9.9.9.9")},
		{"explicit flux pool",
			Name{Name: "sink.e.com", Kind: Flux, IPs: []string{"8.8.8.8", "8.8.4.4", "9.9.9.9"}, PerAnswer: 2},
			[]string{"8.8.8.8 8.8.4.4", "9.9.9.9 8.8.8.8", "8.8.4.4 9.9.9.9", "8.8.8.8 8.8.4.4"}},
		{"explicit flux pool, one per answer",
			Name{Name: "sink.f.com", Kind: Flux, IPs: []string{"8.8.8.8", "9.9.9.9"}, TTL: 60},
			[]string{"8.8.8.8", "9.9.9.9", "8.8.8.8"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New([]Name{tc.in})
			if err != nil {
				t.Fatal(err)
			}
			for i, want := range tc.want {
				if got := strings.Join(addrsOf(ask(t, s, tc.in.Name, dns.TypeA)), " "); got != want {
					t.Errorf("answer %d: %q, want %q", i, got, want)
				}
			}
			if r := ask(t, s, tc.in.Name, dns.TypeAAAA); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 {
				t.Errorf("AAAA: %s with %d answers, want NODATA", dns.RcodeToString[r.Rcode], len(r.Answer))
			}
		})
	}
}
