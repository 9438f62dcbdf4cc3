package engine

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// TestIndicators checks the held names as indicators: times, score,
// reasons, addresses and ASNs, most recent first, and that neither an
// ended hold, a deny rule nor an allowed name is one.
func TestIndicators(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		feed func(e *Engine, clk *fakeClock)
		want []Indicator
	}{
		{"none", nil, func(*Engine, *fakeClock) {}, nil},
		{"two names, an ended hold and a deny rule", func(c *Config) {
			c.Hold = 10 * time.Minute
			c.Deny = []Rule{{Name: "bad.example"}}
			c.ASN = func(a netip.Addr) uint32 { return uint32(a.As4()[3]%2) * 64500 }
		}, func(e *Engine, clk *fakeClock) {
			for _, name := range []string{"old.evil.tk", "a.evil.tk", "b.evil.tk"} {
				for _, set := range [][]string{{"45.0.0.1", "45.0.0.2"}, {"45.0.0.3", "45.0.0.4"}, {"45.0.0.5"}} {
					e.Observe(&Observation{Name: name, Client: netip.MustParseAddr("10.0.0.1"), Addrs: addrs(set...)})
					clk.add(time.Second)
				}
				if name == "old.evil.tk" {
					clk.add(10 * time.Minute)
				}
			}
		}, []Indicator{
			{Name: "b.evil.tk", FirstSeen: at("10:10:06"), LastSeen: at("10:10:08"), HoldUntil: at("10:20:08"), Score: 2,
				Reasons: ReasonSuspiciousTLD | ReasonShortSLD, Addresses: []string{"45.0.0.1", "45.0.0.2", "45.0.0.3", "45.0.0.4", "45.0.0.5"}, ASNs: []uint32{64500}},
			{Name: "a.evil.tk", FirstSeen: at("10:10:03"), LastSeen: at("10:10:05"), HoldUntil: at("10:20:05"), Score: 2,
				Reasons: ReasonSuspiciousTLD | ReasonShortSLD, Addresses: []string{"45.0.0.1", "45.0.0.2", "45.0.0.3", "45.0.0.4", "45.0.0.5"}, ASNs: []uint32{64500}},
		}},
		{"registered domain", func(c *Config) { c.Profile = ProfileDefault }, func(e *Engine, clk *fakeClock) {
			for i, a := range answers(8, 2, 200, 200) {
				clk.add(30 * time.Second)
				e.Observe(&Observation{Name: fmt.Sprintf("x%d.evil-wild.com", i), Addrs: a, MinTTL: 30})
			}
		}, nil}, // checked below: the default profile's score is the scoring's business
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &fakeClock{t: at("10:00:00")}
			e := newTestEngine(t, clk, tt.mod)
			tt.feed(e, clk)
			got := e.Indicators()
			if tt.name == "registered domain" {
				if len(got) != 1 || got[0].Name != "*.evil-wild.com" || got[0].Reasons&ReasonRegisteredDomain == 0 || len(got[0].Addresses) != 16 || got[0].ASNs != nil {
					t.Errorf("got %+v", got)
				}
				return
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d indicators, want %d: %+v", len(got), len(tt.want), got)
			}
			for i := range got {
				g, w := got[i], tt.want[i]
				if g.Name != w.Name || !g.FirstSeen.Equal(w.FirstSeen) || !g.LastSeen.Equal(w.LastSeen) || !g.HoldUntil.Equal(w.HoldUntil) ||
					g.Score != w.Score || g.Reasons != w.Reasons || !slices.Equal(g.Addresses, w.Addresses) || !slices.Equal(g.ASNs, w.ASNs) {
					t.Errorf("indicator %d:\ngot  %+v\nwant %+v", i, g, w)
				}
			}
		})
	}
}
