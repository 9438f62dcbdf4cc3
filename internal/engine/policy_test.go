package engine

import (
	"net/netip"
	"testing"
	"time"
)

func TestPolicy(t *testing.T) {
	clk := &fakeClock{t: at("10:00:00")}
	e := newTestEngine(t, clk, func(c *Config) {
		c.Allow = []Rule{
			{Name: "partner.example"},
			{Name: "drill.example", Until: at("11:00:00")},
			{Name: "cdn-edge.net"},
			{Name: "evil.tk", Until: at("10:30:00")}, // an allow wins over a deny while it lasts
		}
		c.Deny = []Rule{{Name: "evil.tk"}, {Name: "bad.example", Until: at("12:00:00")}}
		c.AllowNets = []netip.Prefix{netip.MustParsePrefix("13.32.0.0/15")}
	})
	flux := addrs("45.0.0.1", "46.0.0.1", "47.0.0.1", "48.0.0.1", "49.0.0.1")
	tests := []struct {
		at      string
		name    string
		chain   []string
		addrs   []netip.Addr
		skip    Skip
		denied  bool
		blocked bool // Held
	}{
		{"10:00:00", "api.partner.example", nil, flux, SkipAllowed, false, false},
		{"10:00:00", "www.drill.example", nil, flux, SkipAllowed, false, false},
		{"11:00:00", "www.drill.example", nil, flux, SkipNone, false, false}, // allow expired
		{"10:00:00", "www.shop.example", []string{"shop.cdn-edge.net"}, flux, SkipAllowed, false, false},
		{"10:00:00", "img.other.example", nil, addrs("13.32.1.1", "13.33.255.1"), SkipAllowed, false, false},
		{"10:00:00", "img.other.example", nil, addrs("13.32.1.1", "45.0.0.1"), SkipNone, false, false},
		{"10:00:00", "img.lan.example", nil, addrs("13.32.1.1", "10.0.0.1"), SkipAllowed, false, false}, // a private address is no evidence
		{"10:00:00", "printer.lan.example", nil, addrs("10.0.0.2"), SkipNoAddrs, false, false},
		{"10:00:00", "c2.evil.tk", nil, flux, SkipAllowed, false, false},
		{"10:31:00", "c2.evil.tk", nil, flux, SkipNone, true, true},
		{"11:00:00", "x.bad.example", nil, flux, SkipNone, true, true},
		{"12:00:00", "x.bad.example", nil, addrs("45.0.0.1"), SkipNone, false, false},
	}
	for i, tt := range tests {
		clk.set(tt.at)
		v := e.Observe(&Observation{Name: tt.name, Chain: tt.chain, Addrs: tt.addrs})
		if v.Skip != tt.skip || (v.Reasons&ReasonDenied != 0) != tt.denied {
			t.Errorf("%d: Observe(%s at %s) = %+v, want skip %s denied %v", i, tt.name, tt.at, v, tt.skip, tt.denied)
		}
		if _, held := e.Held(tt.name); held != tt.blocked {
			t.Errorf("%d: Held(%s at %s) = %v, want %v", i, tt.name, tt.at, held, tt.blocked)
		}
	}
}

func TestSetPolicy(t *testing.T) {
	clk := &fakeClock{t: at("10:00:00")}
	e := newTestEngine(t, clk, nil)
	for i := range 5 {
		clk.add(time.Second)
		e.Observe(&Observation{Name: "c2.evil.tk", Addrs: addrs("45.0.0.1", netip.AddrFrom4([4]byte{46, byte(i), 0, 1}).String())})
	}
	if _, held := e.Held("c2.evil.tk"); !held {
		t.Fatal("not flagged")
	}
	e.SetPolicy(NewPolicy([]Rule{{Name: "evil.tk"}}, nil, nil))
	if _, held := e.Held("c2.evil.tk"); held || e.Len() != 0 {
		t.Errorf("allowed name still held or tracked (%d names)", e.Len())
	}
}
