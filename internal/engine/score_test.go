package engine

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// answers returns n answers of per addresses each, drawn in turn from a
// pool of the given size spread over prefixes /16 networks.
func answers(n, per, pool, prefixes int) [][]netip.Addr {
	var out [][]netip.Addr
	k := 0
	for range n {
		var a []netip.Addr
		for range per {
			i := k % pool
			net := i % prefixes
			a = append(a, netip.AddrFrom4([4]byte{byte(23 + net*3%200), byte(net * 7), byte(i), byte(1 + i%250)}))
			k++
		}
		out = append(out, a)
	}
	return out
}

func TestDefaultProfile(t *testing.T) {
	tests := []struct {
		name    string
		answers [][]netip.Addr
		ttl     uint32
		flagged bool
		reasons Reasons
	}{
		{"single flux", answers(3, 4, 100, 100), 60, true, ReasonPrefixDiversity | ReasonRotating | ReasonShortTTL},
		{"single flux in one /16", answers(3, 4, 100, 1), 60, false, ReasonRotating | ReasonShortTTL},
		{"low and slow", answers(9, 1, 50, 50), 5, true, ReasonPrefixDiversity | ReasonRotating | ReasonShortTTL},
		{"long TTL flux is not evidence", answers(6, 4, 100, 100), 86400, false, ReasonPrefixDiversity | ReasonRotating},
		{"CDN: many IPs, two networks", answers(20, 8, 60, 2), 20, false, ReasonRotating | ReasonShortTTL},
		{"fixed round robin over 8 networks", answers(20, 8, 8, 8), 300, false, ReasonPrefixDiversity | ReasonShortTTL},
		{"regional SaaS: 24 IPs in 5 networks", answers(20, 6, 24, 5), 120, false, ReasonPrefixDiversity | ReasonRotating | ReasonShortTTL},
		// A fixed set, A and AAAA in turn: 8 addresses against answers of
		// 4 each, which do not rotate.
		{"fixed dual-stack set over 8 networks", dualStack(10), 60, false, ReasonPrefixDiversity | ReasonShortTTL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &fakeClock{t: at("10:00:00")}
			e := newTestEngine(t, clk, func(c *Config) { c.Profile = ProfileDefault })
			var v Verdict
			for _, a := range tt.answers {
				clk.add(time.Minute)
				v = e.Observe(&Observation{Name: "www.longexample.com", Client: netip.MustParseAddr("10.0.0.1"), Addrs: a, MinTTL: tt.ttl})
			}
			if (v.Level == LevelFlagged) != tt.flagged || v.Reasons != tt.reasons {
				t.Errorf("verdict %+v (reasons %s), want flagged %v reasons %s", v, v.Reasons, tt.flagged, tt.reasons)
			}
			if tt.name == "single flux" && (v.Networks != 12 || v.Prefixes != 12 || v.Subnets != 12 || v.Diversity != 1) {
				t.Errorf("diversity of 12 addresses in 12 networks: %+v", v)
			}
		})
	}
}

// TestSeedRuleCorroborates checks that a name the seed rule flags is
// flagged at half the threshold when its own answers rotate and none of
// its addresses is a front door's (Config.FrontDoor): the slow rotations
// through a few hosting providers that the rule catches by their names.
func TestSeedRuleCorroborates(t *testing.T) {
	seedReasons := ReasonSuspiciousTLD | ReasonShortSLD | ReasonManyIPs | ReasonSeedRule
	tests := []struct {
		name      string
		host      string
		answers   [][]netip.Addr
		frontDoor bool // every address is a front door's
		flagged   bool
		reasons   Reasons
	}{
		{"slow flux through 3 hosting networks", "cdn.bri.top", answers(12, 1, 40, 3), false, true,
			seedReasons | ReasonRotating | ReasonShortTTL},
		{"the same on front doors", "cdn.bri.top", answers(12, 1, 40, 3), true, false,
			ReasonSuspiciousTLD | ReasonRotating | ReasonShortTTL},
		{"the same under a name the rule scores 1", "cdn.longbrandname.com", answers(12, 1, 40, 3), false, false,
			ReasonRotating | ReasonShortTTL},
		{"a fixed set does not rotate", "cdn.bri.top", answers(12, 6, 6, 6), false, false,
			ReasonPrefixDiversity | ReasonShortTTL | ReasonSuspiciousTLD},
		// Twice its answers: rotating, not SeedRotation times.
		{"a failover drill: a site's three addresses, then another's", "app.nordrive.info", failover(6), false, false,
			ReasonSuspiciousTLD | ReasonRotating | ReasonShortTTL},
		{"under half the threshold", "cdn.bri.top", answers(12, 1, 40, 2), false, false,
			ReasonSuspiciousTLD | ReasonRotating | ReasonShortTTL},
		// The rule's own false positive that the corroboration keeps: a
		// regional SaaS on networks of its own (on a cloud's, it is not).
		{"regional SaaS on its own networks", "www.example.com", answers(20, 6, 24, 5), false, true,
			ReasonShortSLD | ReasonManyIPs | ReasonSeedRule | ReasonPrefixDiversity | ReasonRotating | ReasonShortTTL},
		{"regional SaaS on front doors", "www.example.com", answers(20, 6, 24, 5), true, false,
			ReasonPrefixDiversity | ReasonRotating | ReasonShortTTL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &fakeClock{t: at("10:00:00")}
			e := newTestEngine(t, clk, func(c *Config) {
				c.Profile = ProfileDefault
				c.FrontDoor = func(netip.Addr) bool { return tt.frontDoor }
			})
			var v Verdict
			for _, a := range tt.answers {
				clk.add(time.Minute)
				v = e.Observe(&Observation{Name: tt.host, Client: netip.MustParseAddr("10.0.0.1"), Addrs: a, MinTTL: 120})
			}
			if (v.Level == LevelFlagged) != tt.flagged || v.Reasons != tt.reasons {
				t.Errorf("verdict %+v (reasons %s), want flagged %v reasons %s", v, v.Reasons, tt.flagged, tt.reasons)
			}
		})
	}
}

// TestSeedRuleSparesLoadBalancers checks that the seed rule's
// corroboration does not flag a service's own DNS load balancer (two of
// nine addresses an answer, in turn, in three or five networks none of
// them a front door's, TTL 60), whatever its name's seed points: under
// .ru with a short SLD, with weight tld 0, or asked by five clients, a
// point anyone can give.
func TestSeedRuleSparesLoadBalancers(t *testing.T) {
	pool := addrs("95.163.1.1", "95.163.1.2", "95.163.1.3", "217.69.1.1", "217.69.1.2", "217.69.1.3",
		"185.86.1.1", "185.86.1.2", "185.86.1.3")
	pool5 := addrs("95.163.1.1", "95.163.1.2", "217.69.1.1", "217.69.1.2", "185.86.1.1", "185.86.1.2",
		"178.154.1.1", "178.154.1.2", "5.45.1.1")
	tests := []struct {
		name      string
		host      string
		pool      []netip.Addr
		clients   int
		tldWeight float64
	}{
		{"under .ru, a short SLD", "api.ozon.ru", pool, 1, 1},
		{"under .ru, weight tld 0", "api.ozon.ru", pool5, 1, 0},
		{"under .com, one client", "api.shopx.com", pool5, 1, 1},
		{"under .com, five clients", "api.shopx.com", pool5, 5, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &fakeClock{t: at("10:00:00")}
			e := newTestEngine(t, clk, func(c *Config) {
				c.Profile = ProfileDefault
				c.Weights.TLD = tt.tldWeight
				c.FrontDoor = func(netip.Addr) bool { return false }
			})
			var v Verdict
			for i := range 60 {
				clk.add(time.Minute)
				answer := []netip.Addr{tt.pool[2*i%len(tt.pool)], tt.pool[(2*i+1)%len(tt.pool)]}
				client := netip.AddrFrom4([4]byte{10, 0, 0, byte(1 + i%tt.clients)})
				v = e.Observe(&Observation{Name: tt.host, Client: client, Addrs: answer, MinTTL: 60})
			}
			if v.Level == LevelFlagged || v.Reasons&ReasonSeedRule != 0 {
				t.Errorf("%s flagged: score %.2f, reasons %s", tt.host, v.Score, v.Reasons)
			}
		})
	}
}

// failover returns n answers of a primary site's three addresses, then
// n of its disaster-recovery site's, in four /16s.
func failover(n int) [][]netip.Addr {
	primary, dr := addrs("45.1.0.1", "45.1.0.2", "46.2.0.1"), addrs("47.3.0.1", "47.3.0.2", "48.4.0.1")
	var out [][]netip.Addr
	for range n {
		out = append(out, primary)
	}
	for range n {
		out = append(out, dr)
	}
	return out
}

// dualStack returns n answers of a fixed set, an A answer of 4 addresses
// in 4 /16s and an AAAA answer of 4 in 4 /32s, in turn.
func dualStack(n int) [][]netip.Addr {
	sets := [][]netip.Addr{addrs("73.1.0.1", "86.128.0.1", "212.227.0.1", "144.195.0.1"),
		addrs("2001:470::1", "2a02:8100::1", "2a01:e00::1", "2003::1")}
	var out [][]netip.Addr
	for i := range n {
		out = append(out, sets[i%2])
	}
	return out
}

// TestRegisteredDomain checks that flux spread over random subdomains, none
// of which is a candidate alone, flags the registered domain, which then
// covers every name under it, and that the report shows it.
func TestRegisteredDomain(t *testing.T) {
	clk := &fakeClock{t: at("10:00:00")}
	e := newTestEngine(t, clk, func(c *Config) { c.Profile = ProfileDefault })
	var v Verdict
	for i, a := range answers(8, 2, 200, 200) {
		clk.add(30 * time.Second)
		v = e.Observe(&Observation{Name: fmt.Sprintf("x%d.evil-wild.com", i), Addrs: a, MinTTL: 30})
	}
	if v.Level != LevelFlagged || v.Reasons&ReasonRegisteredDomain == 0 {
		t.Fatalf("last verdict %+v", v)
	}
	if v, held := e.Held("never-seen.evil-wild.com"); !held || v.Reasons&ReasonRegisteredDomain == 0 {
		t.Errorf("subdomain of a flagged registered domain not held: %+v", v)
	}
	if _, held := e.Held("evil-wild.org"); held {
		t.Error("unrelated domain held")
	}
	rows := e.Report()
	if len(rows) != 1 || rows[0].DomainName != "*.evil-wild.com" || rows[0].UniqueIPCount != 16 {
		t.Errorf("report %+v", rows)
	}
	if names, total := e.Flagged(10); total != 1 || names[0] != "*.evil-wild.com" {
		t.Errorf("Flagged = %v, %d", names, total)
	}
	// Once the domain is flagged, the names under it are not flagged anew:
	// a level change is logged, and counted, once.
	for i := range 3 {
		clk.add(30 * time.Second)
		v := e.Observe(&Observation{Name: fmt.Sprintf("y%d.evil-wild.com", i), Addrs: answers(1, 2, 300, 300)[0], MinTTL: 30})
		if v.Level != LevelFlagged || v.Changed() {
			t.Errorf("a name under the flagged domain: %+v, changed %v; want flagged, unchanged", v, v.Changed())
		}
	}
}

// TestRegisteredDomainFixedHosts: an organisation's hosts, each with one
// fixed address, in a few networks, with short TTLs: the registered
// domain's aggregate shows as many addresses as hosts asked, which is no
// churn (it flagged 12 hosts in 4 /16s, every name under the domain),
// also when the aggregate comes after its names (a reload from the seed
// profile here).
func TestRegisteredDomainFixedHosts(t *testing.T) {
	nets := []string{"73.1", "86.128", "212.227", "144.195"}
	for _, tc := range []struct {
		hosts    int
		reloaded bool
	}{{12, false}, {24, false}, {48, false}, {24, true}} {
		t.Run(fmt.Sprintf("%d hosts, reloaded %v", tc.hosts, tc.reloaded), func(t *testing.T) {
			hosts := tc.hosts
			clk := &fakeClock{t: at("10:00:00")}
			e := newTestEngine(t, clk, func(c *Config) { c.Profile = ProfileDefault })
			if tc.reloaded {
				seed := newTestEngine(t, clk, nil)
				for i := range hosts {
					seed.Observe(&Observation{Name: fmt.Sprintf("host%d.example-corp.com", i), Addrs: addrs(fmt.Sprintf("%s.%d.%d", nets[i%len(nets)], 10+i, 1+i)), MinTTL: 60})
				}
				cfg := e.Config()
				var err error
				if e, err = seed.Reconfigured(cfg); err != nil {
					t.Fatal(err)
				}
				e.Adopt()
			}
			for i := range hosts {
				addr := addrs(fmt.Sprintf("%s.%d.%d", nets[i%len(nets)], 10+i, 1+i))
				for c := range 2 {
					clk.add(time.Minute)
					v := e.Observe(&Observation{Name: fmt.Sprintf("host%d.example-corp.com", i), Client: netip.AddrFrom4([4]byte{10, 0, 0, byte(c + 1)}), Addrs: addr, MinTTL: 60})
					if v.Level == LevelFlagged {
						t.Fatalf("host%d flagged: score %v, reasons %s", i, v.Score, v.Reasons)
					}
				}
			}
		})
	}
}

// TestRegisteredDomainOneName: a registered domain seen through one name
// only adds nothing to that name's verdict, also when its aggregate was
// made after the name (a reload from the seed profile): the flux name is
// held, not every name under its domain.
func TestRegisteredDomainOneName(t *testing.T) {
	feed := func(e *Engine, clk *fakeClock, from, to int) {
		for i, a := range answers(to, 6, 600, 600)[from:] {
			clk.add(time.Minute)
			e.Observe(&Observation{Name: "app.example-corp.com", Client: netip.AddrFrom4([4]byte{10, 0, 0, byte(1 + i%3)}), Addrs: a, MinTTL: 60})
		}
	}
	for _, reloaded := range []bool{false, true} {
		t.Run(fmt.Sprintf("reloaded %v", reloaded), func(t *testing.T) {
			clk := &fakeClock{t: at("10:00:00")}
			e := newTestEngine(t, clk, func(c *Config) { c.Profile = ProfileDefault })
			if reloaded {
				seed := newTestEngine(t, clk, nil)
				feed(seed, clk, 0, 1)
				var err error
				if e, err = seed.Reconfigured(e.Config()); err != nil {
					t.Fatal(err)
				}
				e.Adopt()
				feed(e, clk, 1, 6)
			} else {
				feed(e, clk, 0, 6)
			}
			if _, held := e.Held("app.example-corp.com"); !held {
				t.Fatal("the flux name not held")
			}
			if v, held := e.Held("www.example-corp.com"); held {
				t.Errorf("www.example-corp.com held (score %v, %s): its domain was seen through one name", v.Score, v.Reasons)
			}
		})
	}
}

// TestDoubleFlux checks that rotating name servers add to the score.
func TestDoubleFlux(t *testing.T) {
	clk := &fakeClock{t: at("10:00:00")}
	e := newTestEngine(t, clk, func(c *Config) { c.Profile = ProfileDefault })
	var single, double Verdict
	for i, a := range answers(3, 2, 100, 3) {
		clk.add(time.Minute)
		single = e.Observe(&Observation{Name: "a.example.net", Addrs: a, MinTTL: 30})
		ns := []string{fmt.Sprintf("ns%d.example.net", 2*i), fmt.Sprintf("ns%d.example.net", 2*i+1), fmt.Sprintf("ns%d.example.net", 2*i+6)}
		double = e.Observe(&Observation{Name: "b.example.org", Addrs: a, MinTTL: 30, NS: ns})
	}
	if single.Reasons&ReasonNSChurn != 0 || double.Reasons&ReasonNSChurn == 0 || double.Score != single.Score+5 {
		t.Errorf("single %+v, double %+v", single, double)
	}
}

func TestPrefixCounts(t *testing.T) {
	var l []seen
	for _, s := range []string{"45.0.0.1", "45.0.0.2", "45.0.1.1", "46.0.0.1", "2a00:1:2:3::1", "2a00:1:2:4::1", "2a00:1:3::1"} {
		l = append(l, seen{addr: netip.MustParseAddr(s).As16(), last: 10})
	}
	if _, wide, narrow := networkStats(l, nil, 0); wide != 3 || narrow != 5 {
		t.Errorf("networkStats = %d, %d prefixes; want 3 /16+/32 and 5 /24+/48", wide, narrow)
	}
}

func TestEffectiveNetworks(t *testing.T) {
	mk := func(ss ...string) (l []seen) {
		for _, s := range ss {
			l = append(l, seen{addr: netip.MustParseAddr(s).As16(), last: 10})
		}
		return l
	}
	tests := []struct {
		list []seen
		want float64
	}{
		{nil, 0},
		{mk("45.0.0.1", "45.0.9.1", "45.0.200.1"), 1},
		{mk("45.0.0.1", "46.0.0.1", "47.0.0.1", "48.0.0.1"), 4},
		{mk("45.0.0.1", "45.0.0.2", "46.0.0.1", "46.0.0.2"), 2},
		{mk("2a00:1::1", "2a00:1:ffff::1", "2a00:2::1", "45.0.0.1"), 2.828}, // 2^1.5
	}
	for i, tt := range tests {
		if got := effectiveNetworks(tt.list, nil, 0); fmt.Sprintf("%.3f", got) != fmt.Sprintf("%.3f", tt.want) {
			t.Errorf("%d: %v, want %v", i, got, tt.want)
		}
		// networkStats counts the networks in its sort by prefix.
		if got, _, _ := networkStats(tt.list, nil, 0); fmt.Sprintf("%.3f", got) != fmt.Sprintf("%.3f", tt.want) {
			t.Errorf("%d: networkStats %v, want %v", i, got, tt.want)
		}
	}
	// With an ASN, the networks are no longer the /16s.
	l := mk("45.0.0.1", "46.0.0.1", "47.0.0.1", "48.0.0.1")
	if got, wide, _ := networkStats(l, []uint32{64500, 64500, 64500, 64500}, 0); got != 1 || wide != 4 {
		t.Errorf("one ASN over 4 /16s: %v networks, %d /16s; want 1, 4", got, wide)
	}
}

// TestASNDiversity checks that with an ASN database network diversity is
// measured on ASNs: a CDN spread over many /16s of one ASN is not flux.
func TestASNDiversity(t *testing.T) {
	oneASN := func(netip.Addr) uint32 { return 64500 }
	perNet := func(a netip.Addr) uint32 { return 64500 + uint32(a.As4()[0]) }
	for _, tt := range []struct {
		name    string
		asn     func(netip.Addr) uint32
		flagged bool
	}{{"no database", nil, true}, {"one ASN", oneASN, false}, {"an ASN per network", perNet, true}} {
		t.Run(tt.name, func(t *testing.T) {
			clk := &fakeClock{t: at("10:00:00")}
			e := newTestEngine(t, clk, func(c *Config) { c.Profile = ProfileDefault; c.ASN = tt.asn })
			var v Verdict
			for _, a := range answers(4, 4, 100, 100) {
				clk.add(time.Minute)
				v = e.Observe(&Observation{Name: "img.big-cdn.com", Addrs: a, MinTTL: 60})
			}
			if (v.Level == LevelFlagged) != tt.flagged {
				t.Errorf("verdict %+v, want flagged %v", v, tt.flagged)
			}
		})
	}
}

// TestObserveNS checks that name servers learnt by resolution count as NS
// churn for the registered domain.
func TestObserveNS(t *testing.T) {
	clk := &fakeClock{t: at("10:00:00")}
	e := newTestEngine(t, clk, func(c *Config) { c.Profile = ProfileDefault })
	for i, a := range answers(3, 2, 100, 3) {
		clk.add(time.Minute)
		e.Observe(&Observation{Name: fmt.Sprintf("h%d.rotating-ns.com", i%2), Addrs: a, MinTTL: 30})
	}
	e.ObserveNS("unknown.example", nil, []string{"ns1.unknown.example"}, nil) // not tracked: ignored
	for i := range 4 {                                                        // a set of two at each resolution, rotating
		clk.add(time.Minute)
		glue := addrs(fmt.Sprintf("%d.9.0.1", 60+i), fmt.Sprintf("%d.9.0.1", 70+i))
		e.ObserveNS("rotating-ns.com", nil, []string{fmt.Sprintf("ns%d.rotating-ns.com", 2*i), fmt.Sprintf("ns%d.rotating-ns.com", 2*i+1)}, glue)
	}
	if got := RegisteredDomain("h0.rotating-ns.com"); got != "rotating-ns.com" {
		t.Fatalf("RegisteredDomain = %q", got)
	}
	clk.add(time.Minute)
	v := e.Observe(&Observation{Name: "h2.rotating-ns.com", Addrs: answers(1, 2, 100, 3)[0], MinTTL: 30})
	rows := e.Report()
	found := false
	for _, r := range rows {
		found = found || r.DomainName == "*.rotating-ns.com"
	}
	if !found {
		t.Fatalf("no aggregate row: %+v (%+v)", rows, v)
	}
	if n := countSince(listOf(t, e.domains, "rotating-ns.com", nsOf), 0); n != 8 {
		t.Errorf("%d name servers recorded, want 8", n)
	}
	if n := countSince(listOf(t, e.domains, "rotating-ns.com", nsIPsOf), 0); n != 8 {
		t.Errorf("%d name server addresses recorded, want 8", n)
	}
	for _, r := range rows {
		if r.DomainName == "*.rotating-ns.com" && r.SuspicionScore < 10 {
			t.Errorf("NS churn (4) and NS networks (6) not scored: %+v", r)
		}
	}
}

// TestNSRotation checks that name servers count when the zone's set
// rotates, not for how many a set holds: a set of 8 in 8 networks that
// does not change (a large DNS provider, or two) counts nothing, nor a
// move to another provider, nor two stable sets seen in turn (a subzone's
// in the answers, its registered domain's from resolve_ns).
func TestNSRotation(t *testing.T) {
	for _, tc := range []struct {
		name string
		sets [][]int // the name servers of each observation, a second apart
		want int
	}{
		{"a set of 8, once", [][]int{{1, 2, 3, 4, 5, 6, 7, 8}}, 0},
		{"a set of 8, again and again", [][]int{{1, 2, 3, 4, 5, 6, 7, 8}, {1, 2, 3, 4, 5, 6, 7, 8}, {1, 2, 3, 4, 5, 6, 7, 8}}, 0},
		{"a set grown from 4 to 8", [][]int{{1, 2, 3, 4}, {1, 2, 3, 4, 5, 6, 7, 8}}, 0},
		{"two at a time, rotating", [][]int{{1, 2}, {3, 4}, {5, 6}, {7, 8}}, 4},
		{"six at a time, rotating", [][]int{{1, 2, 3, 4, 5, 6}, {7, 8, 9, 10, 11, 12}, {13, 14, 15, 16, 17, 18}}, 12},
		{"six at a time, changed once", [][]int{{1, 2, 3, 4, 5, 6}, {7, 8, 9, 10, 11, 12}}, 0},
		{"a set of 4, then another (a move)", [][]int{{1, 2, 3, 4}, {5, 6, 7, 8}, {5, 6, 7, 8}}, 0},
		{"a subzone's 4 and its domain's 8, in turn", [][]int{{1, 2, 3, 4}, {5, 6, 7, 8, 9, 10, 11, 12}, {1, 2, 3, 4}, {5, 6, 7, 8, 9, 10, 11, 12}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var list []seen
			for i, set := range tc.sets {
				for _, ns := range set {
					k := nsKey(fmt.Sprintf("ns%d.example.com", ns))
					if j := slices.IndexFunc(list, func(s seen) bool { return s.addr == k }); j >= 0 {
						list[j].last = uint32(10 + i)
					} else {
						list = append(list, seen{addr: k, last: uint32(10 + i)})
					}
				}
			}
			if got := nsRotation(list, 0); got != tc.want {
				t.Errorf("nsRotation = %d, want %d", got, tc.want)
			}
		})
	}
}

// TestQueryCount checks the two readings of min_queries: the seed rule's
// rows (one per address, after mv-expand), so that one answer of five
// addresses is a candidate, and answers.
func TestQueryCount(t *testing.T) {
	tests := []struct {
		profile, count string
		queries        int
		level          Level
	}{
		{ProfileSeed, "", 5, LevelFlagged}, // the seed profile counts rows; .tk and a short SLD score 2
		{ProfileSeed, CountRows, 5, LevelFlagged},
		{ProfileSeed, CountAnswers, 1, LevelNone},
		{ProfileDefault, "", 1, LevelNone}, // the default profile counts answers
		{ProfileDefault, CountRows, 5, LevelSuspicious},
	}
	for _, tt := range tests {
		t.Run(tt.profile+"/"+tt.count, func(t *testing.T) {
			clk := &fakeClock{t: at("10:00:00")}
			e := newTestEngine(t, clk, func(c *Config) { c.Profile, c.QueryCount = tt.profile, tt.count })
			v := e.Observe(&Observation{Name: "x.evil.tk", Addrs: answers(1, 5, 5, 5)[0], MinTTL: 30})
			if v.Queries != tt.queries || v.Level != tt.level {
				t.Errorf("queries %d, level %s; want %d, %s", v.Queries, v.Level, tt.queries, tt.level)
			}
		})
	}
}

// TestChurn checks that many rotating addresses in a handful of networks,
// far more than any answer holds, flag a name, and that a fixed set of
// the same networks, or one network's rotating addresses, do not.
func TestChurn(t *testing.T) {
	tests := []struct {
		name    string
		answers [][]netip.Addr
		ttl     uint32
		flagged bool
	}{
		{"40 addresses in 3 networks, 2 an answer", answers(20, 2, 200, 3), 60, true},
		{"40 addresses in 3 networks, long TTL", answers(20, 2, 200, 3), 3600, false},
		{"40 addresses in 2 networks", answers(20, 2, 200, 2), 60, false},
		{"a fixed set of 24 in 3 networks", answers(20, 2, 24, 3), 60, false},
		{"36 addresses in 3 networks, 12 an answer", answers(3, 12, 200, 3), 60, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &fakeClock{t: at("10:00:00")}
			e := newTestEngine(t, clk, func(c *Config) { c.Profile = ProfileDefault })
			var v Verdict
			for _, a := range tt.answers {
				clk.add(time.Minute)
				v = e.Observe(&Observation{Name: "www.example.com", Addrs: a, MinTTL: tt.ttl})
			}
			if (v.Level == LevelFlagged) != tt.flagged || (v.Reasons&ReasonChurn != 0) != tt.flagged {
				t.Errorf("verdict %+v (reasons %s), want flagged %v", v, v.Reasons, tt.flagged)
			}
		})
	}
}

// TestChurnPoints checks the churn term's arms: many addresses at many
// answers' worth, or answers' worth times the networks; and that a set
// that does not rotate, whatever its networks, does not churn.
func TestChurnPoints(t *testing.T) {
	for _, tc := range []struct {
		ips, maxAnswer int
		eff            float64
		want           float64
	}{
		{40, 2, 3, 8},    // 20 answers' worth, in 3 networks: capped
		{30, 6, 3, 5},    // many addresses at 5 answers' worth
		{24, 12, 30, 2},  // 2 answers' worth in 30 networks: the long run
		{11, 1, 10, 0},   // too few addresses
		{40, 2, 2.5, 0},  // too few networks
		{20, 8, 4, 0},    // neither arm
		{64, 64, 55, 0},  // a fixed set of 64 in 55 networks: no rotation
		{90, 64, 60, 0},  // 80 in fixed order, 64 of them an answer
		{128, 64, 60, 2}, // rotated twice over
	} {
		if got := churnPoints(tc.ips, tc.maxAnswer, tc.eff); got != tc.want {
			t.Errorf("churnPoints(%d, %d, %v) = %v, want %v", tc.ips, tc.maxAnswer, tc.eff, got, tc.want)
		}
	}
}

// TestKnownPools checks that the default profile never tracks the public
// pools, the seed profile does (as the rule), and pool_suffixes replaces
// the list.
func TestKnownPools(t *testing.T) {
	tests := []struct {
		profile string
		pools   []string
		name    string
		skip    Skip
	}{
		{ProfileDefault, nil, "2.debian.pool.ntp.org", SkipExcluded},
		{ProfileDefault, nil, "x9.seed.bitcoin.sipa.be", SkipExcluded},
		{ProfileDefault, nil, "pool.ntp.org.evil.com", SkipNone},
		{ProfileSeed, nil, "2.debian.pool.ntp.org", SkipNone},
		{ProfileDefault, []string{"pool.example"}, "2.debian.pool.ntp.org", SkipNone},
		{ProfileDefault, []string{"pool.example"}, "a.pool.example", SkipExcluded},
	}
	for _, tt := range tests {
		t.Run(tt.profile+"/"+tt.name, func(t *testing.T) {
			e := newTestEngine(t, &fakeClock{t: at("10:00:00")}, func(c *Config) { c.Profile, c.PoolSuffixes = tt.profile, tt.pools })
			if got := e.Skipped(tt.name, nil); got != tt.skip {
				t.Errorf("Skipped = %s, want %s", got, tt.skip)
			}
		})
	}
}

// TestSettledNetworks checks when a name's networks are computed again: at
// every answer that brings addresses until the name is flagged, so that
// the answer whose score crosses the threshold flags it; then, while it is
// held, at the first answer of each second only.
func TestSettledNetworks(t *testing.T) {
	clk := &fakeClock{t: at("10:00:00")}
	e := newTestEngine(t, clk, func(c *Config) { c.Profile = ProfileDefault })
	var list []seen // every address so far
	fresh := func() float64 {
		eff, _, _ := networkStats(list, nil, 0)
		return math.Round(float64(float32(eff))*100) / 100
	}
	observe := func(a []netip.Addr) Verdict {
		for _, ip := range a {
			list = append(list, seen{addr: ip.Unmap().As16(), last: 1})
		}
		return e.Observe(&Observation{Name: "a.longexample.com", Addrs: a, MinTTL: 30})
	}
	all := answers(20, 2, 40, 40)
	flaggedAt := -1
	var settled float64
	for i, a := range all[:16] {
		v := observe(a)
		switch {
		case flaggedAt < 0 && v.Level == LevelFlagged:
			flaggedAt, settled = i, v.Networks
			if v.Score < e.threshold || v.Networks != fresh() {
				t.Fatalf("answer %d flagged with score %v, networks %v (fresh %v)", i, v.Score, v.Networks, fresh())
			}
		case flaggedAt < 0 && v.UniqueIPs >= e.cfg.MinIPs && v.Networks != fresh(): // scored from min_ips on
			t.Fatalf("answer %d, not flagged: networks %v, want %v", i, v.Networks, fresh())
		case flaggedAt >= 0 && (v.Level != LevelFlagged || v.Networks != settled):
			t.Fatalf("answer %d, held in the second it was flagged: %v, networks %v; want flagged, %v", i, v.Level, v.Networks, settled)
		}
	}
	if flaggedAt < 0 || flaggedAt == 15 || settled == fresh() {
		t.Fatalf("flagged at answer %d with %v networks of %v: the test needs answers after it that change them", flaggedAt, settled, fresh())
	}
	clk.add(time.Second)
	if v := observe(all[16]); v.Level != LevelFlagged || v.Networks != fresh() {
		t.Errorf("first answer of the next second: %v, networks %v; want flagged, %v", v.Level, v.Networks, fresh())
	}
}

// TestSeedRuleMergedEvidence checks that a replica of a fleet that knows
// a name only from the others' evidence, which carries no answer's size
// (largest 0), does not corroborate it: a fixed round robin the replica
// that saw the answers leaves alone must not be flagged there.
func TestSeedRuleMergedEvidence(t *testing.T) {
	tests := []struct {
		name    string
		host    string
		answers [][]netip.Addr
	}{
		// A DNS round robin: the same 10 addresses in every answer, in 10 networks.
		{"a fixed round robin of 10", "mirror.kde.ru", answers(12, 10, 10, 10)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &fakeClock{t: at("10:00:00")}
			mod := func(c *Config) {
				c.Profile = ProfileDefault
				c.FrontDoor = func(netip.Addr) bool { return false }
			}
			a, b := newSharingEngine(t, clk, mod), newSharingEngine(t, clk, mod)
			var va, vb Verdict
			for _, ans := range tt.answers {
				clk.add(time.Minute)
				for q := range 3 { // three queries a minute, answered alike, shared in one batch
					va = a.Observe(&Observation{Name: tt.host, Client: netip.AddrFrom4([4]byte{10, 0, 0, byte(1 + q)}), Addrs: ans, MinTTL: 120})
				}
				for _, s := range a.Outgoing(100) {
					v, err := b.Merge(&s)
					if err != nil {
						t.Fatal(err)
					}
					if s.Name == tt.host && v.Skip == SkipNone && vb.Level != LevelFlagged {
						vb = v
					}
				}
			}
			t.Logf("replica that saw the answers: level %v score %.2f reasons %s", va.Level, va.Score, va.Reasons)
			t.Logf("replica that merged them:     level %v score %.2f reasons %s", vb.Level, vb.Score, vb.Reasons)
			if va.Level == LevelFlagged {
				t.Fatalf("the replica that saw the answers flags it: not the case under test")
			}
			if vb.Level == LevelFlagged {
				t.Errorf("%s flagged by the replica that only merged its evidence: score %.2f, reasons %s", tt.host, vb.Score, vb.Reasons)
			}
		})
	}
}

// TestSeedRuleSecondLevelSuffix checks that the corroboration reads the
// short SLD from the registered domain: the seed rule's label before the
// last is the suffix's under co.uk, com.au or com.br, short for every
// name there.
func TestSeedRuleSecondLevelSuffix(t *testing.T) {
	pool := answers(40, 2, 12, 4) // 12 addresses, 2 an answer, in 4 networks
	verdict := func(host string) Verdict {
		clk := &fakeClock{t: at("10:00:00")}
		e := newTestEngine(t, clk, func(c *Config) {
			c.Profile = ProfileDefault
			c.FrontDoor = func(netip.Addr) bool { return false }
		})
		var v Verdict
		for _, a := range pool {
			clk.add(time.Minute)
			v = e.Observe(&Observation{Name: host, Client: netip.MustParseAddr("10.0.0.1"), Addrs: a, MinTTL: 60})
		}
		return v
	}
	com, uk := verdict("www.marksandspencer.com"), verdict("www.marksandspencer.co.uk")
	t.Logf(".com:   level %v score %.2f reasons %s", com.Level, com.Score, com.Reasons)
	t.Logf(".co.uk: level %v score %.2f reasons %s", uk.Level, uk.Score, uk.Reasons)
	if com.Level != LevelFlagged && uk.Level == LevelFlagged {
		t.Errorf("www.marksandspencer.co.uk flagged (score %.2f, %s); the same service under .com is not", uk.Score, uk.Reasons)
	}
}
