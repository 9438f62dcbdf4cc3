package engine

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// TestSharedPool checks that a candidate whose answers bring addresses of
// a flagged name, in two networks, is flagged at half the threshold, and
// that shared addresses in one network, or a single one, are not enough;
// nor are they for a name whose own answers look benign, whatever the
// flagged name answered (its answers are the attacker's to choose).
func TestSharedPool(t *testing.T) {
	bots := answers(6, 4, 200, 200) // one botnet's addresses, each in its own /16
	own := [][]netip.Addr{addrs("61.1.0.1", "62.1.0.1"), addrs("63.1.0.1")}
	tests := []struct {
		name    string
		answers [][]netip.Addr
		ttl     uint32
		flagged bool
	}{
		{"two bots in two networks, and its own", append([][]netip.Addr{{bots[0][0], bots[1][1]}}, own...), 60, true},
		{"two bots and a stranger, and its own", append([][]netip.Addr{{bots[2][0], netip.MustParseAddr("99.1.2.3"), bots[3][2]}}, own...), 60, true},
		{"strangers in their place", append([][]netip.Addr{addrs("99.1.2.3", "98.1.2.3")}, own...), 60, false},
		{"one bot", append([][]netip.Addr{{bots[0][0], netip.MustParseAddr("99.1.2.3")}}, own...), 60, false},
		{"two bots, once", [][]netip.Addr{{bots[0][0], bots[1][1]}}, 60, false},
		{"a fixed set with two bots in it", [][]netip.Addr{
			{bots[0][0], bots[1][1], netip.MustParseAddr("74.6.143.25"), netip.MustParseAddr("74.6.143.26"), netip.MustParseAddr("98.137.11.163")},
			{bots[0][0], bots[1][1], netip.MustParseAddr("74.6.143.25"), netip.MustParseAddr("74.6.143.26"), netip.MustParseAddr("98.137.11.163")},
			{bots[0][0], bots[1][1], netip.MustParseAddr("74.6.143.25"), netip.MustParseAddr("74.6.143.26"), netip.MustParseAddr("98.137.11.163")},
		}, 1800, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &fakeClock{t: at("10:00:00")}
			e := newTestEngine(t, clk, func(c *Config) { c.Profile = ProfileDefault })
			var v Verdict
			for _, a := range bots {
				clk.add(time.Minute)
				v = e.Observe(&Observation{Name: "c2.flux-one.com", Addrs: a, MinTTL: 60})
			}
			if v.Level != LevelFlagged {
				t.Fatalf("the first name is not flagged: %+v", v)
			}
			for _, a := range tt.answers {
				clk.add(time.Minute)
				v = e.Observe(&Observation{Name: "login.other-name.net", Addrs: a, MinTTL: tt.ttl})
			}
			if (v.Level == LevelFlagged) != tt.flagged || tt.flagged && v.Reasons&ReasonSharedPool == 0 {
				t.Errorf("second name: %+v (reasons %s), want flagged %v", v, v.Reasons, tt.flagged)
			}
		})
	}
}

// TestSharedPoolAges flags a name on a flagged name's addresses, then asks
// for it every 5 minutes while the first name is no longer asked for:
// once the first name's addresses have left the index, the second's own,
// which it indexes while flagged, do not keep it flagged, and its hold
// runs out. Its later answers repeat the first, or each bring a new
// address, in one of two networks.
func TestSharedPoolAges(t *testing.T) {
	bots := answers(6, 4, 200, 200)
	for _, tc := range []struct {
		name  string
		fresh bool
	}{{"the same answer", false}, {"a new address each time", true}} {
		t.Run(tc.name, func(t *testing.T) {
			clk := &fakeClock{t: at("10:00:00")}
			e := newTestEngine(t, clk, func(c *Config) { c.Profile = ProfileDefault })
			for _, a := range bots {
				clk.add(time.Minute)
				e.Observe(&Observation{Name: "c2.flux-one.com", Addrs: a, MinTTL: 60})
			}
			shared := []netip.Addr{bots[0][0], bots[1][1]}
			clk.add(time.Minute)
			if v := e.Observe(&Observation{Name: "login.other-name.net", Addrs: shared, MinTTL: 600}); v.Reasons&ReasonSharedPool == 0 {
				t.Fatalf("not flagged on the pool: %+v", v)
			}
			var v Verdict
			for i := range 3 * 12 { // three hours
				clk.add(5 * time.Minute)
				answer := shared
				if tc.fresh {
					answer = []netip.Addr{netip.AddrFrom4([4]byte{byte(45 + i%2), 1, byte(i), 1})}
				}
				v = e.Observe(&Observation{Name: "login.other-name.net", Addrs: answer, MinTTL: 600})
			}
			if v.Level == LevelFlagged || v.Reasons&ReasonSharedPool != 0 {
				t.Errorf("three hours on, with the first name's addresses gone from the index: %+v", v)
			}
		})
	}
}

// TestSharedPoolOneNetwork checks that many names behind one edge never
// flag each other through the pool index: their shared addresses are one
// network.
func TestSharedPoolOneNetwork(t *testing.T) {
	clk := &fakeClock{t: at("10:00:00")}
	e := newTestEngine(t, clk, func(c *Config) { c.Profile = ProfileDefault })
	e.pools.add(netip.MustParseAddr("151.101.1.1").As16(), ^uint32(0), 1, 0)
	e.pools.add(netip.MustParseAddr("151.101.65.1").As16(), ^uint32(0), 1, 0)
	for i := range 20 {
		clk.add(time.Second)
		v := e.Observe(&Observation{Name: fmt.Sprintf("www.site%d.com", i), Addrs: addrs("151.101.1.1", "151.101.65.1"), MinTTL: 60})
		if v.Level == LevelFlagged {
			t.Fatalf("site %d flagged: %+v", i, v)
		}
	}
}

// TestPoolIndexBounded checks that the index keeps at most its cap.
func TestPoolIndexBounded(t *testing.T) {
	p := newPoolIndex()
	for i := range 3 * poolShards * poolPerShard {
		p.add(netip.AddrFrom4([4]byte{byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}).As16(), 20, 1, 0)
	}
	if n := p.len(); n > poolShards*poolPerShard {
		t.Errorf("%d addresses indexed, cap %d", n, poolShards*poolPerShard)
	}
}

// TestSharedPoolFrontDoors checks that a flux name answering the addresses
// of CDN edges among its bots cannot get the names behind those edges
// flagged: front-door addresses never enter the index.
func TestSharedPoolFrontDoors(t *testing.T) {
	edges := addrs("151.101.1.1", "104.16.1.1") // two CDNs: two networks
	front := func(a netip.Addr) bool { return a == edges[0] || a == edges[1] }
	clk := &fakeClock{t: at("10:00:00")}
	e := newTestEngine(t, clk, func(c *Config) { c.Profile, c.FrontDoor = ProfileDefault, front })
	var v Verdict
	for _, a := range answers(6, 4, 200, 200) {
		clk.add(time.Minute)
		v = e.Observe(&Observation{Name: "c2.flux-one.com", Addrs: append(a, edges...), MinTTL: 60})
	}
	if v.Level != LevelFlagged {
		t.Fatalf("the flux name is not flagged: %+v", v)
	}
	clk.add(time.Minute)
	if v = e.Observe(&Observation{Name: "www.multi-cdn-site.com", Addrs: edges, MinTTL: 60}); v.Level == LevelFlagged {
		t.Errorf("a name behind the edges was flagged: %+v (reasons %s)", v, v.Reasons)
	}
}

// len returns the number of addresses indexed, expired ones included.
func (p *poolIndex) len() int {
	n := 0
	for i := range p.shards {
		sh := &p.shards[i]
		sh.mu.Lock()
		n += len(sh.until)
		sh.mu.Unlock()
	}
	return n
}

// TestSharedPoolAllowed: allowing a flagged name, a false positive, takes
// its addresses out of the pool index: the names sharing them are no
// longer flagged on them.
func TestSharedPoolAllowed(t *testing.T) {
	bots := answers(6, 4, 200, 200)
	for _, allow := range []bool{false, true} {
		t.Run(fmt.Sprintf("allowed=%v", allow), func(t *testing.T) {
			clk := &fakeClock{t: at("10:00:00")}
			e := newTestEngine(t, clk, func(c *Config) { c.Profile = ProfileDefault })
			for _, a := range bots {
				clk.add(time.Minute)
				e.Observe(&Observation{Name: "c2.flux-one.com", Addrs: a, MinTTL: 60})
			}
			if allow {
				e.SetPolicy(NewPolicy([]Rule{{Name: "flux-one.com"}}, nil, nil))
			}
			var v Verdict
			for _, a := range [][]netip.Addr{{bots[0][0], bots[1][1]}, addrs("61.1.0.1", "62.1.0.1"), addrs("63.1.0.1")} {
				clk.add(time.Minute)
				v = e.Observe(&Observation{Name: "login.other-name.net", Addrs: a, MinTTL: 60})
			}
			if shared := v.Reasons&ReasonSharedPool != 0; shared == allow || (v.Level == LevelFlagged) == allow {
				t.Errorf("%+v (reasons %s)", v, v.Reasons)
			}
		})
	}
}
