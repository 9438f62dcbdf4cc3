package engine

import (
	"net/netip"
	"reflect"
	"testing"
	"time"
)

// slotRepeats returns the repeats name's slot in st holds, not counted in
// its entry yet.
func slotRepeats(st *store, name string) int {
	sh, k := st.locate(name)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if s := sh.index.get(k); s != nil {
		return int(s.recent.repeats)
	}
	return 0
}

// queriesOf returns the query count of name's entry in e's window.
func queriesOf(t *testing.T, e *Engine, name string) int {
	t.Helper()
	sh, k := e.st.locate(name)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	en := sh.lookup(k)
	if en == nil {
		t.Fatalf("%s is not tracked", name)
	}
	q, _ := en.queries(e.clock()/e.width, e.width)
	return q
}

// TestLevelOnlyRepeats drives the same answers through two engines, one asked
// for brief verdicts, and checks that they agree on every level and on
// the state, and that the brief one counts the answers that repeat the
// last one in its slot, without judging them again, only when that
// cannot change the level: from the same client, in the same second for a
// flagged name, in the same query-count bucket (5 minutes here) for others.
// Answers with a print (Observation.Print) repeat alike.
func TestLevelOnlyRepeats(t *testing.T) {
	for _, printed := range []bool{false, true} {
		t.Run(map[bool]string{false: "fingerprints", true: "prints"}[printed], func(t *testing.T) {
			testLevelOnlyRepeats(t, printed)
		})
	}
}

func testLevelOnlyRepeats(t *testing.T, printed bool) {
	clk := &fakeClock{t: at("10:00:00")}
	full, brief := newTestEngine(t, clk, nil), newTestEngine(t, clk, nil)
	setA := addrs("45.1.0.1", "46.1.0.1", "47.1.0.1", "48.1.0.1", "49.1.0.1", "50.1.0.1")
	setB := addrs("51.1.0.1", "52.1.0.1", "53.1.0.1", "54.1.0.1", "55.1.0.1", "56.1.0.1")
	const flux, static = "x.evil.tk", "static.example.com" // 2 points of the seed rule's, and none
	sweep := func(e *Engine) { e.Sweep() }
	repolicy := func(e *Engine) { e.SetPolicy(e.policy.Load()) }
	steps := []struct {
		name    string
		after   time.Duration // before the step
		before  func(*Engine) // on both engines, before the step
		domain  string
		client  string // "" for none
		addrs   []netip.Addr
		ns      []string
		answers int
		fast    int // answers counted in the slot
		level   Level
		queries int
	}{
		{"first answer", 0, nil, flux, "10.0.0.1", setA, nil, 1, 0, LevelNone, 1},
		{"repeats before min_queries: judged, the third flags", 0, nil, flux, "10.0.0.1", setA, nil, 2, 0, LevelFlagged, 3},
		{"repeats once flagged: counted", 0, nil, flux, "10.0.0.1", setA, nil, 3, 3, LevelFlagged, 6},
		{"a new client: judged, then counted", 0, nil, flux, "10.0.0.2", setA, nil, 3, 2, LevelFlagged, 9},
		{"another answer: judged, then counted", 0, nil, flux, "10.0.0.2", setB, nil, 2, 1, LevelFlagged, 11},
		{"the next second: judged, then counted", time.Second, nil, flux, "10.0.0.2", setB, nil, 3, 2, LevelFlagged, 14},
		{"after a sweep, which keeps the last answers: counted", 0, sweep, flux, "10.0.0.2", setB, nil, 2, 2, LevelFlagged, 16},
		{"after a policy change: judged, then counted", 0, repolicy, flux, "10.0.0.2", setB, nil, 2, 1, LevelFlagged, 18},
		{"no client: counted", 0, nil, flux, "", setB, nil, 2, 2, LevelFlagged, 20},
		{"name servers in the answer: always judged", 0, nil, flux, "10.0.0.2", setB, []string{"ns1.evil.tk"}, 3, 0, LevelFlagged, 23},
		{"too few addresses for a candidate: counted", 0, nil, static, "10.0.0.1", addrs("93.184.215.14"), nil, 4, 3, LevelNone, 4},
		{"not flagged, the next second: counted", time.Second, nil, static, "10.0.0.1", addrs("93.184.215.14"), nil, 2, 2, LevelNone, 6},
		{"a minute on, another client: judged, then counted", time.Minute, nil, static, "10.0.0.2", addrs("93.184.215.14"), nil, 2, 1, LevelNone, 8},
		{"the next query-count bucket: judged, then counted", 5 * time.Minute, nil, static, "10.0.0.2", addrs("93.184.215.14"), nil, 2, 1, LevelNone, 10},
	}
	for _, s := range steps {
		clk.add(s.after)
		if s.before != nil {
			s.before(full)
			s.before(brief)
		}
		var client netip.Addr
		if s.client != "" {
			client = netip.MustParseAddr(s.client)
		}
		var print uint32
		if printed {
			print = uint32(s.addrs[0].As4()[0]) // one per set of addresses
		}
		var v Verdict
		for i := range s.answers {
			o := Observation{Name: s.domain, Client: client, Addrs: s.addrs, NS: s.ns, MinTTL: 30, Print: print}
			want := full.Observe(&o)
			o.LevelOnly = true
			v = brief.Observe(&o)
			if v.Level != want.Level || v.Prev != want.Prev || v.Skip != want.Skip {
				t.Fatalf("%s, answer %d: brief %s (from %s, skip %d), full %s (from %s, skip %d)",
					s.name, i+1, v.Level, v.Prev, v.Skip, want.Level, want.Prev, want.Skip)
			}
		}
		if got := slotRepeats(brief.st, s.domain); got != s.fast {
			t.Errorf("%s: %d answers counted in the slot, want %d", s.name, got, s.fast)
		}
		if slotRepeats(full.st, s.domain) != 0 {
			t.Errorf("%s: the full engine counted answers in the slot", s.name)
		}
		if v.Level != s.level {
			t.Errorf("%s: level %s, want %s", s.name, v.Level, s.level)
		}
		if q, want := queriesOf(t, brief, s.domain), queriesOf(t, full, s.domain); q != want || q != s.queries {
			t.Errorf("%s: %d queries, the full engine %d, want %d", s.name, q, want, s.queries)
		}
	}
	// A report counts the repeats in.
	if got, want := brief.Report(), full.Report(); len(got) == 0 || !reflect.DeepEqual(got, want) {
		t.Errorf("reports differ:\nbrief %+v\nfull  %+v", got, want)
	}
}

// TestPrecheck checks which queries Precheck counts, before they are answered
// or as their answers, of a print, are to be read, that the queries it
// counts reach the name's state, and which names it finds new.
func TestPrecheck(t *testing.T) {
	benign := addrs("45.1.0.1", "46.1.0.1") // fewer than min_ips: steady at once
	fluxSet := addrs("45.1.0.1", "46.1.0.1", "47.1.0.1", "48.1.0.1", "49.1.0.1", "50.1.0.1")
	// With the seed profile, x.evil.tk scores 2 (its TLD and its short
	// SLD) and is flagged as a candidate; x.example.net scores 1.
	const name, flux = "x.example.net", "x.evil.tk"
	repeat := func(l Level) Precheck { return Precheck{Repeat: true, Level: l} }
	for _, tc := range []struct {
		name       string
		set        []netip.Addr
		answered   string // the name whose answers prime the engine
		primes     int    // answers of set from 10.0.0.1, at 10:00:00
		primePrint uint32 // their print
		after      time.Duration
		query      string // the name queried
		print      uint32 // its answer's print, 0 before the answer
		v6         bool
		client     string // "" for none
		primed     Level  // the answered name's level, once primed
		want       Precheck
	}{
		{"same family, second and client", benign, name, 2, 0, 0, name, 0, false, "10.0.0.1", LevelNone, repeat(LevelNone)},
		{"no client", benign, name, 2, 0, 0, name, 0, false, "", LevelNone, repeat(LevelNone)},
		{"no repeat seen yet", benign, name, 1, 0, 0, name, 0, false, "10.0.0.1", LevelNone, Precheck{}},
		{"AAAA after A", benign, name, 2, 0, 0, name, 0, true, "10.0.0.1", LevelNone, Precheck{}},
		{"another client", benign, name, 2, 0, 0, name, 0, false, "10.0.0.2", LevelNone, Precheck{}},
		{"the next second", benign, name, 2, 0, time.Second, name, 0, false, "10.0.0.1", LevelNone, Precheck{}},
		{"a name not tracked: new", benign, name, 2, 0, 0, "y.example.net", 0, false, "10.0.0.1", LevelNone, Precheck{New: true}},
		{"an excluded name: not new", benign, name, 2, 0, 0, "printer.corp", 0, false, "10.0.0.1", LevelNone, Precheck{}},
		// The third answer makes the name a candidate, the fourth repeats it.
		{"a suspicious name", fluxSet, name, 4, 0, 0, name, 0, false, "10.0.0.1", LevelSuspicious, repeat(LevelSuspicious)},
		{"a flagged name: read", fluxSet, flux, 4, 0, 0, flux, 0, false, "10.0.0.1", LevelFlagged, Precheck{}},
		// With the answer's print, a repeat needs no repeat seen before it,
		// and counts in the same query-count bucket (5 minutes here).
		{"the same print", benign, name, 1, 7, 0, name, 7, false, "10.0.0.1", LevelNone, repeat(LevelNone)},
		{"the same print, a minute on", benign, name, 1, 7, time.Minute, name, 7, false, "10.0.0.1", LevelNone, repeat(LevelNone)},
		{"the same print, the next bucket", benign, name, 1, 7, 5 * time.Minute, name, 7, false, "10.0.0.1", LevelNone, Precheck{}},
		{"another print", benign, name, 1, 7, 0, name, 8, false, "10.0.0.1", LevelNone, Precheck{}},
		{"another print, seen repeated in this second", benign, name, 2, 7, 0, name, 8, false, "10.0.0.1", LevelNone, repeat(LevelNone)},
		{"a print, the last answer had none", benign, name, 1, 0, 0, name, 7, false, "10.0.0.1", LevelNone, Precheck{}},
		{"the same print, another client", benign, name, 2, 7, 0, name, 7, false, "10.0.0.2", LevelNone, Precheck{}},
		{"the same print, AAAA after A", benign, name, 2, 7, 0, name, 7, true, "10.0.0.1", LevelNone, Precheck{}},
		{"the same print, a flagged name: read", fluxSet, flux, 4, 7, 0, flux, 7, false, "10.0.0.1", LevelFlagged, Precheck{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := &fakeClock{t: at("10:00:00")}
			e := newTestEngine(t, clk, nil)
			first := netip.MustParseAddr("10.0.0.1")
			var v Verdict
			for range tc.primes {
				v = e.Observe(&Observation{Name: tc.answered, Client: first, Addrs: tc.set, MinTTL: 30, Print: tc.primePrint, LevelOnly: true})
			}
			if v.Level != tc.primed {
				t.Fatalf("primed to %s, want %s", v.Level, tc.primed)
			}
			clk.add(tc.after)
			var client netip.Addr
			if tc.client != "" {
				client = netip.MustParseAddr(tc.client)
			}
			if got := e.Precheck(tc.query, tc.v6, client, tc.print); got != tc.want {
				t.Fatalf("Precheck = %+v, want %+v", got, tc.want)
			}
			want := tc.primes
			if tc.want.Repeat {
				want++
			}
			// The next answer judged, a second later, counts the repeats in.
			clk.add(time.Second)
			e.Observe(&Observation{Name: tc.answered, Client: first, Addrs: tc.set, MinTTL: 30, LevelOnly: true})
			if q := queriesOf(t, e, tc.answered); q != want+1 {
				t.Errorf("%d queries, want %d", q, want+1)
			}
		})
	}
}

// TestLevelOnlyRepeatsRows checks that the answers counted in the slot count
// their rows, one per address, when the query count counts rows: a brief
// engine and a full one agree on the count.
func TestLevelOnlyRepeatsRows(t *testing.T) {
	clk := &fakeClock{t: at("10:00:00")}
	rows := func(c *Config) { c.QueryCount = CountRows }
	full, brief := newTestEngine(t, clk, rows), newTestEngine(t, clk, rows)
	client := netip.MustParseAddr("10.0.0.1")
	inSlot := 0
	for i, a := range [][]netip.Addr{
		addrs("45.1.0.1", "46.1.0.1", "47.1.0.1"), addrs("45.1.0.1", "46.1.0.1", "47.1.0.1"),
		addrs("48.1.0.1", "49.1.0.1"), addrs("48.1.0.1", "49.1.0.1"), addrs("48.1.0.1", "49.1.0.1"),
		addrs("48.1.0.1", "49.1.0.1"), addrs("48.1.0.1", "49.1.0.1"),
	} {
		o := Observation{Name: "x.evil.tk", Client: client, Addrs: a, MinTTL: 30}
		full.Observe(&o)
		o.LevelOnly = true
		brief.Observe(&o)
		inSlot += slotRepeats(brief.st, "x.evil.tk") // queriesOf counts them into the entry
		if q, want := queriesOf(t, brief, "x.evil.tk"), queriesOf(t, full, "x.evil.tk"); q != want {
			t.Fatalf("answer %d: %d queries, the full engine %d", i+1, q, want)
		}
	}
	if inSlot == 0 {
		t.Error("no answer was counted in the slot")
	}
	if q := queriesOf(t, full, "x.evil.tk"); q != 3+3+5*2 {
		t.Errorf("%d rows, want 16", q)
	}
}

// TestRepeatsKeepTheWindow: an answer counted as a repeat in the slot sees
// the judged answer's addresses and client again, as the rule's rows do,
// so that they stay in the window as long as without the shortcut. At
// 11:02 the window (10:02–11:02) holds the 10:04 answer: 5 IPs, flagged.
func TestRepeatsKeepTheWindow(t *testing.T) {
	for _, brief := range []bool{false, true} {
		t.Run(map[bool]string{false: "judged", true: "repeats"}[brief], func(t *testing.T) {
			clk := &fakeClock{t: at("10:00:00")}
			e := newTestEngine(t, clk, func(c *Config) { c.QueryCount = CountRows })
			observe := func(hhmmss, client string, a []netip.Addr, levelOnly bool) Verdict {
				clk.set(hhmmss)
				return e.Observe(&Observation{Name: "c2.evil.tk", Client: netip.MustParseAddr(client), Addrs: a, MinTTL: 300, LevelOnly: levelOnly})
			}
			first := addrs("45.0.0.1", "46.0.0.1", "47.0.0.1", "48.0.0.1")
			observe("10:00:00", "10.1.1.1", first, brief)
			observe("10:04:00", "10.1.1.1", first, brief)
			if got := slotRepeats(e.st, "c2.evil.tk"); brief != (got == 1) {
				t.Fatalf("%d repeats in the slot", got)
			}
			if v := observe("11:02:00", "10.1.1.2", addrs("49.0.0.1"), brief); v.Level != LevelFlagged {
				t.Errorf("at 11:02: %s, want flagged", v.Level)
			}
			if v := observe("11:02:01", "10.1.1.2", addrs("49.0.0.1"), false); v.UniqueIPs != 5 || v.Clients != 2 {
				t.Errorf("at 11:02: %d IPs and %d clients in the window, want 5 and 2", v.UniqueIPs, v.Clients)
			}
		})
	}
}

// TestRepeatsNeverExtendOthers: when other answers were recorded in the
// judged answer's second, a later answer repeating it is judged in full
// rather than counted in the slot: the addresses and clients of those
// other answers leave the window as judging every answer has them leave.
func TestRepeatsNeverExtendOthers(t *testing.T) {
	clk := &fakeClock{t: at("10:00:00")}
	full, brief := newTestEngine(t, clk, nil), newTestEngine(t, clk, nil)
	s1, s2 := addrs("45.0.0.1", "46.0.0.1"), addrs("47.0.0.1", "48.0.0.1")
	both := func(hhmmss, client string, a []netip.Addr, levelOnly bool) (Verdict, Verdict) {
		clk.set(hhmmss)
		o := Observation{Name: "c2.evil.tk", Client: netip.MustParseAddr(client), Addrs: a, MinTTL: 300}
		vf := full.Observe(&o)
		o.LevelOnly = levelOnly
		return vf, brief.Observe(&o)
	}
	both("10:00:00", "10.1.1.1", s1, true) // client A
	both("10:00:00", "10.1.1.2", s2, true) // client B, the same second
	both("10:04:00", "10.1.1.2", s2, true) // B again: judged, not counted in the slot
	if got := slotRepeats(brief.st, "c2.evil.tk"); got != 0 {
		t.Fatalf("%d repeats in the slot, want 0", got)
	}
	vf, vb := both("11:02:00", "10.1.1.3", addrs("49.0.0.1"), false)
	if vb.UniqueIPs != vf.UniqueIPs || vb.Clients != vf.Clients || vb.Level != vf.Level {
		t.Errorf("at 11:02: brief %d IPs, %d clients, %s; judging every answer %d IPs, %d clients, %s",
			vb.UniqueIPs, vb.Clients, vb.Level, vf.UniqueIPs, vf.Clients, vf.Level)
	}
}
