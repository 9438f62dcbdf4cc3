package fluxguard

import (
	"net/netip"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/miekg/dns"

	"github.com/fluxguard/fluxguard/internal/engine"
)

func TestReplyTTL(t *testing.T) {
	tests := []struct {
		name       string
		configured uint32
		holdLeft   time.Duration
		want       uint32
	}{
		{"no hold (denied)", 10, 0, 10},
		{"hold far off", 10, time.Hour, 10},
		{"hold ends first", 30, 20 * time.Second, 19},
		{"hold ends with the TTL", 10, 11 * time.Second, 10},
		{"last second of the hold", 10, time.Second, 0},
		{"a day configured, an hour held", 86400, time.Hour, 3599},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := replyTTL(tc.configured, tc.holdLeft); got != tc.want {
				t.Errorf("Expected TTL %d, got %d", tc.want, got)
			}
		})
	}
}

func TestSOAOwner(t *testing.T) {
	tests := []struct{ name, want string }{
		{"c2.evil.tk.", "evil.tk."},
		{"a.b.evil.tk.", "b.evil.tk."},
		{"evil.tk.", "tk."},
		{"tk.", "."},
		{".", "."},
	}
	for _, tc := range tests {
		if got := soaOwner(tc.name); got != tc.want {
			t.Errorf("soaOwner(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestBlockedText(t *testing.T) {
	all := engine.Reasons(0)
	for _, r := range blockedReasons {
		all |= r
	}
	tests := []struct {
		name string
		v    engine.Verdict
		want string
	}{
		{"default profile", engine.Verdict{Level: engine.LevelFlagged, Score: 13, UniqueIPs: 12, Networks: 11.6, TTL: 30,
			Reasons: engine.ReasonSuspiciousTLD | engine.ReasonPrefixDiversity | engine.ReasonRotating | engine.ReasonShortTTL},
			"fluxguard: flagged fast-flux (T1568.001), score 13: 12 IPs in 12 networks, TTL 30s; prefix_diversity,rotating,short_ttl,suspicious_tld"},
		{"seed profile", engine.Verdict{Level: engine.LevelFlagged, Score: 3, UniqueIPs: 10, TTL: 300,
			Reasons: engine.ReasonSuspiciousTLD | engine.ReasonShortSLD | engine.ReasonManyIPs},
			"fluxguard: flagged fast-flux (T1568.001), score 3: 10 IPs, TTL 300s; suspicious_tld,many_ips,short_sld"},
		{"shared pool first", engine.Verdict{Level: engine.LevelFlagged, Score: 1.25, UniqueIPs: 2, TTL: 60,
			Reasons: engine.ReasonShortTTL | engine.ReasonSharedPool},
			"fluxguard: flagged fast-flux (T1568.001), score 1.25: 2 IPs, TTL 60s; shared_pool,short_ttl"},
		{"registered domain", engine.Verdict{Level: engine.LevelFlagged, Score: 12.5, UniqueIPs: 16, Networks: 16, TTL: 30,
			Reasons: engine.ReasonRegisteredDomain | engine.ReasonPrefixDiversity | engine.ReasonRotating | engine.ReasonShortTTL},
			"fluxguard: flagged fast-flux (T1568.001), score 12.5: 16 IPs in 16 networks, TTL 30s; registered_domain,prefix_diversity,rotating,short_ttl"},
		{"denied", engine.Verdict{Level: engine.LevelFlagged, Reasons: engine.ReasonDenied}, "fluxguard: flagged; denied"},
		{"intel", engine.Verdict{Level: engine.LevelFlagged, Reasons: engine.ReasonIntel}, "fluxguard: flagged; intel"},
		{"level only", engine.Verdict{Level: engine.LevelFlagged}, "fluxguard: flagged fast-flux (T1568.001)"},
		{"everything, at the largest", engine.Verdict{Level: engine.LevelFlagged, Score: 123456.78, UniqueIPs: 1024, Networks: 64, TTL: 1<<32 - 1, Reasons: all},
			"fluxguard: flagged, score 123456.78: 1024 IPs in 64 networks, TTL 4294967295s; denied,intel,fleet,known_bad_addr,shared_pool,seed_rule," +
				"registered_domain,prefix_diversity,churn,rotating (+7 more)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := blockedText(tc.v)
			if got != tc.want {
				t.Errorf("Expected\n%q, got\n%q", tc.want, got)
			}
			if len(got) > maxBlockedText || !utf8.ValidString(got) {
				t.Errorf("Expected at most %d bytes of UTF-8, got %d: %q", maxBlockedText, len(got), got)
			}
		})
	}
	// Every reason is in the text's order.
	for i := range 32 {
		if r := engine.Reasons(1 << i); r.Name() != "" && all&r == 0 {
			t.Errorf("Reason %s is missing from blockedReasons", r.Name())
		}
	}
}

// TestTextCache checks that the cache gives each verdict its own text,
// however verdicts share slots, and that a text it holds costs no
// allocation.
func TestTextCache(t *testing.T) {
	var c textCache
	var verdicts []engine.Verdict
	for i := range 300 { // more than the slots: they are shared
		verdicts = append(verdicts, engine.Verdict{Level: engine.LevelFlagged, Score: float64(i%7) + 8, UniqueIPs: i, Networks: float64(i % 13),
			TTL: uint32(i % 3), Reasons: engine.Reasons(i%5) << 5})
	}
	verdicts = append(verdicts, engine.Verdict{Level: engine.LevelFlagged, Reasons: engine.ReasonDenied}, engine.Verdict{Level: engine.LevelFlagged})
	for round := range 3 {
		for i, v := range verdicts {
			if got, want := c.text(v), blockedText(v); got != want {
				t.Fatalf("Round %d, verdict %d: expected %q, got %q", round, i, want, got)
			}
		}
	}
	v := verdicts[42]
	c.text(v)
	if allocs := testing.AllocsPerRun(100, func() { c.text(v) }); allocs != 0 {
		t.Errorf("Expected a cached text to cost no allocation, got %v", allocs)
	}
}

func TestReply(t *testing.T) {
	v4, v6 := netip.MustParseAddr("192.0.2.53"), netip.MustParseAddr("2001:db8::53")
	tests := []struct {
		name     string
		action   action
		rcode    int          // block_rcode
		sinkhole []netip.Addr // nil for the default
		qtype    uint16
		edns     bool
		do       bool
		holdLeft time.Duration

		wantRcode  int
		wantAnswer int    // records, of qtype, with wantTTL
		wantSOA    bool   // the negative SOA, with wantTTL
		wantTTL    uint32 // of the answer or the SOA
	}{
		{"REFUSED", actionBlock, dns.RcodeRefused, nil, dns.TypeA, true, false, time.Hour, dns.RcodeRefused, 0, false, 0},
		{"REFUSED without EDNS", actionBlock, dns.RcodeRefused, nil, dns.TypeAAAA, false, false, time.Hour, dns.RcodeRefused, 0, false, 0},
		{"NXDOMAIN", actionBlock, dns.RcodeNameError, nil, dns.TypeA, true, false, time.Hour, dns.RcodeNameError, 0, true, 10},
		{"NXDOMAIN with DO", actionBlock, dns.RcodeNameError, nil, dns.TypeAAAA, true, true, time.Hour, dns.RcodeNameError, 0, true, 10},
		{"NXDOMAIN without EDNS", actionBlock, dns.RcodeNameError, nil, dns.TypeA, false, false, time.Hour, dns.RcodeNameError, 0, true, 10},
		{"NXDOMAIN at the hold's end", actionBlock, dns.RcodeNameError, nil, dns.TypeA, true, false, 5 * time.Second, dns.RcodeNameError, 0, true, 4},
		{"NXDOMAIN denied", actionBlock, dns.RcodeNameError, nil, dns.TypeA, true, false, 0, dns.RcodeNameError, 0, true, 10},
		{"sinkhole A", actionSinkhole, 0, nil, dns.TypeA, true, false, time.Hour, dns.RcodeSuccess, 1, false, 10},
		{"sinkhole AAAA", actionSinkhole, 0, nil, dns.TypeAAAA, false, false, time.Hour, dns.RcodeSuccess, 1, false, 10},
		{"sinkhole at the hold's end", actionSinkhole, 0, nil, dns.TypeA, true, false, 3 * time.Second, dns.RcodeSuccess, 1, false, 2},
		{"sinkhole two addresses", actionSinkhole, 0, []netip.Addr{v4, v4.Next()}, dns.TypeA, true, false, time.Hour, dns.RcodeSuccess, 2, false, 10},
		{"sinkhole NODATA for AAAA", actionSinkhole, 0, []netip.Addr{v4}, dns.TypeAAAA, true, false, time.Hour, dns.RcodeSuccess, 0, true, 10},
		{"sinkhole NODATA for A", actionSinkhole, 0, []netip.Addr{v6}, dns.TypeA, false, false, 7 * time.Second, dns.RcodeSuccess, 0, true, 6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := defaultConfig()
			cfg.action, cfg.blockRcode = tc.action, tc.rcode
			if tc.sinkhole != nil {
				cfg.sinkhole = tc.sinkhole
			}
			f := &Fluxguard{cfg: cfg}
			r := newQuery("c2.evil.tk.", tc.qtype)
			if tc.edns {
				r = newQueryEDNS("c2.evil.tk.", tc.qtype, 1400, tc.do)
			}
			m := f.reply(r, engine.Verdict{Level: engine.LevelFlagged, HoldLeft: tc.holdLeft})
			checkReplyTo(t, m, r)
			if m.Rcode != tc.wantRcode {
				t.Errorf("Expected rcode %s, got %s", dns.RcodeToString[tc.wantRcode], dns.RcodeToString[m.Rcode])
			}
			if m.Authoritative {
				t.Error("Expected AA clear: fluxguard is not the name's authority")
			}
			if len(m.Answer) != tc.wantAnswer {
				t.Errorf("Expected %d answer records, got:\n%s", tc.wantAnswer, m)
			}
			for _, rr := range m.Answer {
				if h := rr.Header(); h.Name != "c2.evil.tk." || h.Rrtype != tc.qtype || h.Ttl != tc.wantTTL {
					t.Errorf("Expected a %s record of c2.evil.tk. with TTL %d, got %s", dns.TypeToString[tc.qtype], tc.wantTTL, rr)
				}
			}
			if tc.wantSOA {
				checkNegativeSOA(t, m, tc.wantTTL)
			} else if len(m.Ns) != 0 {
				t.Errorf("Expected no authority records, got:\n%s", m)
			}
			checkEDE(t, m, tc.edns, 1400, tc.do, "fluxguard: flagged fast-flux (T1568.001)")
			packed(t, m)
		})
	}
}
