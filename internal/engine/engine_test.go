package engine

import (
	"fmt"
	"math"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for tests.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) set(hhmmss string)   { c.t = at(hhmmss) }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func at(hhmmss string) time.Time         { t, _ := time.Parse(time.DateTime, "2026-11-26 "+hhmmss); return t }
func addrs(ss ...string) (out []netip.Addr) {
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func newTestEngine(t testing.TB, clk *fakeClock, mod func(*Config)) *Engine {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Profile = ProfileSeed     // most tests check the seed rule's simple scores
	cfg.QueryCount = CountAnswers // and count answers, one per query
	cfg.Now = clk.now
	if mod != nil {
		mod(&cfg)
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// event is one resolver log line: an answered A/AAAA query.
type event struct {
	at     string
	name   string
	client string
	ips    []string
}

func feed(e *Engine, clk *fakeClock, evs []event) (last Verdict) {
	for _, ev := range evs {
		clk.set(ev.at)
		last = e.Observe(&Observation{Name: ev.name, Client: netip.MustParseAddr(ev.client), Addrs: addrs(ev.ips...), MinTTL: 30})
	}
	return last
}

// TestSeedRuleParity drives an event stream through the engine and checks
// the report against the seed rule's output, worked out by hand from its text.
func TestSeedRuleParity(t *testing.T) {
	clk := &fakeClock{t: at("08:00:00")}
	e := newTestEngine(t, clk, func(c *Config) { c.QueryCount = "" }) // the seed profile's: rows
	feed(e, clk, []event{
		// Outside the 1h lookback at report time (10:08): ignored.
		{"08:30:00", "old.evil.tk", "10.0.0.9", []string{"45.1.0.1", "45.1.0.2", "45.1.0.3", "45.1.0.4", "45.1.0.5"}},
		{"08:31:00", "old.evil.tk", "10.0.0.9", []string{"45.1.0.1"}},
		{"08:32:00", "old.evil.tk", "10.0.0.9", []string{"45.1.0.1"}},
		// A: 5 public IPs (private and loopback filtered), 3 queries, 2 clients.
		{"10:00:10", "x.evil.tk", "10.0.0.1", []string{"45.0.0.1", "45.0.0.2", "10.1.1.1"}},
		{"10:02:30", "x.evil.tk", "10.0.0.2", []string{"45.0.0.3", "45.0.0.4"}},
		{"10:07:59", "x.evil.tk", "10.0.0.1", []string{"45.0.0.5", "45.0.0.1", "127.0.0.1"}},
		// B: stable, one IP.
		{"10:01:00", "static.example.com", "10.0.0.1", []string{"93.184.215.14"}},
		{"10:02:00", "static.example.com", "10.0.0.2", []string{"93.184.215.14"}},
		{"10:03:00", "static.example.com", "10.0.0.3", []string{"93.184.215.14"}},
		// C: 12 IPs over 5 queries from 5 clients, long SLD, .com.
		{"10:01:00", "www.longsecondlevel.com", "10.0.0.1", []string{"81.0.0.1", "82.0.0.1", "83.0.0.1"}},
		{"10:01:30", "www.longsecondlevel.com", "10.0.0.2", []string{"81.0.0.2", "82.0.0.2", "83.0.0.2"}},
		{"10:03:00", "www.longsecondlevel.com", "10.0.0.3", []string{"81.0.0.3", "82.0.0.3", "83.0.0.3"}},
		{"10:03:59", "www.longsecondlevel.com", "10.0.0.4", []string{"81.0.0.4", "82.0.0.4", "83.0.0.4"}},
		{"10:04:00", "www.longsecondlevel.com", "10.0.0.5", []string{"81.0.0.4"}},
		// D, E: excluded by the CDN list, the internal TLDs and the Microsoft list.
		{"10:01:00", "shop.cdn.cloudfront.net", "10.0.0.1", []string{"13.0.0.1", "13.0.0.2", "13.0.0.3", "13.0.0.4", "13.0.0.5"}},
		{"10:02:00", "shop.cdn.cloudfront.net", "10.0.0.1", []string{"13.0.0.6"}},
		{"10:03:00", "shop.cdn.cloudfront.net", "10.0.0.1", []string{"13.0.0.7"}},
		{"10:01:00", "files.corp", "10.0.0.1", []string{"45.2.0.1", "45.2.0.2", "45.2.0.3", "45.2.0.4", "45.2.0.5"}},
		{"10:02:00", "files.corp", "10.0.0.1", []string{"45.2.0.1"}},
		{"10:03:00", "files.corp", "10.0.0.1", []string{"45.2.0.1"}},
		{"10:01:00", "login.live.com", "10.0.0.1", []string{"45.3.0.1", "45.3.0.2", "45.3.0.3", "45.3.0.4", "45.3.0.5"}},
		{"10:02:00", "login.live.com", "10.0.0.1", []string{"45.3.0.1"}},
		{"10:03:00", "login.live.com", "10.0.0.1", []string{"45.3.0.1"}},
		// F: 6 IPs in 3 queries within one minute; SLD "example" is short.
		{"10:05:00", "api.example.org", "10.0.0.7", []string{"91.0.0.1", "91.0.0.2"}},
		{"10:05:20", "api.example.org", "10.0.0.7", []string{"91.0.0.3", "91.0.0.4"}},
		{"10:05:40", "api.example.org", "10.0.0.7", []string{"91.0.0.5", "91.0.0.6"}},
		// G: private answers only: no row survives the rule's IP filter.
		{"10:01:00", "priv.evil.tk", "10.0.0.1", []string{"10.0.0.1", "192.168.1.1", "172.16.0.1", "127.0.0.1", "0.0.0.0"}},
	})
	clk.set("10:08:00")
	want := []Row{
		{
			DetectionTime: at("10:04:00"), DomainName: "www.longsecondlevel.com",
			UniqueIPCount: 12, IPChurnRate: 4, QueryCount: 13, UniqueClients: 5,
			ClientList:         []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"},
			IPAddressList:      []string{"81.0.0.1", "82.0.0.1", "83.0.0.1", "81.0.0.2", "82.0.0.2", "83.0.0.2", "81.0.0.3", "82.0.0.3", "83.0.0.3", "81.0.0.4", "82.0.0.4", "83.0.0.4"},
			ObservationMinutes: 3, TLD: "com", SuspicionScore: 2, FirstSeen: at("10:01:00"),
		},
		{
			DetectionTime: at("10:05:40"), DomainName: "api.example.org",
			UniqueIPCount: 6, IPChurnRate: 6, QueryCount: 6, UniqueClients: 1,
			ClientList:         []string{"10.0.0.7"},
			IPAddressList:      []string{"91.0.0.1", "91.0.0.2", "91.0.0.3", "91.0.0.4", "91.0.0.5", "91.0.0.6"},
			ObservationMinutes: 1, TLD: "org", ShortSLD: true, SuspicionScore: 1, FirstSeen: at("10:05:00"),
		},
		{
			DetectionTime: at("10:07:59"), DomainName: "x.evil.tk",
			// The rule's count() runs after mv-expand: one row per
			// public IP of each answer, 2 + 2 + 2.
			UniqueIPCount: 5, IPChurnRate: 0.7143, QueryCount: 6, UniqueClients: 2,
			ClientList:         []string{"10.0.0.1", "10.0.0.2"},
			IPAddressList:      []string{"45.0.0.1", "45.0.0.2", "45.0.0.3", "45.0.0.4", "45.0.0.5"},
			ObservationMinutes: 7, TLD: "tk", SuspiciousTLD: true, ShortSLD: true, SuspicionScore: 2, FirstSeen: at("10:00:10"),
		},
	}
	got := e.Report()
	if !reflect.DeepEqual(got, want) {
		for i := range max(len(got), len(want)) {
			if i < len(got) && i < len(want) && reflect.DeepEqual(got[i], want[i]) {
				continue
			}
			if i < len(got) {
				t.Errorf("got  row %d: %+v", i, got[i])
			}
			if i < len(want) {
				t.Errorf("want row %d: %+v", i, want[i])
			}
		}
	}
	// Flagged set: score >= threshold 2.
	for name, want := range map[string]bool{"x.evil.tk": true, "www.longsecondlevel.com": true, "api.example.org": false, "static.example.com": false, "old.evil.tk": false} {
		if _, held := e.Held(name); held != want {
			t.Errorf("Held(%q) = %v, want %v", name, held, want)
		}
	}
}

func TestVerdictLevels(t *testing.T) {
	clk := &fakeClock{t: at("10:00:00")}
	e := newTestEngine(t, clk, nil)
	name := "a.evil.tk"
	ips := [][]string{{"45.0.0.1", "45.0.0.2"}, {"45.0.0.3", "45.0.0.4"}, {"45.0.0.5"}, {"45.0.0.6"}}
	wantLevels := []Level{LevelNone, LevelNone, LevelFlagged, LevelFlagged}
	for i, set := range ips {
		v := e.Observe(&Observation{Name: name, Client: netip.MustParseAddr("10.0.0.1"), Addrs: addrs(set...)})
		if v.Level != wantLevels[i] {
			t.Fatalf("observation %d: level %s, want %s (%+v)", i, v.Level, wantLevels[i], v)
		}
		if changed := i == 2; v.Changed() != changed {
			t.Errorf("observation %d: Changed() = %v, want %v", i, v.Changed(), changed)
		}
		clk.add(time.Second)
	}
	if v, held := e.Held(name); !held || v.Reasons != ReasonSuspiciousTLD|ReasonShortSLD || v.Reasons.String() != "suspicious_tld,short_sld" {
		t.Fatalf("Held = %+v, %v", v, held)
	}
	// The hold outlives the window's evidence, then ends.
	clk.add(59 * time.Minute)
	if _, held := e.Held(name); !held {
		t.Fatal("not held 59m after the last flagging answer")
	}
	clk.add(2 * time.Minute)
	if _, held := e.Held(name); held {
		t.Fatal("still held after hold time")
	}
	if n := e.Sweep(); n != 1 || e.Len() != 0 {
		t.Fatalf("Sweep dropped %d, %d left", n, e.Len())
	}
}

func TestSkip(t *testing.T) {
	clk := &fakeClock{t: at("10:00:00")}
	e := newTestEngine(t, clk, func(c *Config) { c.Allow = []Rule{{Name: "Trusted.Example."}} })
	tests := []struct {
		name string
		want Skip
	}{
		{"trusted.example", SkipAllowed},
		{"a.b.trusted.example", SkipAllowed},
		{"untrusted.example", SkipNone},
		{"x.cloudfront.net", SkipExcluded},
		{"cloudfront.net.evil.tk", SkipNone},
		{"printer.lan", SkipExcluded},
		{"1.0.0.10.in-addr.arpa", SkipExcluded},
		{"outlook.office.com", SkipExcluded},
		{"microsoft.com.evil.tk", SkipNone},
		{"*.evil.tk", SkipExcluded},
		{"a.*.evil.tk", SkipNone},
	}
	for _, tt := range tests {
		if got := e.Skipped(tt.name, nil); got != tt.want {
			t.Errorf("Skipped(%q) = %d, want %d", tt.name, got, tt.want)
		}
	}
	if v := e.Observe(&Observation{Name: "trusted.example", Addrs: addrs("45.0.0.1")}); v.Skip != SkipAllowed || e.Len() != 0 {
		t.Errorf("allowed name tracked: %+v, len %d", v, e.Len())
	}
	// Observe gives the same reasons, the name's allow first, whether the
	// name is tracked already or not.
	e = newTestEngine(t, clk, func(c *Config) {
		c.Profile = ProfileDefault // exclusions apply to the chain
		c.Allow = []Rule{{Name: "trusted.example"}, {Name: "shop.example"}}
		c.Deny = []Rule{{Name: "shop.example"}}
	})
	observed := []struct {
		name  string
		chain []string
		want  Skip
	}{
		{"www.trusted.example", []string{"x.cloudfront.net"}, SkipAllowed},
		{"www.shop.example", nil, SkipAllowed}, // allowed and denied
		{"www.untrusted.example", nil, SkipNone},
		{"www.untrusted.example", []string{"x.cloudfront.net"}, SkipExcluded},
		{"www.untrusted.example", []string{"cdn.trusted.example"}, SkipAllowed},
		{"printer.lan", nil, SkipExcluded},
		{"*.evil.tk", nil, SkipExcluded},
	}
	for _, tt := range observed {
		if v := e.Observe(&Observation{Name: tt.name, Chain: tt.chain, Addrs: addrs("45.0.0.1")}); v.Skip != tt.want {
			t.Errorf("Observe(%q via %q): skip %s, want %s", tt.name, tt.chain, v.Skip, tt.want)
		}
	}
	if e.Len() != 2 { // www.untrusted.example and its registered domain
		t.Errorf("Len = %d, want 2", e.Len())
	}
}

// TestChainExclusionNeedsTheCDN: in the default profile a CNAME chain
// through one of the seed rule's suffixes skips an answer of the CDN's or
// a cloud's front-door addresses only. A flux name pointed at a Traffic
// Manager profile of its own (external endpoints: any address), or at a
// name in a reverse zone delegated to it, is judged on its bots. A chain
// into a public pool, or under a suffix the configuration lists, is
// skipped whatever its addresses.
func TestChainExclusionNeedsTheCDN(t *testing.T) {
	edge := netip.MustParsePrefix("13.32.0.0/15") // a CDN's, say
	tests := []struct {
		name    string
		cdns    []string // cdn_suffixes, nil for the seed rule's
		chain   []string
		answers [][]netip.Addr
		want    Skip
		flagged bool
	}{
		{"CNAME into the NTP pool", nil, []string{"2.pool.ntp.org"}, answers(3, 4, 100, 100), SkipExcluded, false},
		{"CNAME to a CDN the configuration lists", []string{"wscdns.com"}, []string{"www.shop.example.wscdns.com"}, answers(3, 4, 100, 100), SkipExcluded, false},
		{"CNAME to Traffic Manager, the seed's list replaced", []string{"wscdns.com"}, []string{"evil-c2.trafficmanager.net"}, answers(3, 4, 100, 100), SkipNone, true},
		{"CNAME to Traffic Manager, the seed's list restated with one more", append([]string{"wscdns.com"}, SeedCDNSuffixes...), []string{"evil-c2.trafficmanager.net"}, answers(3, 4, 100, 100), SkipNone, true},
		{"CNAME to the CDN, its edges", nil, []string{"d1.cloudfront.net"}, [][]netip.Addr{addrs("13.32.0.1", "13.33.0.1")}, SkipExcluded, false},
		{"CNAME to Traffic Manager, bots", nil, []string{"evil-c2.trafficmanager.net"}, answers(3, 4, 100, 100), SkipNone, true},
		{"CNAME into a reverse zone, bots", nil, []string{"c2.113.0.45.in-addr.arpa"}, answers(3, 4, 100, 100), SkipNone, true},
		{"CNAME to the CDN, edges and bots", nil, []string{"d1.cloudfront.net"}, [][]netip.Addr{addrs("13.32.0.1", "45.0.0.1")}, SkipNone, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &fakeClock{t: at("10:00:00")}
			e := newTestEngine(t, clk, func(c *Config) {
				c.Profile = ProfileDefault
				c.FrontDoor = edge.Contains
				if tt.cdns != nil {
					c.CDNSuffixes = tt.cdns
				}
			})
			var v Verdict
			for _, a := range tt.answers {
				clk.add(time.Minute)
				v = e.Observe(&Observation{Name: "login.evil.top", Chain: tt.chain, Addrs: a, MinTTL: 60})
			}
			if v.Skip != tt.want || (v.Level == LevelFlagged) != tt.flagged {
				t.Errorf("skip %s, level %s; want skip %s, flagged %v", v.Skip, v.Level, tt.want, tt.flagged)
			}
		})
	}
}

// TestChainTrustAcrossLists: a seed rule's suffix moved to another
// option's list is still the seed's, not the operator's: flux behind it
// is judged.
func TestChainTrustAcrossLists(t *testing.T) {
	clk := &fakeClock{t: at("10:00:00")}
	e := newTestEngine(t, clk, func(c *Config) {
		c.Profile = ProfileDefault
		c.FrontDoor = netip.MustParsePrefix("13.32.0.0/15").Contains
		c.ExcludeSuffixes = append(slices.Clone(SeedExcludeSuffixes), "trafficmanager.net")
	})
	var v Verdict
	for _, a := range answers(3, 4, 100, 100) {
		clk.add(time.Minute)
		v = e.Observe(&Observation{Name: "login.evil.top", Chain: []string{"evil-c2.trafficmanager.net"}, Addrs: a, MinTTL: 60})
	}
	if v.Skip != SkipNone || v.Level != LevelFlagged {
		t.Errorf("skip %s, level %s; want judged and flagged", v.Skip, v.Level)
	}
}

func TestIsPublic(t *testing.T) {
	tests := map[string]bool{
		"45.33.1.1": true, "8.8.8.8": true, "2a00:1450::1": true, "2606:4700::1111": true,
		"::ffff:45.33.1.1": true, "::ffff:10.0.0.1": false,
		"10.1.2.3": false, "172.16.0.1": false, "172.31.255.255": false, "172.32.0.1": true,
		"192.168.0.1": false, "127.0.0.1": false, "0.0.0.0": false, "100.64.0.1": false,
		"169.254.1.1": false, "192.0.2.1": false, "198.51.100.1": false, "203.0.113.9": false,
		"198.18.0.1": false, "224.0.0.1": false, "255.255.255.255": false,
		"::": false, "::1": false, "fe80::1": false, "fc00::1": false, "fd12::1": false, "ff02::1": false,
		"2001:db8::1": false, "3fff::1": false, "2001:2::1": false,
	}
	for s, want := range tests {
		if got := IsPublic(netip.MustParseAddr(s)); got != want {
			t.Errorf("IsPublic(%s) = %v, want %v", s, got, want)
		}
	}
	if IsPublic(netip.Addr{}) {
		t.Error("IsPublic(invalid) = true")
	}
}

func TestPerNameCaps(t *testing.T) {
	clk := &fakeClock{t: at("10:00:00")}
	e := newTestEngine(t, clk, func(c *Config) {
		c.MaxIPsPerName, c.MaxClientsPerName, c.MinIPs, c.ManyIPs, c.ManyClients = 3, 2, 3, 3, 2
	})
	for i := range 10 {
		clk.add(time.Second)
		e.Observe(&Observation{Name: "a.example", Client: netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), Addrs: addrs(fmt.Sprintf("45.0.0.%d", i+1))})
	}
	ips, clients := listOf(t, e.st, "a.example", ipsOf), listOf(t, e.st, "a.example", clientsOf)
	if len(ips) != 3 || len(clients) != 2 {
		t.Fatalf("ips %d clients %d", len(ips), len(clients))
	}
	// The freshest values are kept.
	if got := stringsSince(ips, 0); !reflect.DeepEqual(got, []string{"45.0.0.10", "45.0.0.8", "45.0.0.9"}) {
		t.Errorf("ips = %v", got)
	}
	// A hostile answer with hundreds of addresses is bounded too.
	var many []netip.Addr
	for i := range 500 {
		many = append(many, netip.AddrFrom4([4]byte{46, 0, byte(i >> 8), byte(i)}))
	}
	if v := e.Observe(&Observation{Name: "b.example", Addrs: many}); v.UniqueIPs != 3 {
		t.Errorf("UniqueIPs = %d, want the cap 3", v.UniqueIPs)
	}
}

func TestEvictionSparesFlagged(t *testing.T) {
	clk := &fakeClock{t: at("10:00:00")}
	// Room for 16 names a shard; the 128 flagged names spread over 64 shards.
	e := newTestEngine(t, clk, func(c *Config) { c.MaxNames = shards * 16 })
	var flagged []string
	for i := range shards * 2 {
		name := fmt.Sprintf("f%d.evil.tk", i)
		for q := range 5 {
			e.Observe(&Observation{Name: name, Addrs: addrs(fmt.Sprintf("45.0.%d.%d", i, q+1), fmt.Sprintf("45.1.%d.%d", i, q+1))})
		}
		if _, held := e.Held(name); !held {
			t.Fatalf("%s not flagged", name)
		}
		flagged = append(flagged, name)
	}
	for i := range 100_000 {
		clk.add(time.Millisecond)
		e.Observe(&Observation{Name: fmt.Sprintf("r%d.example.com", i), Addrs: addrs("45.9.9.9")})
	}
	if n := e.Len(); n > shards*16 {
		t.Errorf("Len = %d, above cap %d", n, shards*16)
	}
	if e.TakeEvicted() == 0 {
		t.Error("no evictions counted")
	}
	cfg := e.cfg
	cfg.MaxNames = shards * 16
	if n, err := e.Reconfigured(cfg); err != nil || n.TakeEvicted() != 0 {
		t.Errorf("Evictions counted again after a reload (%v)", err)
	}
	for _, name := range flagged {
		if _, held := e.Held(name); !held {
			t.Errorf("%s evicted or unflagged by a flood of benign names", name)
		}
	}
}

// TestLoweredCap brings the names tracked down to a lowered max_names as
// new names come, sparing the flagged names; a reload that fails after
// its engine was adopted has lost none (see TestFailedReloadKeepsState).
func TestLoweredCap(t *testing.T) {
	clk := &fakeClock{t: at("10:00:00")}
	e := newTestEngine(t, clk, func(c *Config) { c.MaxNames = 2000 })
	for i := range 10 {
		for q := range 5 {
			e.Observe(&Observation{Name: fmt.Sprintf("f%d.evil.tk", i), Addrs: addrs(fmt.Sprintf("45.0.%d.%d", i, q+1), fmt.Sprintf("45.1.%d.%d", i, q+1))})
		}
	}
	observe := func(e *Engine, prefix string) {
		for i := range 1990 {
			clk.add(time.Millisecond)
			e.Observe(&Observation{Name: fmt.Sprintf("%s%d.example.com", prefix, i), Addrs: addrs("45.9.9.9")})
		}
	}
	observe(e, "a")
	cfg := e.cfg
	cfg.MaxNames = shards * 10
	n, err := e.Reconfigured(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.Adopt()
	if got := n.Len(); got != 2000 {
		t.Errorf("Len = %d as the lowered cap is adopted, want 2000", got)
	}
	for round := 0; n.Len() > shards*10; round++ {
		if round == 10 {
			t.Fatalf("Len = %d after %d new names, over the lowered cap %d", n.Len(), round*1990, shards*10)
		}
		observe(n, fmt.Sprintf("b%d-", round))
	}
	for i := range 10 {
		if _, held := n.Held(fmt.Sprintf("f%d.evil.tk", i)); !held {
			t.Errorf("f%d.evil.tk evicted or unflagged under the lowered cap", i)
		}
	}
}

func TestWindowExpiry(t *testing.T) {
	clk := &fakeClock{t: at("10:00:00")}
	e := newTestEngine(t, clk, func(c *Config) { c.Threshold = 4 }) // never flags: only suspicious
	for i := range 5 {
		e.Observe(&Observation{Name: "api.example.org", Addrs: addrs(fmt.Sprintf("45.0.0.%d", i+1))})
		clk.add(10 * time.Minute)
	}
	// At 10:50: 5 IPs, 5 queries since 10:00.
	if v := e.Observe(&Observation{Name: "api.example.org", Addrs: addrs("45.0.0.1")}); v.Level != LevelSuspicious || v.Queries != 6 {
		t.Fatalf("%+v", v)
	}
	clk.set("11:36:00") // the 10:40 and 10:50 answers remain in the window
	if v := e.Observe(&Observation{Name: "api.example.org", Addrs: addrs("45.0.0.7")}); v.Level != LevelNone || v.UniqueIPs != 3 || v.Queries != 3 {
		t.Fatalf("after expiry: %+v", v)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []func(*Config){
		func(c *Config) { c.Window = time.Second },
		func(c *Config) { c.Hold = 0 },
		func(c *Config) { c.MinIPs = 0 },
		func(c *Config) { c.Threshold = -1 },
		func(c *Config) { c.Threshold = math.NaN() },
		func(c *Config) { c.Threshold = math.Inf(1) },
		func(c *Config) { c.Weights.Prefix = math.NaN() },
		func(c *Config) { c.Weights.Domain = math.NaN() },
		func(c *Config) { c.MaxNames = 0 },
		func(c *Config) { c.MaxIPsPerName = 5000 },
		func(c *Config) { c.Window = 1193047 * time.Hour },  // wraps in uint32 seconds
		func(c *Config) { c.Hold = 500 * time.Millisecond }, // 0 in whole seconds
		func(c *Config) { c.MinIPs = 101 },                  // above max_ips_per_name: never a candidate
		func(c *Config) { c.ManyIPs, c.MaxIPsPerName = 20, 10 },
		func(c *Config) { c.ManyClients = 21 },
	}
	for i, mod := range tests {
		cfg := DefaultConfig()
		mod(&cfg)
		if _, err := New(cfg); err == nil {
			t.Errorf("case %d: no error", i)
		}
	}
}

func TestConcurrentObserve(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Profile = ProfileSeed
	e, _ := New(cfg)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				e.Observe(&Observation{Name: fmt.Sprintf("n%d.evil.tk", i%50), Client: netip.AddrFrom4([4]byte{10, 0, 0, byte(g)}), Addrs: addrs(fmt.Sprintf("45.0.%d.%d", g, i%200))})
				if i%500 == 0 {
					e.Report()
					e.Sweep()
				}
			}
		}()
	}
	wg.Wait()
	if _, held := e.Held("n1.evil.tk"); !held {
		t.Error("n1.evil.tk not flagged")
	}
}

// TestRepeatedAnswers checks what an answer with the same evidence as the
// name's last one (a cache hit) records: its client and query always, its
// TTL never, whatever the order of its addresses; and that only answers
// bringing new addresses move the TTL: known sets in turn, as a cache
// serves a dual-stack name's A and AAAA, count down from the cache.
func TestRepeatedAnswers(t *testing.T) {
	clk := &fakeClock{t: at("10:00:00")}
	e := newTestEngine(t, clk, func(c *Config) { c.Profile = ProfileDefault })
	setA := addrs("45.1.0.1", "46.1.0.1", "47.1.0.1", "48.1.0.1", "49.1.0.1", "50.1.0.1")
	setB := addrs("51.1.0.1", "52.1.0.1", "53.1.0.1", "54.1.0.1", "55.1.0.1", "56.1.0.1")
	reversed := slices.Clone(setA)
	slices.Reverse(reversed)
	var fresh [][]netip.Addr
	for i := range 8 {
		fresh = append(fresh, []netip.Addr{netip.AddrFrom4([4]byte{byte(57 + i), 1, 0, 1})})
	}
	steps := []struct {
		name                   string
		after                  time.Duration // before each answer
		client                 string
		sets                   [][]netip.Addr // taken in turn
		ttl, ttlStep           uint32         // the first answer's TTL, and how much each next one's is lower
		answers                int
		queries, clients, uniq int
		short                  bool // ReasonShortTTL after the step
	}{
		{"first answer", 0, "10.0.0.1", [][]netip.Addr{setA}, 600, 0, 1, 1, 1, 6, false},
		{"same second, new client, other order", 0, "10.0.0.2", [][]netip.Addr{reversed}, 600, 0, 1, 2, 2, 6, false},
		{"same second, known client", 0, "10.0.0.2", [][]netip.Addr{setA}, 600, 0, 1, 3, 2, 6, false},
		{"same second, the first client again", 0, "10.0.0.1", [][]netip.Addr{setA}, 600, 0, 1, 4, 2, 6, false},
		{"same second, the same client again and again", 0, "10.0.0.1", [][]netip.Addr{setA, reversed}, 600, 0, 5, 9, 2, 6, false},
		{"same second, a new client after them", 0, "10.0.0.4", [][]netip.Addr{setA}, 600, 0, 1, 10, 3, 6, false},
		{"cache hits counting the TTL down", time.Second, "10.0.0.1", [][]netip.Addr{setA, reversed}, 570, 30, 19, 29, 3, 6, false},
		{"known sets in turn, counting down", time.Second, "10.0.0.3", [][]netip.Addr{setB, setA}, 590, 58, 10, 39, 4, 12, false},
		{"new addresses with a short TTL", time.Second, "10.0.0.3", fresh, 10, 0, 8, 47, 4, 20, true},
	}
	for _, s := range steps {
		var v Verdict
		for i := range s.answers {
			clk.add(s.after)
			set := s.sets[i%len(s.sets)]
			v = e.Observe(&Observation{Name: "www.example.com", Client: netip.MustParseAddr(s.client), Addrs: set, MinTTL: s.ttl - uint32(i)*s.ttlStep})
		}
		if v.Queries != s.queries || v.Clients != s.clients || v.UniqueIPs != s.uniq || (v.Reasons&ReasonShortTTL != 0) != s.short {
			t.Errorf("%s: queries %d clients %d ips %d reasons %s, want %d %d %d short_ttl=%v",
				s.name, v.Queries, v.Clients, v.UniqueIPs, v.Reasons, s.queries, s.clients, s.uniq, s.short)
		}
	}
}

// TestHoldLeft checks the time left on a name's hold in the verdicts of
// Observe and Held: from the flagging answer, counting down, and none
// for names not held or denied.
func TestHoldLeft(t *testing.T) {
	clk := &fakeClock{t: at("10:00:00")}
	e := newTestEngine(t, clk, func(c *Config) { c.Hold = 10 * time.Minute })
	e.SetPolicy(NewPolicy(nil, []Rule{{Name: "denied.example"}}, nil))
	name, client := "a.evil.tk", netip.MustParseAddr("10.0.0.1")
	ips := [][]string{{"45.0.0.1", "45.0.0.2"}, {"45.0.0.3", "45.0.0.4"}, {"45.0.0.5"}}
	for i, set := range ips {
		v := e.Observe(&Observation{Name: name, Client: client, Addrs: addrs(set...)})
		want := time.Duration(0)
		if i == len(ips)-1 {
			want = 10 * time.Minute // the flagging answer starts the hold
		}
		if v.HoldLeft != want {
			t.Errorf("observation %d: HoldLeft %s, want %s (%+v)", i, v.HoldLeft, want, v)
		}
		clk.add(time.Second)
	}
	tests := []struct {
		after time.Duration // since the previous step
		name  string
		held  bool
		want  time.Duration
	}{
		{0, name, true, 10*time.Minute - time.Second},
		{4 * time.Minute, name, true, 6*time.Minute - time.Second},
		{5*time.Minute + 58*time.Second + 500*time.Millisecond, name, true, time.Second}, // 0.5s, rounded up
		{time.Second, name, false, 0},
		{0, "other.evil.tk", false, 0},
		{0, "denied.example", true, 0},
	}
	for i, tc := range tests {
		clk.add(tc.after)
		v, held := e.Held(tc.name)
		if held != tc.held || v.HoldLeft != tc.want {
			t.Errorf("step %d: Held(%q) = %v with HoldLeft %s, want %v with %s", i, tc.name, held, v.HoldLeft, tc.held, tc.want)
		}
	}
}
