package engine

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

func flaggedEngine(t testing.TB, clk *fakeClock) *Engine {
	t.Helper()
	e := newTestEngine(t, clk, nil)
	feed(e, clk, []event{
		{"10:00:10", "x.evil.tk", "10.0.0.1", []string{"45.0.0.1", "45.0.0.2"}},
		{"10:02:30", "x.evil.tk", "10.0.0.2", []string{"45.0.0.3", "45.0.0.4"}},
		{"10:07:59", "x.evil.tk", "10.0.0.1", []string{"45.0.0.5"}},
		{"10:05:00", "api.example.org", "10.0.0.7", []string{"91.0.0.1", "91.0.0.2", "91.0.0.3"}},
		{"10:05:20", "api.example.org", "10.0.0.7", []string{"91.0.0.4", "91.0.0.5", "91.0.0.6"}},
		{"10:05:40", "api.example.org", "10.0.0.7", []string{"91.0.0.1"}},
		{"10:06:00", "static.example.com", "10.0.0.1", []string{"93.184.215.14"}},
	})
	clk.set("10:08:00")
	return e
}

func TestSaveLoad(t *testing.T) {
	clk := &fakeClock{t: at("09:00:00")}
	e := flaggedEngine(t, clk)
	for _, a := range dualStack(4) { // a candidate: each family's largest answer kept
		e.Observe(&Observation{Name: "portal.example.net", Addrs: a})
	}
	var buf bytes.Buffer
	if err := e.Save(&buf); err != nil {
		t.Fatal(err)
	}
	restored := newTestEngine(t, clk, nil)
	n, err := restored.Load(bytes.NewReader(buf.Bytes()))
	if err != nil || n != 4 {
		t.Fatalf("Load = %d, %v", n, err)
	}
	if d, _ := restored.Detail("portal.example.net"); d.MaxAnswer != 8 {
		t.Errorf("largest answers after restore: %d, want 8", d.MaxAnswer)
	}
	if got, want := restored.Report(), e.Report(); !reflect.DeepEqual(got, want) {
		t.Errorf("report after restore:\n%+v\nwant\n%+v", got, want)
	}
	if _, held := restored.Held("x.evil.tk"); !held {
		t.Error("flagged name not held after restore")
	}
	// Evidence keeps accumulating on restored state.
	clk.add(time.Minute)
	if v := restored.Observe(&Observation{Name: "api.example.org", Addrs: addrs("91.0.0.9")}); v.UniqueIPs != 7 || v.Queries != 4 {
		t.Errorf("after restore: %+v", v)
	}
}

func TestLoadRejects(t *testing.T) {
	clk := &fakeClock{t: at("09:00:00")}
	var good bytes.Buffer
	if err := flaggedEngine(t, clk).Save(&good); err != nil {
		t.Fatal(err)
	}
	other := binary.AppendUvarint([]byte(stateMagic), SnapshotVersion+1)
	tests := map[string][]byte{
		"empty":          nil,
		"garbage":        []byte("not a state file at all"),
		"truncated":      good.Bytes()[:good.Len()/2],
		"no checksum":    good.Bytes()[:good.Len()-4],
		"trailing bytes": append(bytes.Clone(good.Bytes()), 0),
		"version":        append(other, good.Bytes()[len(other):]...),
	}
	for name, data := range tests {
		e := newTestEngine(t, clk, nil)
		n, err := e.Load(bytes.NewReader(data))
		if err == nil || n != 0 || e.Len() != 0 {
			t.Errorf("%s: Load = %d, %v; %d names", name, n, err, e.Len())
		}
		if name == "version" && !errors.Is(err, ErrSnapshotVersion) {
			t.Errorf("version: error %v", err)
		}
	}
}

// TestLoadVersion3 checks that a state file of the version before, whose
// largest answers are IPv4's only, loads.
func TestLoadVersion3(t *testing.T) {
	clk := &fakeClock{t: at("09:00:00")}
	var buf bytes.Buffer
	if err := flaggedEngine(t, clk).Save(&buf); err != nil {
		t.Fatal(err)
	}
	// The same records under version 3, with the checksum made again.
	data := buf.Bytes()[:buf.Len()-4]
	data[len(stateMagic)] = oldestVersion
	data = binary.BigEndian.AppendUint32(data, crc32.Checksum(data, crcTable))
	e := newTestEngine(t, clk, nil)
	if n, err := e.Load(bytes.NewReader(data)); n != 3 || err != nil {
		t.Errorf("Load = %d, %v", n, err)
	}
}

// TestLoadRefusesWhole checks that a state file cut short anywhere, or
// with any one bit flipped, is refused and restores nothing.
func TestLoadRefusesWhole(t *testing.T) {
	clk := &fakeClock{t: at("09:00:00")}
	var good bytes.Buffer
	if err := flaggedEngine(t, clk).Save(&good); err != nil {
		t.Fatal(err)
	}
	data := good.Bytes()
	check := func(what string, b []byte) {
		t.Helper()
		e := newTestEngine(t, clk, nil)
		if n, err := e.Load(bytes.NewReader(b)); err == nil || n != 0 || e.Len() != 0 {
			t.Fatalf("%s: Load = %d, %v; %d names", what, n, err, e.Len())
		}
	}
	for i := range len(data) {
		check(fmt.Sprintf("cut at %d of %d", i, len(data)), data[:i])
		for bit := range 8 {
			flipped := bytes.Clone(data)
			flipped[i] ^= 1 << bit
			check(fmt.Sprintf("bit %d of byte %d flipped", bit, i), flipped)
		}
	}
}

// FuzzLoad loads arbitrary bytes: Load never panics, restores nothing
// from a file it refuses, and never more names than the caps allow.
func FuzzLoad(f *testing.F) {
	clk := &fakeClock{t: at("09:00:00")}
	var good bytes.Buffer
	if err := flaggedEngine(f, clk).Save(&good); err != nil {
		f.Fatal(err)
	}
	f.Add(good.Bytes())
	f.Add(good.Bytes()[:good.Len()/2])
	f.Add([]byte(stateMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		e := newTestEngine(t, clk, func(c *Config) { c.MaxNames = 2 })
		n, err := e.Load(bytes.NewReader(data))
		if err != nil && (n != 0 || e.Len() != 0) {
			t.Fatalf("refused, yet %d restored, %d names", n, e.Len())
		}
		if e.Len() > 2+2/4+1 {
			t.Fatalf("%d names past the caps", e.Len())
		}
	})
}

func TestReconfigured(t *testing.T) {
	clk := &fakeClock{t: at("09:00:00")}
	e := flaggedEngine(t, clk)
	cfg := e.Config()
	cfg.SuspiciousTLDs = []string{"org"} // api.example.org now scores 2
	n, err := e.Reconfigured(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.Adopt()
	if n.Len() != 3 {
		t.Fatalf("Len = %d after reconfigure", n.Len())
	}
	if _, held := n.Held("x.evil.tk"); !held {
		t.Error("flagged set lost on reconfigure")
	}
	if v := n.Observe(&Observation{Name: "api.example.org", Addrs: addrs("91.0.0.1")}); v.Level != LevelFlagged || v.Reasons&ReasonSuspiciousTLD == 0 {
		t.Errorf("new config not applied to kept state: %+v", v)
	}
	// A reload that excludes a tracked name forgets it, and its answers are
	// no evidence from then on.
	cfg.ExcludeSuffixes = []string{"example.org"}
	if n, err = n.Reconfigured(cfg); err != nil {
		t.Fatal(err)
	}
	n.Adopt()
	if n.Len() != 2 {
		t.Errorf("Len = %d after excluding example.org, want 2", n.Len())
	}
	if v := n.Observe(&Observation{Name: "api.example.org", Addrs: addrs("91.0.0.1")}); v.Skip != SkipExcluded {
		t.Errorf("excluded name observed: %+v", v)
	}
}

// TestReconfiguredProfile reloads a seed-profile engine, counting rows, as
// a default-profile one counting answers: a name tracked before counts one
// query an answer from then on, and feeds its registered domain.
func TestReconfiguredProfile(t *testing.T) {
	clk := &fakeClock{t: at("10:00:00")}
	e := newTestEngine(t, clk, func(c *Config) { c.QueryCount = CountRows })
	four := addrs("45.0.0.1", "46.0.0.1", "47.0.0.1", "48.0.0.1")
	if v := e.Observe(&Observation{Name: "api.example.org", Addrs: four}); v.Queries != 4 {
		t.Fatalf("rows: Queries = %d, want 4", v.Queries)
	}
	cfg := e.Config()
	cfg.Profile, cfg.QueryCount = ProfileDefault, CountAnswers
	n, err := e.Reconfigured(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.Adopt()
	clk.add(time.Second)
	if v := n.Observe(&Observation{Name: "api.example.org", Addrs: four}); v.Queries != 5 {
		t.Errorf("answers after the reload: Queries = %d, want 5", v.Queries)
	}
	if n.Len() != 2 {
		t.Errorf("Len = %d, want the name and its registered domain", n.Len())
	}
}

// TestLoadOwners checks that a restored name's addresses are counted by
// their owners, as before the restart: one operator's addresses over many
// /16s stay one network.
func TestLoadOwners(t *testing.T) {
	clk := &fakeClock{t: at("10:00:00")}
	oneOperator := func(c *Config) {
		c.Profile = ProfileDefault
		c.ASN = func(netip.Addr) uint32 { return 16509 }
	}
	e := newTestEngine(t, clk, oneOperator)
	for _, a := range answers(10, 4, 40, 40) {
		clk.add(time.Minute)
		e.Observe(&Observation{Name: "lb.cloud-app.com", Addrs: a, MinTTL: 60})
	}
	var buf bytes.Buffer
	if err := e.Save(&buf); err != nil {
		t.Fatal(err)
	}
	restored := newTestEngine(t, clk, oneOperator)
	if _, err := restored.Load(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	clk.add(time.Minute)
	v := restored.Observe(&Observation{Name: "lb.cloud-app.com", Addrs: addrs("99.1.2.3"), MinTTL: 60})
	if v.Networks != 1 || v.Level == LevelFlagged {
		t.Errorf("after restore: %+v", v)
	}
}

// TestWindowChanged checks that a state restored, or kept across a reload,
// under another window counts queries afresh, in the new window: the saved
// buckets are numbered in the old window's units, and kept they would
// never expire.
func TestWindowChanged(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, e *Engine, cfg Config) *Engine
	}{
		{"reload", func(t *testing.T, e *Engine, cfg Config) *Engine {
			n, err := e.Reconfigured(cfg)
			if err != nil {
				t.Fatal(err)
			}
			n.Adopt()
			return n
		}},
		{"reload, the engine replaced answering meanwhile", func(t *testing.T, e *Engine, cfg Config) *Engine {
			n, err := e.Reconfigured(cfg)
			if err != nil {
				t.Fatal(err)
			}
			n.Adopt()
			// Until the reload is done, the old engine serves, counting in
			// its own units.
			e.Observe(&Observation{Name: "api.example.org", Addrs: addrs("91.0.0.1", "91.0.0.2")})
			return n
		}},
		{"restart", func(t *testing.T, e *Engine, cfg Config) *Engine {
			var buf bytes.Buffer
			if err := e.Save(&buf); err != nil {
				t.Fatal(err)
			}
			n, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := n.Load(bytes.NewReader(buf.Bytes())); err != nil {
				t.Fatal(err)
			}
			return n
		}},
	} {
		for _, window := range []time.Duration{5 * time.Minute, 2 * time.Hour} {
			t.Run(fmt.Sprintf("%s to %s", tc.name, window), func(t *testing.T) {
				clk := &fakeClock{t: at("10:00:00")}
				e := newTestEngine(t, clk, func(c *Config) { c.Window = 30 * time.Minute })
				observe := func(e *Engine) Verdict {
					return e.Observe(&Observation{Name: "api.example.org", Addrs: addrs("91.0.0.1", "91.0.0.2")})
				}
				for range 3 {
					observe(e)
				}
				cfg := e.Config()
				cfg.Window = window
				n := tc.change(t, e, cfg)
				clk.add(time.Minute)
				if v := observe(n); v.Queries != 1 {
					t.Errorf("Queries = %d right after the change, want 1", v.Queries)
				}
				clk.add(window + window/buckets + time.Minute) // counts are kept by bucket
				if v := observe(n); v.Queries != 1 {
					t.Errorf("Queries = %d a window and a bucket later, want 1", v.Queries)
				}
			})
		}
	}
}

// TestLoadClampsTimes: a state saved by a clock running ahead (or made
// up) restores no hold longer than the engine's, nor times beyond now, so
// its entries leave the window and are swept as any others.
func TestLoadClampsTimes(t *testing.T) {
	ahead := &fakeClock{t: at("10:00:00").Add(90 * 24 * time.Hour)}
	e := newTestEngine(t, ahead, nil)
	for i := range 3 {
		ahead.add(time.Minute)
		e.Observe(&Observation{Name: "x.evil.tk", Addrs: addrs(fmt.Sprintf("45.0.%d.1", i), fmt.Sprintf("45.0.%d.2", i)), MinTTL: 30})
	}
	var buf bytes.Buffer
	if err := e.Save(&buf); err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{t: at("10:05:00")}
	restored := newTestEngine(t, clk, nil)
	if n, err := restored.Load(bytes.NewReader(buf.Bytes())); n != 1 || err != nil {
		t.Fatalf("Load: %d, %v", n, err)
	}
	if v, held := restored.Held("x.evil.tk"); !held || v.HoldLeft > restored.Config().Hold {
		t.Errorf("restored: held %v for %s, want held for at most %s", held, v.HoldLeft, restored.Config().Hold)
	}
	clk.add(3 * time.Hour) // the hold and the window long over
	restored.Sweep()
	if _, held := restored.Held("x.evil.tk"); held || restored.Len() != 0 {
		t.Errorf("3h on: held %v, %d names tracked; want neither", held, restored.Len())
	}
}

// restarted saves e and loads its state into a new engine of the same
// configuration, as a restart with state_file does.
func restarted(t *testing.T, e *Engine) *Engine {
	t.Helper()
	var buf bytes.Buffer
	if err := e.Save(&buf); err != nil {
		t.Fatal(err)
	}
	n, err := New(e.Config())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Load(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRestartKeepsNameServers checks that a zone showing the same name
// servers before and after a restart shows no NS churn: they are kept
// under a hash that is the same in every process. State saved before
// version 5, under the saving process's hash, loads without them.
func TestRestartKeepsNameServers(t *testing.T) {
	six := addrs("45.1.0.10", "46.1.0.10", "47.1.0.10", "48.1.0.10", "49.1.0.10", "50.1.0.10")
	ns := []string{"ns1.brand.info", "ns2.brand.info", "ns3.brand.info", "ns4.brand.info"}
	for _, tc := range []struct {
		name    string
		version byte // of the file the restart loads; 0 for none
		wantNS  int  // name servers restored
	}{
		{"no restart", 0, 4},
		{"restart", SnapshotVersion, 4},
		{"restart from version 4", 4, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := &fakeClock{t: at("10:00:00")}
			e := newTestEngine(t, clk, func(c *Config) { c.Profile = ProfileDefault })
			var before Verdict
			for range 4 {
				clk.add(time.Minute)
				before = e.Observe(&Observation{Name: "app.brand.info", Addrs: six, MinTTL: 60, NS: ns})
			}
			if tc.version != 0 {
				var buf bytes.Buffer
				if err := e.Save(&buf); err != nil {
					t.Fatal(err)
				}
				data := buf.Bytes()[:buf.Len()-4]
				data[len(stateMagic)] = tc.version
				data = binary.BigEndian.AppendUint32(data, crc32.Checksum(data, crcTable))
				e = newTestEngine(t, clk, func(c *Config) { c.Profile = ProfileDefault })
				if _, err := e.Load(bytes.NewReader(data)); err != nil {
					t.Fatal(err)
				}
			}
			sh, k := e.st.locate("app.brand.info")
			if got := len(sh.seen.view(sh.lookup(k).ns)); got != tc.wantNS {
				t.Errorf("name servers restored: %d, want %d", got, tc.wantNS)
			}
			clk.add(time.Minute)
			after := e.Observe(&Observation{Name: "app.brand.info", Addrs: six, MinTTL: 60, NS: ns})
			if after.Reasons&ReasonNSChurn != 0 || after.Score != before.Score {
				t.Errorf("the same 4 name servers: before %s score %v; after %v %s score %v",
					before.Reasons, before.Score, after.Level, after.Reasons, after.Score)
			}
		})
	}
}

// TestRestartKeepsSharedPool checks that a name flagged before a restart
// still corroborates, through the pool index, a name answered two of its
// addresses after it: restored flagged names index their addresses.
func TestRestartKeepsSharedPool(t *testing.T) {
	bots := answers(6, 4, 200, 200)
	own := [][]netip.Addr{addrs("61.1.0.1", "62.1.0.1"), addrs("63.1.0.1")}
	for _, restart := range []bool{false, true} {
		t.Run(fmt.Sprintf("restart=%v", restart), func(t *testing.T) {
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
			if restart {
				e = restarted(t, e)
			}
			for _, a := range append([][]netip.Addr{{bots[0][0], bots[1][1]}}, own...) {
				clk.add(time.Minute)
				v = e.Observe(&Observation{Name: "login.other-name.net", Addrs: a, MinTTL: 60})
			}
			if v.Level != LevelFlagged || v.Reasons&ReasonSharedPool == 0 {
				t.Errorf("a name on two of the flagged name's addresses: %v %s score %v; want flagged, shared_pool", v.Level, v.Reasons, v.Score)
			}
		})
	}
}

// TestLoadKeepsHeldFirst checks that a state file of more names than the
// store's cap (max_names lowered across a restart) keeps its held names,
// whatever their place in the file.
func TestLoadKeepsHeldFirst(t *testing.T) {
	clk := &fakeClock{t: at("10:00:00")}
	big := newTestEngine(t, clk, nil)
	for i := range 40 {
		clk.add(time.Second)
		big.Observe(&Observation{Name: fmt.Sprintf("www.benign%d.example", i), Addrs: addrs("93.184.215.14")})
	}
	var held []string
	for i := range 5 {
		name := fmt.Sprintf("c2-%d.evil.tk", i)
		for j := range 3 {
			clk.add(time.Second)
			big.Observe(&Observation{Name: name, Addrs: addrs(fmt.Sprintf("45.%d.%d.1", i, j), fmt.Sprintf("45.%d.%d.2", i, j), fmt.Sprintf("46.%d.%d.1", i, j), fmt.Sprintf("47.%d.%d.1", i, j))})
		}
		if _, ok := big.Held(name); !ok {
			t.Fatalf("%s not held", name)
		}
		held = append(held, name)
	}
	var buf bytes.Buffer
	if err := big.Save(&buf); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ max, want int }{{100, 45}, {20, 20}, {5, 5}} {
		t.Run(fmt.Sprintf("max_names=%d", tc.max), func(t *testing.T) {
			small := newTestEngine(t, clk, func(c *Config) { c.MaxNames = tc.max })
			n, err := small.Load(bytes.NewReader(buf.Bytes()))
			if err != nil || n != tc.want {
				t.Fatalf("Load = %d, %v; want %d", n, err, tc.want)
			}
			for _, name := range held {
				if _, ok := small.Held(name); !ok {
					t.Errorf("%s not held after loading into max_names %d", name, tc.max)
				}
			}
		})
	}
}
