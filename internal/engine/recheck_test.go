package engine

import (
	"net/netip"
	"testing"
	"time"
)

// TestRecheckAfterAllowChange checks that a held name whose CNAME chain
// or networks an allow comes to cover is released by its next answer:
// that answer is read rather than replaced by the hold, once after each
// change of the allows, and releases the name only when the allows cover
// it. Other changes of the policy leave the hold alone.
func TestRecheckAfterAllowChange(t *testing.T) {
	const name = "a.evil.tk"
	chain := []string{"edge.cdn-x.net"}
	answer := func() *Observation {
		return &Observation{Name: name, Client: netip.MustParseAddr("10.0.0.1"), Addrs: addrs("45.0.0.1", "45.0.0.2"), Chain: chain}
	}
	tests := []struct {
		name     string
		policy   *Policy
		read     bool // the next query's answer is read
		skip     Skip // of that answer
		released bool
	}{
		{"its chain allowed", NewPolicy([]Rule{{Name: "cdn-x.net"}}, nil, nil), true, SkipAllowed, true},
		{"its networks allowed", NewPolicy(nil, nil, []netip.Prefix{netip.MustParsePrefix("45.0.0.0/24")}), true, SkipAllowed, true},
		{"another name allowed", NewPolicy([]Rule{{Name: "other.example"}}, nil, nil), true, SkipNone, false},
		{"allows unchanged", NewPolicy(nil, []Rule{{Name: "bad.example"}}, nil), false, SkipNone, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &fakeClock{t: at("10:00:00")}
			e := newTestEngine(t, clk, nil)
			for _, set := range [][]string{{"45.0.0.1", "45.0.0.2"}, {"45.0.0.3", "45.0.0.4"}, {"45.0.0.5"}} {
				o := answer()
				o.Addrs = addrs(set...)
				e.Observe(o)
				clk.add(time.Second)
			}
			if _, held := e.HeldAsked(name); !held {
				t.Fatal("not held before the change")
			}
			e.SetPolicy(tt.policy)
			if _, held := e.Held(name); !held {
				t.Error("not held for the report and the zone while its recheck waits")
			}
			if _, held := e.HeldAsked(name); held == tt.read {
				t.Fatalf("HeldAsked = %v, want %v", held, !tt.read)
			}
			if !tt.read {
				return
			}
			v := e.Observe(answer())
			if v.Skip != tt.skip || tt.skip == SkipNone && v.Level != LevelFlagged {
				t.Errorf("the answer read: skip %v, level %v; want skip %v, flagged unless skipped", v.Skip, v.Level, tt.skip)
			}
			if e.recheck.Load() != nil {
				t.Error("the rechecks stay after the only one ended: every answer read looks them up")
			}
			_, held := e.HeldAsked(name)
			if held == tt.released {
				t.Errorf("held after its answer was read: %v, want %v", held, !tt.released)
			}
			if tracked := e.Len() > 0; tracked == tt.released {
				t.Errorf("tracked after its answer was read: %v, want %v", tracked, !tt.released)
			}
		})
	}
}
