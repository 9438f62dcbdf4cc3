package engine

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"
)

func newSharingEngine(t *testing.T, clk *fakeClock, mod func(*Config)) *Engine {
	return newTestEngine(t, clk, func(c *Config) {
		c.Share = true
		if mod != nil {
			mod(c)
		}
	})
}

// exchange hands what each engine queued to every other, as a fleet's
// Redis would, and returns how many names moved.
func exchange(t *testing.T, fleet ...*Engine) int {
	t.Helper()
	n := 0
	for i, from := range fleet {
		out := from.Outgoing(1 << 20)
		n += len(out)
		for j, to := range fleet {
			if i == j {
				continue
			}
			for k := range out {
				if _, err := to.Merge(&out[k]); err != nil {
					t.Fatalf("merge %+v: %v", out[k], err)
				}
			}
		}
	}
	return n
}

// TestFleetDetectsOnTheUnion spreads a flux name's answers over three
// replicas in turn, exchanging every second, and checks that they flag it
// at the same answer as one engine that sees them all. Counting rows, with
// a min_queries that binds after min_ips, the replicas share rows.
func TestFleetDetectsOnTheUnion(t *testing.T) {
	for _, tc := range []struct {
		name, profile, count string
		minQueries           int
	}{
		{"seed", ProfileSeed, CountAnswers, 3},
		{"default", ProfileDefault, CountAnswers, 3},
		{"seed, rows", ProfileSeed, CountRows, 12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := &fakeClock{t: at("10:00:00")}
			mod := func(c *Config) { c.Profile, c.QueryCount, c.MinQueries = tc.profile, tc.count, tc.minQueries }
			alone := newTestEngine(t, clk, mod)
			fleet := []*Engine{newSharingEngine(t, clk, mod), newSharingEngine(t, clk, mod), newSharingEngine(t, clk, mod)}
			flaggedAlone, flaggedFleet := -1, -1
			for i := range 40 {
				clk.add(time.Second)
				o := Observation{Name: "cdn-update.xyz", Client: netip.AddrFrom4([4]byte{10, 0, 0, byte(1 + i%7)}), MinTTL: 60,
					Addrs: addrs(fmt.Sprintf("%d.%d.7.1", 11+i*13%200, i*7%250), fmt.Sprintf("%d.%d.9.1", 23+i*29%200, i*3%250))}
				if alone.Observe(&o).Level == LevelFlagged && flaggedAlone < 0 {
					flaggedAlone = i
				}
				fleet[i%3].Observe(&o)
				exchange(t, fleet...)
				if flaggedFleet < 0 {
					for _, e := range fleet {
						if _, held := e.Held("cdn-update.xyz"); held {
							flaggedFleet = i
						}
					}
				}
			}
			if flaggedAlone < 0 {
				t.Fatal("the engine that saw every answer never flagged the name")
			}
			if flaggedFleet != flaggedAlone {
				t.Errorf("the fleet flagged the name at answer %d, one engine at %d", flaggedFleet, flaggedAlone)
			}
			for i, e := range fleet {
				if _, held := e.Held("cdn-update.xyz"); !held {
					t.Errorf("replica %d does not hold the name", i)
				}
			}
		})
	}
}

// TestFleetHolds checks that a hold reaches another replica with its end,
// and what Merge refuses or ignores.
func TestFleetHolds(t *testing.T) {
	clk := &fakeClock{t: at("10:00:00")}
	until := clk.t.Add(30 * time.Minute)
	tests := []struct {
		name   string
		shared Shared
		err    error
		query  string // the name to ask Held about
		held   bool
		skip   Skip
	}{
		{"held name", Shared{Name: "evil.tk", HeldUntil: until}, nil, "evil.tk", true, SkipNone},
		{"held domain covers its names", Shared{Name: "*.evil.xyz", HeldUntil: until}, nil, "a.b.evil.xyz", true, SkipNone},
		{"allowed name stays allowed", Shared{Name: "ok.example.org", HeldUntil: until}, nil, "ok.example.org", false, SkipAllowed},
		{"under an allowed name", Shared{Name: "www.ok.example.org", HeldUntil: until}, nil, "www.ok.example.org", false, SkipAllowed},
		{"excluded name", Shared{Name: "x.cloudfront.net", HeldUntil: until}, nil, "x.cloudfront.net", false, SkipExcluded},
		{"hold already over", Shared{Name: "past.tk", HeldUntil: clk.t.Add(-time.Second)}, nil, "past.tk", false, SkipNoAddrs},
		{"not normalized", Shared{Name: "Evil.TK.", HeldUntil: until}, ErrNotShared, "evil.tk", false, SkipNone},
		{"empty", Shared{HeldUntil: until}, ErrNotShared, "", false, SkipNone},
		{"too long", Shared{Name: string(make([]byte, 2000)), HeldUntil: until}, ErrNotShared, "", false, SkipNone},
		{"domain that is not registered", Shared{Name: "*.a.b.evil.xyz", HeldUntil: until}, ErrNotShared, "a.b.evil.xyz", false, SkipNone},
		{"domain not held", Shared{Name: "*.evil.xyz"}, ErrNotShared, "a.evil.xyz", false, SkipNone},
		{"public suffix", Shared{Name: "*.co.uk", HeldUntil: until}, ErrNotShared, "x.co.uk", false, SkipNone},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newSharingEngine(t, clk, func(c *Config) {
				c.Profile = ProfileDefault
				c.Allow = []Rule{{Name: "ok.example.org"}}
			})
			v, err := e.Merge(&tc.shared)
			if !errors.Is(err, tc.err) || v.Skip != tc.skip {
				t.Fatalf("Merge = %+v, %v; want skip %v, error %v", v, err, tc.skip, tc.err)
			}
			hv, held := e.Held(tc.query)
			if held != tc.held {
				t.Fatalf("Held(%q) = %v, want %v", tc.query, held, tc.held)
			}
			if !held {
				return
			}
			if hv.Level != LevelFlagged || hv.Reasons&ReasonFleet == 0 || hv.HoldLeft != 30*time.Minute {
				t.Errorf("Held(%q) = %+v, want flagged by the fleet for 30m", tc.query, hv)
			}
			if out := e.Outgoing(10); len(out) != 0 {
				t.Errorf("a merged hold is shared again: %+v", out)
			}
		})
	}
}

// TestFleetHoldsDomainSeenHere merges the fleet's hold of a registered
// domain that this replica has seen through one name: the domain, and
// every name under it, are held and flagged by the fleet.
func TestFleetHoldsDomainSeenHere(t *testing.T) {
	clk := &fakeClock{t: at("10:00:00")}
	e := newSharingEngine(t, clk, func(c *Config) { c.Profile = ProfileDefault })
	e.Observe(&Observation{Name: "www.evil.xyz", Addrs: addrs("45.0.0.1")})
	if _, err := e.Merge(&Shared{Name: "*.evil.xyz", HeldUntil: clk.t.Add(30 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"www.evil.xyz", "a.evil.xyz"} {
		if v, held := e.Held(name); !held || v.Level != LevelFlagged || v.Reasons&ReasonFleet == 0 {
			t.Errorf("Held(%q) = %+v, %v; want flagged by the fleet", name, v, held)
		}
	}
	clk.add(time.Second)
	if v := e.Observe(&Observation{Name: "www.evil.xyz", Addrs: addrs("45.0.0.1")}); v.Level != LevelFlagged {
		t.Errorf("an answer under the held domain: %+v, want flagged", v)
	}
}

// TestFleetHoldIsCappedAndEnds checks that a replica holds a name no
// longer than its own hold, and that the hold ends.
func TestFleetHoldIsCappedAndEnds(t *testing.T) {
	clk := &fakeClock{t: at("10:00:00")}
	e := newSharingEngine(t, clk, func(c *Config) { c.Hold = 10 * time.Minute })
	if _, err := e.Merge(&Shared{Name: "evil.tk", HeldUntil: clk.t.Add(1000 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if v, _ := e.Held("evil.tk"); v.HoldLeft != 10*time.Minute {
		t.Errorf("held for %v, want the replica's own 10m", v.HoldLeft)
	}
	clk.add(10 * time.Minute)
	if _, held := e.Held("evil.tk"); held {
		t.Error("still held after the hold")
	}
}

// TestOutgoingBounded floods a sharing engine with new names while no
// fleet takes its news: the queue holds no more names than the engine
// tracks, and calls with a small limit take every shard's news in turn.
func TestOutgoingBounded(t *testing.T) {
	clk := &fakeClock{t: at("10:00:00")}
	e := newSharingEngine(t, clk, func(c *Config) { c.MaxNames = shards * 4 })
	for i := range shards * 40 {
		e.Observe(&Observation{Name: fmt.Sprintf("r%d.example.com", i), Addrs: addrs("93.184.216.1")})
	}
	queued := 0
	for _, sc := range e.scopes() {
		for i := range sc.st.shards {
			sh := &sc.st.shards[i]
			sh.mu.Lock()
			queued += len(sh.out)
			sh.mu.Unlock()
		}
	}
	if queued > e.Len() {
		t.Errorf("%d names queued, %d tracked", queued, e.Len())
	}
	seen := map[string]bool{}
	for range queued {
		for _, s := range e.Outgoing(shards / 2) {
			if seen[s.Name] {
				t.Fatalf("%s taken twice", s.Name)
			}
			seen[s.Name] = true
		}
	}
	if len(seen) != queued {
		t.Errorf("%d of %d queued names taken", len(seen), queued)
	}
}

// TestOutgoing checks what a replica shares of its own answers: a name's
// new addresses, then its queries and clients while it has MinIPs
// addresses or more; holds first; nothing more of a name with fewer after
// its first answer.
func TestOutgoing(t *testing.T) {
	clk := &fakeClock{t: at("10:00:00")}
	e := newSharingEngine(t, clk, nil)
	client := netip.MustParseAddr("10.0.0.1")
	observe := func(name string, client netip.Addr, ips ...string) {
		e.Observe(&Observation{Name: name, Client: client, Addrs: addrs(ips...), MinTTL: 30})
	}
	five := []string{"93.184.215.20", "93.184.215.21", "93.184.215.22", "93.184.215.23", "93.184.215.24"}
	observe("static.example.com", client, "93.184.215.14")
	observe("multi.example.com", client, five...)
	out := e.Outgoing(10)
	want := map[string]Shared{
		"static.example.com": {Name: "static.example.com", Addrs: addrs("93.184.215.14"), Clients: addrs("10.0.0.1"), Queries: 1, MinTTL: 30},
		"multi.example.com":  {Name: "multi.example.com", Addrs: addrs(five...), Clients: addrs("10.0.0.1"), Queries: 1, MinTTL: 30},
	}
	checkShared(t, "first answers", out, want)

	clk.add(time.Second)
	observe("static.example.com", netip.MustParseAddr("10.0.0.2"), "93.184.215.14")
	observe("multi.example.com", netip.MustParseAddr("10.0.0.2"), five...)
	observe("multi.example.com", client, five...)
	checkShared(t, "repeats", e.Outgoing(10), map[string]Shared{
		"multi.example.com": {Name: "multi.example.com", Clients: addrs("10.0.0.2"), Queries: 2, MinTTL: 30},
	})
	if out := e.Outgoing(10); len(out) != 0 {
		t.Errorf("shared twice: %+v", out)
	}

	// A flagged name's hold goes first, whatever the limit.
	for i := range 6 {
		clk.add(time.Second)
		observe("a.b", client, fmt.Sprintf("45.0.%d.1", i), fmt.Sprintf("46.0.%d.1", i))
	}
	for i := range 5 {
		observe(fmt.Sprintf("n%d.example.com", i), client, "93.184.216.1")
	}
	out = e.Outgoing(1)
	if len(out) != 1 || out[0].Name != "a.b" || out[0].HeldUntil.IsZero() || len(out[0].Addrs) != 12 {
		t.Fatalf("Outgoing(1) = %+v, want a.b's hold with its 12 addresses", out)
	}
	if out = e.Outgoing(10); len(out) != 5 {
		t.Errorf("then %d names, want the 5 left", len(out))
	}
}

func checkShared(t *testing.T, what string, got []Shared, want map[string]Shared) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: shared %+v, want %+v", what, got, want)
	}
	for _, s := range got {
		w, ok := want[s.Name]
		if !ok || fmt.Sprint(s) != fmt.Sprint(w) {
			t.Errorf("%s: shared %+v, want %+v", what, s, w)
		}
	}
}

// TestMergeDoesNotEcho checks that what a replica merges is neither
// shared again nor counted as its own.
func TestMergeDoesNotEcho(t *testing.T) {
	clk := &fakeClock{t: at("10:00:00")}
	e := newSharingEngine(t, clk, nil)
	s := Shared{Name: "x.example.com", Addrs: addrs("45.0.0.1", "46.0.0.1", "10.0.0.1"), Clients: addrs("10.9.9.9"), Queries: 4, MinTTL: 20}
	v, err := e.Merge(&s)
	if err != nil || v.UniqueIPs != 2 || v.Queries != 4 || v.Clients != 1 {
		t.Fatalf("Merge = %+v, %v; want 2 public addresses, 4 queries, 1 client", v, err)
	}
	if out := e.Outgoing(10); len(out) != 0 {
		t.Errorf("merged evidence shared again: %+v", out)
	}
}

// TestFleetSharesQueriesAndClients checks that what a replica's answers
// bring besides addresses reaches the others: a name's fixed answer asked
// by new clients counts their queries and clients on every replica, as on
// the one that answered.
func TestFleetSharesQueriesAndClients(t *testing.T) {
	clk := &fakeClock{t: at("10:00:00")}
	a, b := newSharingEngine(t, clk, nil), newSharingEngine(t, clk, nil)
	answer := addrs("45.0.0.1", "46.0.0.1", "47.0.0.1", "48.0.0.1", "49.0.0.1", "50.0.0.1")
	var va Verdict
	for i := range 6 {
		clk.add(time.Minute)
		va = a.Observe(&Observation{Name: "c2.evil.tk", Client: netip.AddrFrom4([4]byte{10, 0, 0, byte(1 + i)}), Addrs: answer, MinTTL: 30})
		exchange(t, a, b)
	}
	d, ok := b.Detail("c2.evil.tk")
	if !ok || d.Verdict.Queries != va.Queries || d.Verdict.Clients != va.Clients {
		t.Errorf("replica b counts %d queries and %d clients (found %v); a, which answered them, %d and %d",
			d.Verdict.Queries, d.Verdict.Clients, ok, va.Queries, va.Clients)
	}
	// Without an address, a share makes no entry.
	n := b.Len()
	if v, err := b.Merge(&Shared{Name: "other.evil.tk", Clients: addrs("10.0.0.9"), Queries: 5}); err != nil || v.Skip != SkipNoAddrs || b.Len() != n {
		t.Errorf("a share without an address for a name not tracked: %+v, %v, %d names (want %d)", v, err, b.Len(), n)
	}
}
