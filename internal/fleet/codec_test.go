package fleet

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/fluxguard/fluxguard/internal/engine"
)

func TestCodecRoundTrip(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	in := []engine.Shared{
		{Name: "x.evil.tk", Addrs: []netip.Addr{netip.MustParseAddr("45.0.0.1"), netip.MustParseAddr("2001:db8::1")},
			Clients: []netip.Addr{netip.MustParseAddr("10.0.0.1")}, Queries: 7, MinTTL: 30, HeldUntil: now.Add(time.Hour)},
		{Name: "*.evil.xyz", HeldUntil: now.Add(time.Minute)},
		{Name: "quiet.example.com", Queries: 1},
	}
	text, n := encode(nil, in)
	if n != len(in) {
		t.Fatalf("encoded %d names of %d", n, len(in))
	}
	var out []engine.Shared
	if bad := decode(string(text), now, func(s *engine.Shared) { out = append(out, *s) }); bad != 0 {
		t.Fatalf("%d lines refused in %q", bad, text)
	}
	if fmt.Sprint(out) != fmt.Sprint(in) {
		t.Errorf("decoded\n%v\nwant\n%v", out, in)
	}
}

// TestDecodeRefuses feeds decode what a hostile or broken writer could put
// in Redis: each bad line is refused, and the good line after it is kept.
func TestDecodeRefuses(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	long := strings.Repeat("a", 64)
	many := strings.TrimSuffix(strings.Repeat("45.0.0.1,", 65), ",")
	tests := []struct{ name, line string }{
		{"empty", ""},
		{"too few fields", "evil.tk 0 1 30 -"},
		{"too many fields", "evil.tk 0 1 30 - - -"},
		{"upper case", "Evil.tk 0 1 30 - -"},
		{"root dot", "evil.tk. 0 1 30 - -"},
		{"escape", `ev\032il.tk 0 1 30 - -`},
		{"inner wildcard", "a.*.evil.tk 0 1 30 - -"},
		{"double wildcard", "*.*.evil.tk 0 1 30 - -"},
		{"label too long", long + ".tk 0 1 30 - -"},
		{"name too long", strings.Repeat("a.", 130) + "tk 0 1 30 - -"},
		{"negative hold", "evil.tk -5 1 30 - -"},
		{"hold years ahead", fmt.Sprintf("evil.tk %d 1 30 - -", now.Add(400*24*time.Hour).Unix())},
		{"hold not a number", "evil.tk soon 1 30 - -"},
		{"queries too many", "evil.tk 0 99999999999 30 - -"},
		{"negative queries", "evil.tk 0 -1 30 - -"},
		{"ttl not a number", "evil.tk 0 1 x - -"},
		{"bad address", "evil.tk 0 1 30 45.0.0.300 -"},
		{"address with zone", "evil.tk 0 1 30 fe80::1%eth0 -"},
		{"empty list item", "evil.tk 0 1 30 45.0.0.1,,45.0.0.2 -"},
		{"list too long", "evil.tk 0 1 30 " + many + " -"},
		{"bad client", "evil.tk 0 1 30 - me"},
		{"binary", "evil.tk\x00 0 1 30 - -"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			bad := decode(tc.line+"\nok.tk 0 1 30 45.0.0.1 -\n", now, func(s *engine.Shared) { got = append(got, s.Name) })
			if bad != 1 || len(got) != 1 || got[0] != "ok.tk" {
				t.Errorf("decode(%q) refused %d and took %v; want the bad line refused and ok.tk taken", tc.line, bad, got)
			}
		})
	}
	if bad := decode(strings.Repeat("x", maxBatchBytes+1), now, func(*engine.Shared) { t.Error("took a line of an oversized batch") }); bad != 1 {
		t.Errorf("an oversized batch: %d refused, want 1", bad)
	}
}

// TestEncodeSplits checks that a batch stops before maxBatchBytes.
func TestEncodeSplits(t *testing.T) {
	names := make([]engine.Shared, 50000)
	for i := range names {
		names[i] = engine.Shared{Name: fmt.Sprintf("name-%06d.a-rather-long-registered-domain.example", i), Queries: 1}
	}
	text, n := encode(nil, names)
	if n == 0 || n == len(names) || len(text) > maxBatchBytes {
		t.Fatalf("encoded %d names in %d bytes", n, len(text))
	}
	if got := decode(string(text), time.Now(), func(*engine.Shared) {}); got != 0 {
		t.Errorf("%d lines of a cut batch refused", got)
	}
}

// BenchmarkCodec measures a name's way through a batch: encoded by one
// replica, decoded by another.
func BenchmarkCodec(b *testing.B) {
	names := make([]engine.Shared, 1000)
	for i := range names {
		names[i] = engine.Shared{Name: fmt.Sprintf("d%d.example.com", i), Queries: 1, MinTTL: 60,
			Addrs:   []netip.Addr{netip.MustParseAddr("45.0.0.1"), netip.MustParseAddr("45.0.0.2"), netip.MustParseAddr("45.0.0.3"), netip.MustParseAddr("45.0.0.4")},
			Clients: []netip.Addr{netip.MustParseAddr("10.0.0.1")}}
	}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = encode(buf[:0], names)
		decode(string(buf), time.Now(), func(*engine.Shared) {})
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(names)), "ns/name")
}

// FuzzDecode feeds decode arbitrary batches, as a hostile writer to the
// fleet's Redis could: it never panics, every line it takes is one the
// engine would take from a replica, and re-encoding it decodes the same.
func FuzzDecode(f *testing.F) {
	f.Add("login.fluxy.top 1796410000 3 30 45.12.7.1,103.4.9.1 10.0.0.7\n*.fluxy.top 1796410000 0 0 - -\n")
	f.Add("a 0 0 0 - -")
	f.Add("x.tk 0 1 30 ::ffff:1.2.3.4,2001:db8::1 -\n\n\n")
	now := time.Unix(1_796_400_000, 0)
	f.Fuzz(func(t *testing.T, batch string) {
		decode(batch, now, func(s *engine.Shared) {
			if _, err := decodeName(s.Name); err != nil || len(s.Addrs) > maxList || len(s.Clients) > maxList || s.Queries > maxQueries {
				t.Fatalf("took %+v", s)
			}
			text, _ := encode(nil, []engine.Shared{*s})
			var again []engine.Shared
			if bad := decode(string(text), now, func(s *engine.Shared) { again = append(again, *s) }); bad != 0 || len(again) != 1 ||
				fmt.Sprint(again[0]) != fmt.Sprint(*s) {
				t.Fatalf("%+v re-encoded as %q decodes as %+v", s, text, again)
			}
		})
	})
}
