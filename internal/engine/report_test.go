package engine

import (
	"fmt"
	"net/netip"
	"reflect"
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

// TestDetail checks the evidence behind a name's verdict: level, reasons,
// the score's terms (which sum to the score), threshold, hold and the
// addresses' networks, found by name and among Details.
func TestDetail(t *testing.T) {
	flux := func(name string, ttl uint32) func(*Engine, *fakeClock) {
		return func(e *Engine, clk *fakeClock) {
			for i := range 3 {
				var a []netip.Addr
				for j := range 4 {
					a = append(a, netip.AddrFrom4([4]byte{45, byte(4*i + j), 0, 1}))
				}
				e.Observe(&Observation{Name: name, Client: netip.MustParseAddr("10.0.0.1"), Addrs: a, MinTTL: ttl})
				clk.add(time.Minute)
			}
		}
	}
	defaultProfile := func(c *Config) { c.Profile = ProfileDefault }
	tests := []struct {
		name  string
		mod   func(*Config)
		feed  func(*Engine, *fakeClock)
		ask   string
		found bool
		check func(t *testing.T, d Detail)
	}{
		{"flux name", defaultProfile, flux("a.evil.tk", 30), "a.evil.tk", true, func(t *testing.T, d Detail) {
			want := ScoreTerms{Networks: 12, Rotation: 1, TTL: 1, TLD: 1}
			if d.Verdict.Level != LevelFlagged || d.Terms != want || d.Verdict.Score != 13 || d.Threshold != 8 ||
				d.Verdict.TTL != 30 || d.MaxAnswer != 4 || !d.HoldUntil.Equal(at("11:02:00")) || d.Verdict.HoldLeft != 59*time.Minute {
				t.Errorf("got %+v", d)
			}
			if want := ReasonSuspiciousTLD | ReasonPrefixDiversity | ReasonRotating | ReasonShortTTL; d.Verdict.Reasons != want {
				t.Errorf("reasons %s, want %s", d.Verdict.Reasons, want)
			}
			if len(d.Addresses) != 12 || d.Addresses[5].Network() != "45.5.0.0/16" || !d.Addresses[5].LastSeen.Equal(at("10:01:00")) {
				t.Errorf("addresses %+v", d.Addresses)
			}
		}},
		{"flux name with TTLs of hours: suspicious", defaultProfile, flux("a.example.com", 4*3600), "a.example.com", true, func(t *testing.T, d Detail) {
			want := ScoreTerms{Networks: 12, Rotation: 1}
			if d.Verdict.Level != LevelSuspicious || d.Terms != want || d.Verdict.Score != 0 || d.Threshold != 8 || !d.HoldUntil.IsZero() {
				t.Errorf("got %+v", d)
			}
		}},
		{"networks by ASN", func(c *Config) {
			c.Profile = ProfileDefault
			c.ASN = func(a netip.Addr) uint32 { return uint32(a.As4()[1]%2) * 64500 }
		}, flux("a.evil.tk", 30), "a.evil.tk", true, func(t *testing.T, d Detail) {
			if d.Addresses[0].Network() != "45.0.0.0/16" || d.Addresses[1].Network() != "AS64500" || d.Addresses[1].ASN != 64500 {
				t.Errorf("addresses %+v", d.Addresses)
			}
		}},
		{"registered domain", defaultProfile, func(e *Engine, clk *fakeClock) {
			for i, a := range answers(8, 2, 200, 200) {
				clk.add(30 * time.Second)
				e.Observe(&Observation{Name: fmt.Sprintf("x%d.evil-wild.com", i), Addrs: a, MinTTL: 30})
			}
		}, "*.evil-wild.com", true, func(t *testing.T, d Detail) {
			if d.DomainName != "*.evil-wild.com" || d.Verdict.Level != LevelFlagged || d.Verdict.Reasons&ReasonRegisteredDomain == 0 ||
				d.Threshold != 12 || d.Terms.Score() != d.Verdict.Score || len(d.Addresses) != 16 {
				t.Errorf("got %+v", d)
			}
		}},
		{"seed profile", nil, flux("a.evil.tk", 30), "a.evil.tk", true, func(t *testing.T, d Detail) {
			if d.Verdict.Level != LevelFlagged || d.Terms != (ScoreTerms{}) || d.Verdict.Score != 3 || d.Threshold != 2 {
				t.Errorf("got %+v", d)
			}
		}},
		{"a name not seen", defaultProfile, flux("a.evil.tk", 30), "b.evil.tk", false, nil},
		{"a name neither suspicious nor flagged", defaultProfile, func(e *Engine, _ *fakeClock) {
			e.Observe(&Observation{Name: "www.example.com", Addrs: addrs("45.0.0.1"), MinTTL: 300})
		}, "www.example.com", false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &fakeClock{t: at("10:00:00")}
			e := newTestEngine(t, clk, tt.mod)
			tt.feed(e, clk)
			d, ok := e.Detail(tt.ask)
			if ok != tt.found {
				t.Fatalf("Detail(%q) found %v, want %v: %+v", tt.ask, ok, tt.found, d)
			}
			var listed []Detail
			e.EachDetail(func(x Detail) bool {
				if x.DomainName == tt.ask {
					listed = append(listed, x)
				}
				return true
			})
			if !ok {
				if len(listed) != 0 {
					t.Errorf("EachDetail gives %+v", listed)
				}
				return
			}
			if len(listed) != 1 || !reflect.DeepEqual(listed[0], d) {
				t.Errorf("Details lists %+v, want %+v", listed, d)
			}
			if d.Terms != (ScoreTerms{}) && d.Terms.Score() != d.Verdict.Score {
				t.Errorf("terms %+v sum to %v, the score is %v", d.Terms, d.Terms.Score(), d.Verdict.Score)
			}
			if d.SuspicionScore != d.Verdict.Score || len(d.IPAddressList) != len(d.Addresses) {
				t.Errorf("row %+v disagrees with the detail", d.Row)
			}
			tt.check(t, d)
		})
	}
}

func TestNetworkOf(t *testing.T) {
	tests := []struct {
		addr string
		asn  uint32
		want string
	}{
		{"45.1.2.3", 0, "45.1.0.0/16"},
		{"::ffff:45.1.2.3", 0, "45.1.0.0/16"},
		{"2a00:1:2:3::1", 0, "2a00:1::/32"},
		{"45.1.2.3", 16509, "AS16509"},
		{"2a00:1:2:3::1", 64500, "AS64500"},
	}
	for _, tt := range tests {
		if got := NetworkOf(netip.MustParseAddr(tt.addr), tt.asn); got != tt.want {
			t.Errorf("NetworkOf(%s, %d) = %q, want %q", tt.addr, tt.asn, got, tt.want)
		}
	}
}

// TestTopTiesInReportOrder checks that names of one level, score and
// second come in the report's order on the page (Top), and that a limit
// cuts the report's last of them, whatever the heap's order.
func TestTopTiesInReportOrder(t *testing.T) {
	clk := &fakeClock{t: at("10:00:00")}
	e := newTestEngine(t, clk, func(c *Config) { c.MinIPs, c.MinQueries = 1, 1 }) // seed profile: the score is the name's
	for i := range 12 {
		var set []string
		for j := range 5 { // the same evidence for each name
			set = append(set, fmt.Sprintf("45.%d.0.%d", i, j+1))
		}
		e.Observe(&Observation{Name: fmt.Sprintf("n%02d.evil.tk", i), Addrs: addrs(set...)})
	}
	var report []string
	for _, r := range e.Report() {
		report = append(report, r.DomainName)
	}
	top, _, _ := e.Top(len(report))
	var page []string
	for _, d := range top {
		page = append(page, d.DomainName)
		if d.Verdict.Score != top[0].Verdict.Score || d.Verdict.Level != top[0].Verdict.Level || !d.DetectionTime.Equal(top[0].DetectionTime) {
			t.Fatalf("setup: not all tied: %s %v %v %v", d.DomainName, d.Verdict.Level, d.Verdict.Score, d.DetectionTime)
		}
	}
	if !slices.Equal(page, report) {
		t.Errorf("tied names:\nreport %v\npage   %v", report, page)
	}
	five, _, _ := e.Top(5)
	var first []string
	for _, d := range five {
		first = append(first, d.DomainName)
	}
	if !slices.Equal(first, report[:5]) {
		t.Errorf("Top(5) shows %v, the report's first five are %v", first, report[:5])
	}
}

// TestTopMemory checks that Top, the report page's ranking, allocates
// with its limit, not with the names tracked: a name is copied out of its
// shard only for a summary kept, even when every name ties.
func TestTopMemory(t *testing.T) {
	clk := &fakeClock{t: at("10:00:00")}
	e := newTestEngine(t, clk, func(c *Config) { c.MinIPs, c.MinQueries = 1, 1 })
	const names = 4000
	for i := range names {
		e.Observe(&Observation{Name: fmt.Sprintf("n%05d.evil.tk", i), Addrs: addrs(fmt.Sprintf("45.%d.%d.1", i/250, i%250))})
	}
	if _, flagged, suspicious := e.Top(5); flagged+suspicious != names {
		t.Fatalf("setup: %d flagged, %d suspicious", flagged, suspicious)
	}
	allocs := testing.AllocsPerRun(3, func() { e.Top(5) })
	if allocs > names/4 {
		t.Errorf("Top(5) over %d suspicious names: %.0f allocations a call", names, allocs)
	}
}
