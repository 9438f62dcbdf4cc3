package engine

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// TestHeldNames checks what HeldNames exports: held names most recently
// seen first, registered domains with their subdomains, deny rules in
// force, never an allowed name, and allow rules under a covering entry as
// exceptions; and that an entry leaves when its hold ends.
func TestHeldNames(t *testing.T) {
	// flag has e flag name with the seed profile's four answers.
	flag := func(e *Engine, clk *fakeClock, name string) {
		for _, set := range [][]string{{"45.0.0.1", "45.0.0.2"}, {"45.0.0.3", "45.0.0.4"}, {"45.0.0.5"}} {
			e.Observe(&Observation{Name: name, Client: netip.MustParseAddr("10.0.0.1"), Addrs: addrs(set...)})
			clk.add(time.Second)
		}
	}
	tests := []struct {
		name  string
		mod   func(*Config)
		feed  func(e *Engine, clk *fakeClock)
		after time.Duration // from the last answer to the call
		want  []string      // "*" marks Subdomains, "!" Allowed
	}{
		{"nothing held", nil, func(*Engine, *fakeClock) {}, 0, nil},
		{"most recent first", nil, func(e *Engine, clk *fakeClock) {
			flag(e, clk, "a.evil.tk")
			flag(e, clk, "b.evil.tk")
		}, time.Minute, []string{"b.evil.tk", "a.evil.tk"}},
		{"hold ended", func(c *Config) { c.Hold = 10 * time.Minute }, func(e *Engine, clk *fakeClock) {
			flag(e, clk, "a.evil.tk")
		}, 10 * time.Minute, nil},
		{"one hold ended", func(c *Config) { c.Hold = 10 * time.Minute }, func(e *Engine, clk *fakeClock) {
			flag(e, clk, "a.evil.tk")
			clk.add(5 * time.Minute)
			flag(e, clk, "b.evil.tk")
		}, 7 * time.Minute, []string{"b.evil.tk"}},
		{"deny rules, expired one left out", func(c *Config) {
			c.Deny = []Rule{{Name: "bad.example"}, {Name: "old.example", Until: at("09:00:00")}, {Name: "a.bad.net"}}
		}, func(e *Engine, clk *fakeClock) { flag(e, clk, "a.evil.tk") }, 0,
			[]string{"a.evil.tk", "*a.bad.net", "*bad.example"}},
		{"allowed: left out, or an exception under a covering rule", func(c *Config) {
			c.Deny = []Rule{{Name: "bad.example"}, {Name: "partner.net"}}
			c.Allow = []Rule{{Name: "www.bad.example"}, {Name: "partner.net"}, {Name: "ok.example"}}
		}, func(e *Engine, clk *fakeClock) {}, 0, []string{"*bad.example", "!*www.bad.example"}},
		{"registered domain", func(c *Config) { c.Profile = ProfileDefault }, func(e *Engine, clk *fakeClock) {
			for i, a := range answers(8, 2, 200, 200) {
				clk.add(30 * time.Second)
				e.Observe(&Observation{Name: fmt.Sprintf("x%d.evil-wild.com", i), Addrs: a, MinTTL: 30})
			}
		}, 0, []string{"*evil-wild.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &fakeClock{t: at("10:00:00")}
			e := newTestEngine(t, clk, tt.mod)
			tt.feed(e, clk)
			clk.add(tt.after)
			var got []string
			for _, h := range e.HeldNames() {
				s := h.Name
				if h.Subdomains {
					s = "*" + s
				}
				if h.Allowed {
					s = "!" + s
				}
				got = append(got, s)
				if !h.Last.IsZero() && !h.Until.After(clk.t) {
					t.Errorf("%s: held until %v, before now %v", h.Name, h.Until, clk.t)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("HeldNames = %q, want %q", got, tt.want)
			}
		})
	}
}
