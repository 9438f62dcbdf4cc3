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
			for _, h := range e.HeldNames(false) {
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

// TestAppendAddrs checks the addresses AppendAddrs gives of the held
// names: those of a held exact name within the window, unmapped; none for
// a registered domain or a rule.
func TestAppendAddrs(t *testing.T) {
	flagged := []string{"45.0.0.1", "45.0.0.2", "45.0.0.3", "45.0.0.4", "45.0.0.5"}
	// flag has e flag name with the seed profile's answers, after extra.
	flag := func(e *Engine, clk *fakeClock, name string, extra ...string) {
		for _, set := range [][]string{extra, flagged[:2], flagged[2:4], flagged[4:]} {
			if len(set) > 0 {
				e.Observe(&Observation{Name: name, Client: netip.MustParseAddr("10.0.0.1"), Addrs: addrs(set...)})
			}
			clk.add(time.Second)
		}
	}
	tests := []struct {
		name string
		mod  func(*Config)
		feed func(e *Engine, clk *fakeClock)
		want map[string][]string // held name → its addresses, sorted
	}{
		{"held name", nil, func(e *Engine, clk *fakeClock) { flag(e, clk, "a.evil.tk") },
			map[string][]string{"a.evil.tk": flagged}},
		{"IPv4-mapped and IPv6", nil, func(e *Engine, clk *fakeClock) {
			flag(e, clk, "a.evil.tk", "::ffff:45.0.0.9", "2a05:1::9")
		}, map[string][]string{"a.evil.tk": append([]string{"2a05:1::9", "45.0.0.9"}, flagged...)}},
		{"private address: never evidence", nil, func(e *Engine, clk *fakeClock) {
			flag(e, clk, "a.evil.tk", "10.1.2.3", "192.168.0.1")
		}, map[string][]string{"a.evil.tk": flagged}},
		{"address past the window left out", func(c *Config) { c.Window = time.Minute }, func(e *Engine, clk *fakeClock) {
			e.Observe(&Observation{Name: "a.evil.tk", Client: netip.MustParseAddr("10.0.0.1"), Addrs: addrs("45.0.0.9")})
			clk.add(2 * time.Minute)
			flag(e, clk, "a.evil.tk")
		}, map[string][]string{"a.evil.tk": flagged}},
		{"deny rule: none", func(c *Config) { c.Deny = []Rule{{Name: "bad.example"}} }, func(e *Engine, clk *fakeClock) {
			flag(e, clk, "a.evil.tk")
		}, map[string][]string{"a.evil.tk": flagged, "bad.example": nil}},
		{"registered domain: none", func(c *Config) { c.Profile = ProfileDefault }, func(e *Engine, clk *fakeClock) {
			for i, a := range answers(8, 2, 200, 200) {
				clk.add(30 * time.Second)
				e.Observe(&Observation{Name: fmt.Sprintf("x%d.evil-wild.com", i), Addrs: a, MinTTL: 30})
			}
		}, map[string][]string{"evil-wild.com": nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &fakeClock{t: at("10:00:00")}
			e := newTestEngine(t, clk, tt.mod)
			tt.feed(e, clk)
			got := map[string][]string{}
			for _, h := range e.HeldNames(false) {
				var ss []string
				if !h.Subdomains {
					for _, a := range e.AppendAddrs(nil, h.Name) {
						ss = append(ss, a.String())
					}
				}
				slices.Sort(ss)
				got[h.Name] = ss
			}
			for name, want := range tt.want {
				want = slices.Sorted(slices.Values(want))
				if g, ok := got[name]; !ok || !slices.Equal(g, want) {
					t.Errorf("%s: addresses %q (held %v), want %q", name, g, ok, want)
				}
			}
			if len(got) != len(tt.want) {
				t.Errorf("held %v; want %d names", got, len(tt.want))
			}
		})
	}
}

// TestHeldNamesAllowExceptions checks which allow rules HeldNames gives
// as exceptions: those under a held domain or deny rule, and, when the
// addresses are asked for (rpz-ip triggers block by address), all of them.
func TestHeldNamesAllowExceptions(t *testing.T) {
	tests := []struct {
		name  string
		allow []string
		deny  []string
		addrs bool
		want  []string
	}{
		{"no covering rule", []string{"partner.example"}, nil, false, nil},
		{"under a deny rule", []string{"ok.bad.example", "partner.example"}, []string{"bad.example"}, false, []string{"ok.bad.example"}},
		{"with addresses, every allow rule", []string{"ok.bad.example", "partner.example"}, []string{"bad.example"}, true,
			[]string{"ok.bad.example", "partner.example"}},
		{"with addresses, nothing held", []string{"partner.example"}, nil, true, []string{"partner.example"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &fakeClock{t: at("10:00:00")}
			e := newTestEngine(t, clk, func(c *Config) {
				for _, n := range tt.allow {
					c.Allow = append(c.Allow, Rule{Name: n})
				}
				for _, n := range tt.deny {
					c.Deny = append(c.Deny, Rule{Name: n})
				}
			})
			var got []string
			for _, h := range e.HeldNames(tt.addrs) {
				if h.Allowed {
					got = append(got, h.Name)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("exceptions %q, want %q", got, tt.want)
			}
		})
	}
}

// TestHeldAskedNotEvicted: a held name still asked for (answered with the
// hold, never going upstream) is not evicted by a flood of names flagged
// after it; one no longer asked for goes first.
func TestHeldAskedNotEvicted(t *testing.T) {
	for _, asked := range []bool{false, true} {
		t.Run(fmt.Sprintf("asked=%v", asked), func(t *testing.T) {
			clk := &fakeClock{t: at("10:00:00")}
			// 100 names a shard: none so small that the decoys of one
			// second fill it.
			e := newTestEngine(t, clk, func(c *Config) { c.MaxNames = 6400 })
			flag := func(name string, net byte) {
				for i := range 3 {
					e.Observe(&Observation{Name: name, Addrs: addrs(fmt.Sprintf("45.%d.%d.1", net, i), fmt.Sprintf("46.%d.%d.1", net, i)), MinTTL: 60})
				}
			}
			flag("c2.evil.tk", 0)
			for i := range 20000 {
				if i%100 == 0 {
					clk.add(time.Second)
					if asked {
						e.HeldAsked("c2.evil.tk")
					}
				}
				flag(fmt.Sprintf("d%d.decoy.tk", i), byte(i))
			}
			if _, held := e.Held("c2.evil.tk"); held != asked {
				t.Errorf("held %v after 20,000 names flagged, want %v", held, asked)
			}
		})
	}
}

// TestHeldPassesLeaveRepeats checks that the passes over the held names
// (Flagged, HeldNames) leave the repeats other names' slots hold
// uncounted, a miss to memory each, and find what they would with every
// repeat counted in: a held name's repeats move neither its last seen nor
// its hold.
func TestHeldPassesLeaveRepeats(t *testing.T) {
	clk := &fakeClock{t: at("10:00:00")}
	e := newTestEngine(t, clk, nil)
	client := netip.MustParseAddr("10.0.0.1")
	observe := func(name string, set ...string) {
		e.Observe(&Observation{Name: name, Client: client, Addrs: addrs(set...), MinTTL: 30, LevelOnly: true})
	}
	for _, set := range [][]string{{"45.0.0.1", "45.0.0.2"}, {"45.0.0.3", "45.0.0.4"}, {"45.0.0.5"}, {"45.0.0.5"}} {
		observe("a.evil.tk", set...) // flagged by the third, the fourth a repeat
	}
	clk.add(time.Minute)
	observe("quiet.example.com", "93.184.215.14")
	clk.add(time.Second)
	observe("quiet.example.com", "93.184.215.14") // a repeat, the next second
	if slotRepeats(e.st, "a.evil.tk") != 1 || slotRepeats(e.st, "quiet.example.com") != 1 {
		t.Fatalf("repeats in the slots: %d and %d, want 1 and 1", slotRepeats(e.st, "a.evil.tk"), slotRepeats(e.st, "quiet.example.com"))
	}
	names, total := e.Flagged(10)
	held := e.HeldNames(false)
	if slotRepeats(e.st, "a.evil.tk") != 1 || slotRepeats(e.st, "quiet.example.com") != 1 {
		t.Error("a pass over the held names counted repeats in")
	}
	e.Report() // counts every repeat in
	if slotRepeats(e.st, "a.evil.tk") != 0 || slotRepeats(e.st, "quiet.example.com") != 0 {
		t.Fatal("Report left repeats uncounted")
	}
	if n, tot := e.Flagged(10); !slices.Equal(n, names) || tot != total || total != 1 {
		t.Errorf("Flagged: %v of %d before the repeats were counted in, %v of %d after", names, total, n, tot)
	}
	if h := e.HeldNames(false); !slices.Equal(h, held) || len(held) != 1 {
		t.Errorf("HeldNames: %+v before the repeats were counted in, %+v after", held, h)
	}
}
