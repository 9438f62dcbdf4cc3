package engine

import (
	"net/netip"
	"testing"
	"time"
)

// TestIntelNames checks that a name on the intel list, or under one, is
// flagged on its first answer with its own reason, in both profiles,
// and that an allow wins.
func TestIntelNames(t *testing.T) {
	tests := []struct {
		name    string
		chain   []string
		skip    Skip
		flagged bool
	}{
		{"c2.listed.example", nil, SkipNone, true},
		{"listed.example", nil, SkipNone, true},
		{"a.b.listed.example", nil, SkipNone, true},
		{"notlisted.example", nil, SkipNone, false},
		{"example", nil, SkipNone, false},
		{"www.partner.listed.example", nil, SkipAllowed, false},                     // an allow wins
		{"c2.listed.example", []string{"edge.partner.example"}, SkipAllowed, false}, // on the chain too
		{"x.cloudfront.net", nil, SkipNone, true},                                   // listed, as a deny rule, whatever the exclusions
	}
	for _, profile := range []string{ProfileDefault, ProfileSeed} {
		clk := &fakeClock{t: at("10:00:00")}
		e := newTestEngine(t, clk, func(c *Config) {
			c.Profile = profile
			c.Allow = []Rule{{Name: "partner.listed.example"}, {Name: "partner.example"}}
		})
		e.SetPolicy(e.policy.Load().WithIntel(NewIntel([]string{"Listed.Example.", "x.cloudfront.net"}, nil)))
		for _, tt := range tests {
			v := e.Observe(&Observation{Name: tt.name, Chain: tt.chain, Addrs: addrs("45.0.0.1"), MinTTL: 60})
			intel := v.Reasons&ReasonIntel != 0
			if v.Skip != tt.skip || (v.Level == LevelFlagged) != tt.flagged || intel != tt.flagged || v.Reasons&ReasonDenied != 0 {
				t.Errorf("%s: Observe(%s, chain %v) = %+v (reasons %s), want skip %s flagged %v with reason intel",
					profile, tt.name, tt.chain, v, v.Reasons, tt.skip, tt.flagged)
			}
			if tt.chain != nil {
				continue // Held looks at the name alone
			}
			if hv, held := e.Held(tt.name); held != tt.flagged || held && hv.Reasons != ReasonIntel {
				t.Errorf("%s: Held(%s) = %+v, %v; want %v with reason intel", profile, tt.name, hv, held, tt.flagged)
			}
		}
	}
}

// TestKnownBadAddr checks the evidence of addresses on the intel list, in
// both profiles: one, or several in one network, shows as a reason and
// flags nothing; two in two networks flag the name; front doors never
// count; an allowed or excluded name is never flagged by them.
func TestKnownBadAddr(t *testing.T) {
	list := []netip.Prefix{
		netip.MustParsePrefix("45.1.0.1/32"), netip.MustParsePrefix("45.1.0.2/32"),
		netip.MustParsePrefix("46.1.0.0/24"), netip.MustParsePrefix("2001:db9:1::/48"),
		netip.MustParsePrefix("151.101.1.1/32"), netip.MustParsePrefix("104.16.1.1/32"), // CDN edges
	}
	front := func(a netip.Addr) bool { return a.String() == "151.101.1.1" || a.String() == "104.16.1.1" }
	tests := []struct {
		desc    string
		name    string
		chain   []string
		answer  []string
		skip    Skip
		reason  bool
		flagged bool
	}{
		{"none listed", "www.benign.com", nil, []string{"99.1.2.3", "98.1.2.3"}, SkipNone, false, false},
		{"one listed", "www.benign.com", nil, []string{"45.1.0.1", "98.1.2.3"}, SkipNone, true, false},
		{"two listed in one network", "www.benign.com", nil, []string{"45.1.0.1", "45.1.0.2"}, SkipNone, true, false},
		{"two listed in two networks", "c2.bad-flux.com", nil, []string{"45.1.0.1", "46.1.0.77"}, SkipNone, true, true},
		{"a listed prefix, IPv6", "c2.bad-flux.com", nil, []string{"2001:db9:1::5", "45.1.0.2"}, SkipNone, true, true},
		{"listed front doors", "www.multi-cdn.com", nil, []string{"151.101.1.1", "104.16.1.1"}, SkipNone, false, false},
		{"allowed", "c2.partner.com", nil, []string{"45.1.0.1", "46.1.0.77"}, SkipAllowed, false, false},
		{"allowed on the chain", "www.shop.com", []string{"shop.partner.com"}, []string{"45.1.0.1", "46.1.0.77"}, SkipAllowed, false, false},
		{"allowed networks", "www.shop.com", nil, []string{"46.1.0.1", "46.1.0.2"}, SkipAllowed, false, false},
		{"excluded", "x.cloudfront.net", nil, []string{"45.1.0.1", "46.1.0.77"}, SkipExcluded, false, false},
		{"internal", "db.corp", nil, []string{"45.1.0.1", "46.1.0.77"}, SkipExcluded, false, false},
	}
	for _, profile := range []string{ProfileDefault, ProfileSeed} {
		for _, tt := range tests {
			clk := &fakeClock{t: at("10:00:00")}
			e := newTestEngine(t, clk, func(c *Config) {
				c.Profile, c.FrontDoor = profile, front
				c.Allow = []Rule{{Name: "partner.com"}}
				c.AllowNets = []netip.Prefix{netip.MustParsePrefix("46.1.0.0/30")}
			})
			e.SetPolicy(e.policy.Load().WithIntel(NewIntel(nil, list)))
			v := e.Observe(&Observation{Name: tt.name, Chain: tt.chain, Addrs: addrs(tt.answer...), MinTTL: 60})
			if v.Skip != tt.skip || (v.Reasons&ReasonKnownBadAddr != 0) != tt.reason || (v.Level == LevelFlagged) != tt.flagged {
				t.Errorf("%s, %s: Observe(%s, %v) = %+v (reasons %s), want skip %s, known_bad_addr %v, flagged %v",
					profile, tt.desc, tt.name, tt.answer, v, v.Reasons, tt.skip, tt.reason, tt.flagged)
			}
			if _, held := e.Held(tt.name); held != tt.flagged {
				t.Errorf("%s, %s: Held(%s) = %v, want %v", profile, tt.desc, tt.name, held, tt.flagged)
			}
		}
	}
}

// TestKnownBadAddrReload checks that a new address list counts the
// addresses of the names already tracked against it, and that an emptied
// list takes the reason away.
func TestKnownBadAddrReload(t *testing.T) {
	clk := &fakeClock{t: at("10:00:00")}
	e := newTestEngine(t, clk, func(c *Config) { c.Profile = ProfileDefault })
	answer := &Observation{Name: "c2.quiet-flux.com", Addrs: addrs("45.1.0.1", "46.1.0.1"), MinTTL: 60}
	if v := e.Observe(answer); v.Level != LevelNone || v.Reasons != 0 {
		t.Fatalf("before the list: %+v (reasons %s)", v, v.Reasons)
	}
	base := e.policy.Load()
	e.SetPolicy(base.WithIntel(NewIntel(nil, []netip.Prefix{netip.MustParsePrefix("45.1.0.1/32")})))
	clk.add(time.Second)
	if v := e.Observe(answer); v.Level != LevelNone || v.Reasons != ReasonKnownBadAddr {
		t.Errorf("one address listed: %+v (reasons %s), want known_bad_addr alone, not flagged", v, v.Reasons)
	}
	e.SetPolicy(base.WithIntel(NewIntel(nil, []netip.Prefix{netip.MustParsePrefix("45.1.0.0/16"), netip.MustParsePrefix("46.1.0.0/16")})))
	clk.add(time.Second)
	if v := e.Observe(answer); v.Level != LevelFlagged || v.Reasons != ReasonKnownBadAddr {
		t.Errorf("both listed: %+v (reasons %s), want flagged on known_bad_addr", v, v.Reasons)
	}
	e.SetPolicy(base)
	clk.add(time.Second)
	if v := e.Observe(answer); v.Reasons&ReasonKnownBadAddr != 0 || v.HoldLeft == 0 {
		t.Errorf("list emptied: %+v (reasons %s), want held without known_bad_addr", v, v.Reasons)
	}
}

// TestAddrSet checks the prefix look-up, IPv4 and IPv6, at every length.
func TestAddrSet(t *testing.T) {
	s := newAddrSet([]netip.Prefix{
		netip.MustParsePrefix("45.1.0.1/32"), netip.MustParsePrefix("46.1.0.0/23"),
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db9::/32"),
		netip.MustParsePrefix("2a00::1/128"),
	})
	tests := []struct {
		addr string
		want bool
	}{
		{"45.1.0.1", true}, {"45.1.0.2", false}, {"46.1.1.255", true}, {"46.1.2.0", false},
		{"10.255.0.1", true}, {"11.0.0.1", false}, {"2001:db9:ffff::1", true}, {"2001:db8::1", false},
		{"2a00::1", true}, {"2a00::2", false}, {"::ffff:45.1.0.1", true}, {"::2d01:1", false},
	}
	for _, tt := range tests {
		if got := s.has(netip.MustParseAddr(tt.addr).Unmap().As16()); got != tt.want {
			t.Errorf("has(%s) = %v, want %v", tt.addr, got, tt.want)
		}
	}
	if newAddrSet(nil) != nil {
		t.Error("an empty list makes a set")
	}
}
