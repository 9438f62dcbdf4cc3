package fluxsim

import (
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func testNames() []Name {
	return append(Demo(),
		Name{Name: "wild.top", Kind: Flux, Pool: 20, PerAnswer: 2, Wildcard: true},
		Name{Name: "big.flux.top.", Kind: Flux, Pool: 200, PerAnswer: 200},
		Name{Name: "dual.example.", Kind: Static, IPs: []string{"8.8.4.4", "2a00:1450::1"}},
	)
}

func startServer(t *testing.T, names []Name) *Server {
	t.Helper()
	s, err := New(names)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func query(t *testing.T, proto, addr, name string, qtype uint16, edns uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	if edns > 0 {
		m.SetEdns0(edns, false)
	}
	c := &dns.Client{Net: proto, Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s %s %s: %v", proto, name, dns.TypeToString[qtype], err)
	}
	if !r.Authoritative {
		t.Errorf("%s %s: AA bit not set", proto, name)
	}
	return r
}

// ips returns the addresses of type-A/AAAA answers owned by owner (case-sensitive).
func ips(t *testing.T, rrs []dns.RR, owner string) []string {
	t.Helper()
	var out []string
	for _, rr := range rrs {
		switch rr := rr.(type) {
		case *dns.A:
			out = append(out, rr.A.String())
		case *dns.AAAA:
			out = append(out, rr.AAAA.String())
		default:
			continue
		}
		if rr.Header().Name != owner {
			t.Errorf("owner %q, want %q", rr.Header().Name, owner)
		}
	}
	return out
}

// public is an independent check against the ranges fluxsim must avoid.
func public(s string) bool {
	a := netip.MustParseAddr(s)
	if !a.IsGlobalUnicast() || a.IsPrivate() {
		return false
	}
	for _, p := range []string{"0.0.0.0/8", "100.64.0.0/10", "169.254.0.0/16", "192.0.2.0/24",
		"198.51.100.0/24", "203.0.113.0/24", "198.18.0.0/15", "240.0.0.0/4", "2001:db8::/32"} {
		if netip.MustParsePrefix(p).Contains(a) {
			return false
		}
	}
	return true
}

func distinct(xs []string) int {
	s := slices.Clone(xs)
	slices.Sort(s)
	return len(slices.Compact(s))
}

func TestAnswers(t *testing.T) {
	s := startServer(t, testNames())
	tests := []struct {
		name  string
		check func(t *testing.T, proto string)
	}{
		{"flux", func(t *testing.T, proto string) {
			var all []string
			for range 10 {
				r := query(t, proto, s.Addr(), "login.fluxy.top.", dns.TypeA, 0)
				got := ips(t, r.Answer, "login.fluxy.top.")
				if len(got) != 4 || distinct(got) != 4 {
					t.Fatalf("answer %v, want 4 distinct IPs", got)
				}
				if ttl := r.Answer[0].Header().Ttl; ttl != 5 {
					t.Errorf("TTL %d, want 5", ttl)
				}
				all = append(all, got...)
			}
			for _, ip := range all {
				if !public(ip) {
					t.Errorf("%s is not public", ip)
				}
			}
			if n := distinct(all); n < 20 {
				t.Errorf("%d distinct IPs over 10 queries, want >= 20", n)
			}
		}},
		{"flux v6", func(t *testing.T, proto string) {
			r := query(t, proto, s.Addr(), "login.fluxy.top.", dns.TypeAAAA, 0)
			got := ips(t, r.Answer, "login.fluxy.top.")
			if len(got) != 4 || distinct(got) != 4 {
				t.Fatalf("answer %v, want 4 distinct IPv6", got)
			}
			for _, ip := range got {
				if !strings.HasPrefix(ip, "2a0") || !public(ip) {
					t.Errorf("%s is not a public 2a0X: address", ip)
				}
			}
		}},
		{"static", func(t *testing.T, proto string) {
			first := ips(t, query(t, proto, s.Addr(), "www.stable.example.", dns.TypeA, 0).Answer, "www.stable.example.")
			for range 3 {
				got := ips(t, query(t, proto, s.Addr(), "www.stable.example.", dns.TypeA, 0).Answer, "www.stable.example.")
				if !slices.Equal(got, first) || len(got) != 1 {
					t.Fatalf("got %v, want stable %v", got, first)
				}
			}
		}},
		{"static dual stack", func(t *testing.T, proto string) {
			if got := ips(t, query(t, proto, s.Addr(), "dual.example.", dns.TypeA, 0).Answer, "dual.example."); !slices.Equal(got, []string{"8.8.4.4"}) {
				t.Errorf("A %v", got)
			}
			if got := ips(t, query(t, proto, s.Addr(), "dual.example.", dns.TypeAAAA, 0).Answer, "dual.example."); !slices.Equal(got, []string{"2a00:1450::1"}) {
				t.Errorf("AAAA %v", got)
			}
		}},
		{"round robin", func(t *testing.T, proto string) {
			a := ips(t, query(t, proto, s.Addr(), "www.rr-shop.example.", dns.TypeA, 0).Answer, "www.rr-shop.example.")
			b := ips(t, query(t, proto, s.Addr(), "www.rr-shop.example.", dns.TypeA, 0).Answer, "www.rr-shop.example.")
			if len(a) != 4 || slices.Equal(a, b) {
				t.Errorf("order did not rotate: %v then %v", a, b)
			}
			slices.Sort(a)
			slices.Sort(b)
			if !slices.Equal(a, b) {
				t.Errorf("set changed: %v vs %v", a, b)
			}
		}},
		{"cname", func(t *testing.T, proto string) {
			r := query(t, proto, s.Addr(), "www.alias.example.", dns.TypeA, 0)
			c, ok := r.Answer[0].(*dns.CNAME)
			if !ok || c.Hdr.Name != "www.alias.example." || c.Target != "img.shop.cloudfront.net." {
				t.Fatalf("first answer %v, want CNAME to img.shop.cloudfront.net.", r.Answer[0])
			}
			if got := ips(t, r.Answer[1:], "img.shop.cloudfront.net."); len(got) != 8 {
				t.Errorf("target records %v, want 8", got)
			}
		}},
		{"nxdomain", func(t *testing.T, proto string) {
			r := query(t, proto, s.Addr(), "nope.example.", dns.TypeA, 0)
			if r.Rcode != dns.RcodeNameError || len(r.Answer) != 0 {
				t.Fatalf("rcode %s answers %d, want NXDOMAIN", dns.RcodeToString[r.Rcode], len(r.Answer))
			}
			if len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != dns.TypeSOA {
				t.Errorf("authority %v, want SOA", r.Ns)
			}
		}},
		{"nodata", func(t *testing.T, proto string) {
			for _, n := range []string{"www.stable.example.", "cdn.kwik.tk.", "fluxy.top."} {
				r := query(t, proto, s.Addr(), n, dns.TypeAAAA, 0)
				if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 {
					t.Errorf("%s: rcode %s answers %d, want NODATA", n, dns.RcodeToString[r.Rcode], len(r.Answer))
				}
				if len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != dns.TypeSOA {
					t.Errorf("%s: authority %v, want SOA", n, r.Ns)
				}
			}
		}},
		{"case insensitive", func(t *testing.T, proto string) {
			r := query(t, proto, s.Addr(), "LOGIN.FluXy.TOP.", dns.TypeA, 0)
			if got := ips(t, r.Answer, "LOGIN.FluXy.TOP."); len(got) != 4 {
				t.Errorf("got %v", got)
			}
		}},
		{"wildcard", func(t *testing.T, proto string) {
			r := query(t, proto, s.Addr(), "a.b.wild.top.", dns.TypeA, 0)
			if got := ips(t, r.Answer, "a.b.wild.top."); len(got) != 2 {
				t.Errorf("got %v, want 2 IPs", got)
			}
		}},
		{"double flux", func(t *testing.T, proto string) {
			seen := map[string]bool{}
			for range 6 {
				r := query(t, proto, s.Addr(), "cdn.kwik.tk.", dns.TypeA, 0)
				if len(ips(t, r.Answer, "cdn.kwik.tk.")) != 3 || len(r.Ns) == 0 || len(r.Extra) != len(r.Ns) {
					t.Fatalf("answer %d, authority %d, extra %d", len(r.Answer), len(r.Ns), len(r.Extra))
				}
				for _, rr := range r.Ns {
					ns, ok := rr.(*dns.NS)
					if !ok || ns.Hdr.Name != "kwik.tk." || !strings.HasPrefix(ns.Ns, "ns") || !strings.HasSuffix(ns.Ns, ".kwik.tk.") {
						t.Fatalf("authority %v", rr)
					}
					seen[ns.Ns] = true
				}
				for _, rr := range r.Extra {
					if a, ok := rr.(*dns.A); !ok || !public(a.A.String()) {
						t.Errorf("glue %v", rr)
					}
				}
			}
			if len(seen) < 4 {
				t.Errorf("NS names did not rotate: %v", seen)
			}
			r := query(t, proto, s.Addr(), "cdn.kwik.tk.", dns.TypeNS, 0)
			if len(r.Answer) == 0 || r.Answer[0].Header().Rrtype != dns.TypeNS {
				t.Errorf("NS query answer %v", r.Answer)
			}
			ns := r.Answer[0].(*dns.NS).Ns
			if got := ips(t, query(t, proto, s.Addr(), ns, dns.TypeA, 0).Answer, ns); len(got) != 1 {
				t.Errorf("name server %s A %v", ns, got)
			}
		}},
		{"edns echo", func(t *testing.T, proto string) {
			r := query(t, proto, s.Addr(), "login.fluxy.top.", dns.TypeA, 1232)
			if o := r.IsEdns0(); o == nil || o.UDPSize() != 1232 {
				t.Errorf("OPT %v, want UDP size 1232", o)
			}
			if r := query(t, proto, s.Addr(), "login.fluxy.top.", dns.TypeA, 0); r.IsEdns0() != nil {
				t.Error("OPT in reply to a query without EDNS")
			}
		}},
		{"truncation", func(t *testing.T, proto string) {
			for _, size := range []uint16{0, 1232} {
				r := query(t, proto, s.Addr(), "big.flux.top.", dns.TypeA, size)
				n := len(ips(t, r.Answer, "big.flux.top."))
				if proto == "udp" && (!r.Truncated || n >= 200) {
					t.Errorf("udp size %d: TC=%v with %d answers, want truncated", size, r.Truncated, n)
				}
				if proto == "tcp" && (r.Truncated || n != 200) {
					t.Errorf("tcp: TC=%v with %d answers, want 200", r.Truncated, n)
				}
			}
		}},
	}
	for _, proto := range []string{"udp", "tcp"} {
		for _, tc := range tests {
			t.Run(proto+"/"+tc.name, func(t *testing.T) { tc.check(t, proto) })
		}
	}
	if s.Queries() == 0 {
		t.Error("Queries() = 0")
	}
}

func TestConcurrent(t *testing.T) {
	s := startServer(t, Demo())
	before := s.Queries()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			c := &dns.Client{Timeout: 2 * time.Second}
			for range 25 {
				m := new(dns.Msg).SetQuestion("cdn.kwik.tk.", dns.TypeA)
				if r, _, err := c.Exchange(m, s.Addr()); err != nil || len(r.Answer) != 3 {
					t.Errorf("exchange: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if got := s.Queries() - before; got != 200 {
		t.Errorf("Queries() grew by %d, want 200", got)
	}
}

func TestStartClose(t *testing.T) {
	s := startServer(t, Demo())
	if err := s.Start("127.0.0.1:0"); err == nil {
		t.Error("second Start succeeded")
	}
	host, port, err := net.SplitHostPort(s.Addr())
	if err != nil || host != "127.0.0.1" || port == "0" {
		t.Fatalf("Addr() = %q", s.Addr())
	}
	// The same port must be busy for another server on both protocols.
	s2, _ := New(Demo())
	if err := s2.Start(s.Addr()); err == nil {
		s2.Close()
		t.Error("Start on a busy port succeeded")
	}
}

func TestPools(t *testing.T) {
	a, b := pool4("x.top.", 500), pool4("x.top.", 500)
	if !slices.EqualFunc(a, b, net.IP.Equal) {
		t.Error("pool4 not deterministic")
	}
	if c := pool4("y.top.", 500); slices.EqualFunc(a, c, net.IP.Equal) {
		t.Error("different names share a pool")
	}
	var all, p16 []string
	for _, ip := range a {
		all = append(all, ip.String())
		p16 = append(p16, ip.Mask(net.CIDRMask(16, 32)).String())
		if !public(ip.String()) {
			t.Errorf("%s not public", ip)
		}
	}
	if distinct(all) != 500 || distinct(p16) < 400 {
		t.Errorf("%d distinct IPs, %d distinct /16s", distinct(all), distinct(p16))
	}
	for _, ip := range pool6("x.top.", 200) {
		if !public(ip.String()) {
			t.Errorf("%s not public", ip)
		}
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name string
		in   []Name
	}{
		{"empty name", []Name{{Kind: Static, IPs: []string{"8.8.8.8"}}}},
		{"bad name", []Name{{Name: "a..b", Kind: Static, IPs: []string{"8.8.8.8"}}}},
		{"static without IPs", []Name{{Name: "a.example", Kind: Static}}},
		{"bad IP", []Name{{Name: "a.example", Kind: RoundRobin, IPs: []string{"1.2.3.999"}}}},
		{"pool < per answer", []Name{{Name: "a.top", Kind: Flux, Pool: 3, PerAnswer: 4}}},
		{"default pool < per answer", []Name{{Name: "a.top", Kind: Flux, PerAnswer: 51}}},
		{"negative pool", []Name{{Name: "a.top", Kind: Flux, Pool: -1}}},
		{"cname without target", []Name{{Name: "a.example", Kind: CNAME}}},
		{"cname to self", []Name{{Name: "a.example", Kind: CNAME, Target: "A.example."}}},
		{"cname loop", []Name{{Name: "a.example", Kind: CNAME, Target: "b.example"}, {Name: "b.example", Kind: CNAME, Target: "a.example"}}},
		{"unknown kind", []Name{{Name: "a.example", Kind: Kind(42)}}},
		{"negative NSPool", []Name{{Name: "a.top", Kind: Flux, NSPool: -1}}},
		{"duplicate", []Name{{Name: "a.top", Kind: Flux}, {Name: "A.TOP.", Kind: Flux}}},
		{"negative Prefixes", []Name{{Name: "a.top", Kind: Flux, Prefixes: -1}}},
		{"Prefixes on round robin", []Name{{Name: "a.example", Kind: RoundRobin, IPs: []string{"8.8.8.8"}, Prefixes: 1}}},
		{"Prefixes with explicit pool", []Name{{Name: "a.example", Kind: Flux, IPs: []string{"8.8.8.8"}, Prefixes: 1}}},
		{"Provider without Prefixes", []Name{{Name: "a.example", Kind: Flux, Provider: "cdn.example"}}},
		{"Prefixes > Pool", []Name{{Name: "a.example", Kind: Flux, Pool: 4, PerAnswer: 1, Prefixes: 5}}},
		{"Pool beyond Prefixes", []Name{{Name: "a.example", Kind: Flux, Pool: 70000, Prefixes: 1}}},
		{"explicit pool < PerAnswer", []Name{{Name: "a.example", Kind: Flux, IPs: []string{"8.8.8.8", "8.8.4.4"}, PerAnswer: 3}}},
		{"explicit pool bad IP", []Name{{Name: "a.example", Kind: Flux, IPs: []string{"8.8.8"}}}},
		{"failover without IPs", []Name{{Name: "a.example", Kind: Failover}}},
		{"failover negative SwitchAfter", []Name{{Name: "a.example", Kind: Failover, IPs: []string{"8.8.8.8"}, SwitchAfter: -1}}},
		{"failover negative PerAnswer", []Name{{Name: "a.example", Kind: Failover, IPs: []string{"8.8.8.8"}, PerAnswer: -1}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.in)
			if err == nil || !strings.HasPrefix(err.Error(), "fluxsim: ") {
				t.Errorf("New() error = %v, want fluxsim: error", err)
			}
		})
	}
	if _, err := New(Demo()); err != nil {
		t.Errorf("New(Demo()) = %v", err)
	}
}
