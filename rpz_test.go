package fluxguard

import (
	"bytes"
	"errors"
	"fmt"
	golog "log"
	"maps"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/coredns/coredns/plugin/transfer"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/fluxguard/fluxguard/internal/engine"
)

const testRPZ = "rpz.example."

func newTestRPZ(t0 time.Time) *rpzZone {
	return newRPZZone(rpzConfig{zone: testRPZ, max: 100, refresh: time.Minute}, 10, t0)
}

func TestRPZTriggers(t *testing.T) {
	tests := []struct {
		name    string
		held    []engine.HeldName
		max     int
		want    map[string]string
		leftOut int
	}{
		{"none", nil, 10, map[string]string{}, 0},
		{"name", []engine.HeldName{{Name: "login.fluxy.top"}}, 10,
			map[string]string{"login.fluxy.top.rpz.example.": "."}, 0},
		{"registered domain: the domain and its wildcard", []engine.HeldName{{Name: "evil.tk", Subdomains: true}}, 10,
			map[string]string{"evil.tk.rpz.example.": ".", "*.evil.tk.rpz.example.": "."}, 0},
		{"allowed exception", []engine.HeldName{{Name: "evil.tk", Subdomains: true}, {Name: "ok.evil.tk", Subdomains: true, Allowed: true}}, 10,
			map[string]string{"evil.tk.rpz.example.": ".", "*.evil.tk.rpz.example.": ".",
				"ok.evil.tk.rpz.example.": "rpz-passthru.", "*.ok.evil.tk.rpz.example.": "rpz-passthru."}, 0},
		// A full zone leaves out the cover, never the exception.
		{"exceptions first", []engine.HeldName{{Name: "evil.tk", Subdomains: true}, {Name: "x.tk"}, {Name: "ok.evil.tk", Subdomains: true, Allowed: true}}, 1,
			map[string]string{"ok.evil.tk.rpz.example.": "rpz-passthru.", "*.ok.evil.tk.rpz.example.": "rpz-passthru."}, 2},
		{"exceptions first, then the rest", []engine.HeldName{{Name: "evil.tk", Subdomains: true}, {Name: "x.tk"}, {Name: "ok.evil.tk", Subdomains: true, Allowed: true}}, 2,
			map[string]string{"evil.tk.rpz.example.": ".", "*.evil.tk.rpz.example.": ".",
				"ok.evil.tk.rpz.example.": "rpz-passthru.", "*.ok.evil.tk.rpz.example.": "rpz-passthru."}, 1},
		{"capped at max names, the first kept", []engine.HeldName{{Name: "a.tk"}, {Name: "b.tk", Subdomains: true}, {Name: "c.tk"}, {Name: "d.tk"}}, 2,
			map[string]string{"a.tk.rpz.example.": ".", "b.tk.rpz.example.": ".", "*.b.tk.rpz.example.": "."}, 2},
		{"too long with the origin: left out, not by max", []engine.HeldName{{Name: strings.Repeat("a", 60) + "." + strings.Repeat("b", 60) + "." + strings.Repeat("c", 60) + "." + strings.Repeat("d", 60) + ".tk"}, {Name: "a.tk"}}, 1,
			map[string]string{"a.tk.rpz.example.": "."}, 0},
		{"255 octets with the origin", []engine.HeldName{{Name: strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 46) + ".tk"}}, 1,
			map[string]string{strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 46) + ".tk.rpz.example.": "."}, 0},
		{"escapes count one octet", []engine.HeldName{{Name: `x\@y.` + strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 42) + ".tk"}}, 1,
			map[string]string{`x\@y.` + strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 42) + ".tk.rpz.example.": "."}, 0},
		{"room for the domain, not its wildcard", []engine.HeldName{{Name: strings.Repeat("a", 60) + "." + strings.Repeat("b", 60) + "." + strings.Repeat("c", 60) + "." + strings.Repeat("d", 54) + ".tk", Subdomains: true}}, 1,
			map[string]string{strings.Repeat("a", 60) + "." + strings.Repeat("b", 60) + "." + strings.Repeat("c", 60) + "." + strings.Repeat("d", 54) + ".tk.rpz.example.": "."}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, leftOut := rpzTriggers(tt.held, rpzConfig{zone: testRPZ, max: tt.max}, nil, nil)
			if !maps.Equal(got, tt.want) || leftOut != tt.leftOut {
				t.Errorf("got %v, %d left out; want %v, %d", got, leftOut, tt.want, tt.leftOut)
			}
		})
	}
}

// TestRPZIPEncoding checks the rpz-ip encoding of one address, as BIND writes it.
func TestRPZIPEncoding(t *testing.T) {
	tests := []struct {
		addr, want string
	}{
		{"198.51.100.10", "32.10.100.51.198"},
		{"::ffff:198.51.100.10", "32.10.100.51.198"}, // IPv4-mapped: IPv4
		{"2001:db8:1:2:3:4:5:6", "128.6.5.4.3.2.1.db8.2001"},
		{"2001:db8::10", "128.10.zz.db8.2001"},
		{"2001:db8:0:1:2:3:4:5", "128.5.4.3.2.1.0.db8.2001"}, // a single zero group: no zz
		{"2001:0:0:1:0:0:2:3", "128.3.2.0.0.1.zz.2001"},      // of two runs as long, the leftmost
		{"2001:0:0:1:0:0:0:3", "128.3.zz.1.0.0.2001"},        // the longest
		{"2a05:d000::", "128.zz.d000.2a05"},
		{"::1", "128.1.zz"},
		{"::", "128.zz"},
	}
	for _, tt := range tests {
		if got := rpzIP(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("rpzIP(%s) = %s, want %s", tt.addr, got, tt.want)
		}
	}
}

// TestRPZTriggersIP checks the zone's content with the ip sub-option on and
// off: the addresses of held exact names become rpz-ip triggers, once each,
// but for the non-public and front-door ones, and never a registered
// domain's or a rule's; they count against max after the names.
func TestRPZTriggersIP(t *testing.T) {
	frontDoor := func(a netip.Addr) bool { return netip.MustParsePrefix("104.16.0.0/13").Contains(a) }
	held := []engine.HeldName{
		{Name: "a.fluxy.top"},
		{Name: "b.fluxy.top"},
		{Name: "evil.tk", Subdomains: true},
		{Name: "ok.evil.tk", Subdomains: true, Allowed: true},
	}
	addrs := map[string][]netip.Addr{
		"a.fluxy.top": addrList("45.0.0.1", "104.16.1.1", "2a05:d000::1", "10.0.0.1"),
		"b.fluxy.top": addrList("45.0.0.1", "::ffff:45.0.0.2"),
		"evil.tk":     addrList("45.0.0.3"),
		"ok.evil.tk":  addrList("45.0.0.4"),
	}
	names := map[string]string{
		"a.fluxy.top." + testRPZ: ".", "b.fluxy.top." + testRPZ: ".",
		"evil.tk." + testRPZ: ".", "*.evil.tk." + testRPZ: ".",
		"ok.evil.tk." + testRPZ: "rpz-passthru.", "*.ok.evil.tk." + testRPZ: "rpz-passthru.",
	}
	ips := map[string]string{
		"32.1.0.0.45.rpz-ip." + testRPZ: ".", "128.1.zz.d000.2a05.rpz-ip." + testRPZ: ".",
		"32.2.0.0.45.rpz-ip." + testRPZ: ".",
	}
	tests := []struct {
		name    string
		ip      bool
		max     int
		want    map[string]string
		leftOut int
	}{
		{"off", false, 100, names, 0},
		{"on", true, 100, union(names, ips), 0},
		// A duplicate, a front door and a private address take no room.
		{"on, max: names first, then addresses", true, 7, union(names, ips), 0},
		// b's new address, past the room left.
		{"on, max: the room left", true, 6, union(names, map[string]string{
			"32.1.0.0.45.rpz-ip." + testRPZ: ".", "128.1.zz.d000.2a05.rpz-ip." + testRPZ: "."}), 1},
		// The exception first; then a name; b and the domain left out,
		// and two addresses, counted up to max.
		{"on, max taken by names", true, 2, map[string]string{"a.fluxy.top." + testRPZ: ".",
			"ok.evil.tk." + testRPZ: "rpz-passthru.", "*.ok.evil.tk." + testRPZ: "rpz-passthru."}, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addrsOf := func(buf []netip.Addr, name string) []netip.Addr { return append(buf, addrs[name]...) }
			got, leftOut := rpzTriggers(held, rpzConfig{zone: testRPZ, max: tt.max, ip: tt.ip}, frontDoor, addrsOf)
			if !maps.Equal(got, tt.want) || leftOut != tt.leftOut {
				t.Errorf("got %v, %d left out; want %v, %d", zoneOf(got), leftOut, zoneOf(tt.want), tt.leftOut)
			}
		})
	}
}

func addrList(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func union(a, b map[string]string) map[string]string {
	out := maps.Clone(a)
	maps.Copy(out, b)
	return out
}

// zoneOf renders a zone's content as "owner>target" strings, sorted.
func zoneOf(records map[string]string) []string {
	var out []string
	for o, t := range records {
		out = append(out, o+">"+t)
	}
	slices.Sort(out)
	return out
}

// rrStrings renders records briefly: "SOA n" with the serial, or
// "owner>target" for a CNAME, "NS" for the NS.
func rrStrings(rrs []dns.RR) []string {
	out := make([]string, len(rrs))
	for i, rr := range rrs {
		switch rr := rr.(type) {
		case *dns.SOA:
			out[i] = fmt.Sprintf("SOA %d", rr.Serial)
		case *dns.CNAME:
			out[i] = rr.Hdr.Name + ">" + rr.Target
		case *dns.NS:
			out[i] = "NS"
		default:
			out[i] = rr.String()
		}
	}
	return out
}

// TestRPZUpdate checks that the serial advances on every change, and only
// then, to the clock's second, a change waiting for the clock to pass the
// serial, but the first, at once; that the journal keeps each change but
// the first; and that a clock stepped back does not stop the serial.
func TestRPZUpdate(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	z := newTestRPZ(t0)
	a, b := "a.tk."+testRPZ, "b.tk."+testRPZ
	steps := []struct {
		at      time.Duration
		next    map[string]string
		changed bool
		serial  uint32
	}{
		{0, map[string]string{}, true, 1_800_000_001},                     // the first content, empty too, at once
		{0, map[string]string{a: "."}, false, 1_800_000_001},              // a second ahead: the clock must pass it
		{time.Second, map[string]string{a: "."}, false, 1_800_000_001},    // the serial's second
		{2 * time.Second, map[string]string{a: "."}, true, 1_800_000_002}, // journaled from here
		{2 * time.Second, map[string]string{a: ".", b: "."}, false, 1_800_000_002},
		{3 * time.Second, map[string]string{a: ".", b: "."}, true, 1_800_000_003},
		{4 * time.Second, map[string]string{a: ".", b: "."}, false, 1_800_000_003}, // no change, no new serial
		{time.Minute, map[string]string{b: "."}, true, 1_800_000_060},              // the clock's seconds
		{time.Minute + time.Second, map[string]string{b: "rpz-passthru."}, true, 1_800_000_061},
		{0, map[string]string{a: ".", b: "rpz-passthru."}, true, 1_800_000_062}, // the clock stepped back
	}
	var zone map[string]string
	for i, s := range steps {
		if got := z.update(s.next, t0.Add(s.at)); got != s.changed || z.serial != s.serial {
			t.Fatalf("step %d: changed %v, serial %d; want %v, %d", i, got, z.serial, s.changed, s.serial)
		}
		if s.changed {
			zone = s.next
		}
		if !slices.Equal(zoneOf(z.records), zoneOf(zone)) {
			t.Fatalf("step %d: zone %v", i, zoneOf(z.records))
		}
	}
	if len(z.journal) != 5 { // all but the first content
		t.Fatalf("journal of %d differences, want 5", len(z.journal))
	}
	last := z.journal[3]
	if last.from != 1_800_000_060 || last.to != 1_800_000_061 || !maps.Equal(last.del, map[string]string{b: "."}) || !maps.Equal(last.add, map[string]string{b: "rpz-passthru."}) {
		t.Errorf("fourth difference %+v", last)
	}
}

// TestRPZTransfer checks what a transfer sends for each serial a
// secondary may hold: the SOA alone when it is current, the differences
// since (IXFR) while the journal has them, the whole zone otherwise.
func TestRPZTransfer(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	z := newTestRPZ(t0)
	a, b, c := "a.tk."+testRPZ, "b.tk."+testRPZ, "c.tk."+testRPZ
	z.update(map[string]string{a: "."}, t0)                            // 1
	z.update(map[string]string{a: ".", b: "."}, t0.Add(2*time.Second)) // 2
	z.update(map[string]string{b: ".", c: "."}, t0.Add(3*time.Second)) // 3
	axfr := []string{"SOA 1800000003", "NS", b + ">.", c + ">.", "SOA 1800000003"}
	tests := []struct {
		name   string
		serial uint32
		want   []string
	}{
		{"AXFR", 0, axfr},
		{"current", 1_800_000_003, []string{"SOA 1800000003"}},
		{"newer than ours", 1_800_000_100, []string{"SOA 1800000003"}},
		{"one behind: one name added, one deleted", 1_800_000_002, []string{"SOA 1800000003",
			"SOA 1800000002", a + ">.", "SOA 1800000003", c + ">.", "SOA 1800000003"}},
		{"one change of one name", 1_800_000_001, []string{"SOA 1800000003",
			"SOA 1800000001", "SOA 1800000002", b + ">.",
			"SOA 1800000002", a + ">.", "SOA 1800000003", c + ">.", "SOA 1800000003"}},
		// A new zone's first content is not journaled: a secondary at its
		// first serial may hold another process's zone at that serial.
		{"from the first serial: AXFR", 1_800_000_000, axfr},
		{"unknown to the journal: AXFR", 1_700_000_000, axfr},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch, err := z.transfer("RPZ.example", tt.serial)
			if err != nil {
				t.Fatal(err)
			}
			var got []dns.RR
			for rrs := range ch {
				got = append(got, rrs...)
			}
			if s := rrStrings(got); !slices.Equal(s, tt.want) {
				t.Errorf("got  %q\nwant %q", s, tt.want)
			}
		})
	}
	if _, err := z.transfer("example.", 0); !errors.Is(err, transfer.ErrNotAuthoritative) {
		t.Errorf("another zone: %v, want ErrNotAuthoritative", err)
	}
}

// TestRPZJournalBounded checks that the journal keeps at most rpzJournal
// differences, and that a serial older than the journal gets the whole
// zone, in messages of rpzBatch records.
func TestRPZJournalBounded(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	z := newTestRPZ(t0)
	next := map[string]string{}
	for i := range rpzJournal + 10 {
		next = maps.Clone(next)
		next[fmt.Sprintf("n%d.tk.%s", i, testRPZ)] = "."
		z.update(next, t0.Add(time.Duration(i+1)*time.Second))
	}
	if len(z.journal) != rpzJournal || z.journal[0].from != 1_800_000_010 {
		t.Fatalf("journal of %d from %d", len(z.journal), z.journal[0].from)
	}
	if got := rrStrings(z.transferRecords(1_800_000_009)); len(got) != len(next)+3 || got[1] != "NS" {
		t.Errorf("a serial the journal forgot: %d records, want the zone's %d", len(got), len(next)+3)
	}
	if got := z.transferRecords(1_800_000_010); len(got) != 2+3*rpzJournal { // per difference: two SOAs, one name added
		t.Errorf("the journal's first serial: %d records, want %d", len(got), 2+3*rpzJournal)
	}

	big := map[string]string{}
	for i := range 2*rpzBatch + 1 {
		big[fmt.Sprintf("n%d.tk.%s", i, testRPZ)] = "."
	}
	z.update(big, t0.Add(time.Hour))
	ch, _ := z.transfer(testRPZ, 0)
	var sizes []int
	for rrs := range ch {
		sizes = append(sizes, len(rrs))
	}
	if want := []int{rpzBatch, rpzBatch, 4}; !slices.Equal(sizes, want) {
		t.Errorf("messages of %v records, want %v", sizes, want)
	}
}

// TestRPZAnswer checks fluxguard's answers for the names of the zone, as
// its primary, and that other queries pass.
func TestRPZAnswer(t *testing.T) {
	z := newTestRPZ(time.Unix(1_800_000_000, 0))
	z.update(map[string]string{
		"a.tk." + testRPZ:         ".",
		"evil.tk." + testRPZ:      ".",
		"*.evil.tk." + testRPZ:    ".",
		"ok.evil.tk." + testRPZ:   "rpz-passthru.",
		"*.ok.evil.tk." + testRPZ: "rpz-passthru.",
	}, time.Unix(1_800_000_001, 0))
	tests := []struct {
		qname  string
		qtype  uint16
		rcode  int
		answer []string
		soa    bool // in the authority section
	}{
		{"rpz.example.", dns.TypeSOA, dns.RcodeSuccess, []string{"SOA 1800000001"}, false},
		{"RPZ.Example.", dns.TypeSOA, dns.RcodeSuccess, []string{"SOA 1800000001"}, false},
		{"rpz.example.", dns.TypeNS, dns.RcodeSuccess, []string{"NS"}, false},
		{"rpz.example.", dns.TypeA, dns.RcodeSuccess, nil, true},
		{"a.tk.rpz.example.", dns.TypeA, dns.RcodeSuccess, []string{"a.tk.rpz.example.>."}, false},
		{"x.y.evil.tk.rpz.example.", dns.TypeA, dns.RcodeSuccess, []string{"x.y.evil.tk.rpz.example.>."}, false},
		{"x.ok.evil.tk.rpz.example.", dns.TypeA, dns.RcodeSuccess, []string{"x.ok.evil.tk.rpz.example.>rpz-passthru."}, false},
		{"x.a.tk.rpz.example.", dns.TypeA, dns.RcodeNameError, nil, true},
		{"b.tk.rpz.example.", dns.TypeA, dns.RcodeNameError, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.qname+"/"+dns.TypeToString[tt.qtype], func(t *testing.T) {
			r := new(dns.Msg)
			r.SetQuestion(tt.qname, tt.qtype)
			w := dnstest.NewRecorder(&test.ResponseWriter{})
			if !z.answer(w, r) {
				t.Fatal("not answered")
			}
			m := w.Msg
			if m.Rcode != tt.rcode || !m.Authoritative || !slices.Equal(rrStrings(m.Answer), tt.answer) || (len(m.Ns) == 1) != tt.soa {
				t.Errorf("got\n%s", m)
			}
		})
	}
	for _, q := range []struct {
		name  string
		qtype uint16
	}{{"rpz.example.", dns.TypeAXFR}, {"rpz.example.", dns.TypeIXFR}, {"example.", dns.TypeSOA}, {"xrpz.example.", dns.TypeA}, {"a.tk.", dns.TypeA}} {
		r := new(dns.Msg)
		r.SetQuestion(q.name, q.qtype)
		if z.answer(dnstest.NewRecorder(&test.ResponseWriter{}), r) {
			t.Errorf("%s %s answered, want passed on", q.name, dns.TypeToString[q.qtype])
		}
	}
}

// TestRPZHandler checks the rpz option end to end in the handler: a name
// flagged in the chain becomes a trigger, fluxguard answers the zone's
// queries without the rest of the chain, and transfers it; without the
// option it is not authoritative for any zone.
func TestRPZHandler(t *testing.T) {
	f, up := newTestFluxguard(t, "fluxguard . {\n rpz rpz.example\n action block\n}")
	server := serverLabel(t)
	for range 3 {
		serve(t, newContext(server), f, newQuery("c2.evil.tk.", dns.TypeA))
	}
	if !f.updateRPZ(time.Now().Add(time.Second)) { // a second after the zone's start (see rpzZone)
		t.Fatal("Expected the flagged name to change the zone")
	}
	calls := up.total
	tests := []struct {
		qname  string
		qtype  uint16
		answer string
	}{
		{"rpz.example.", dns.TypeSOA, "SOA"},
		{"c2.evil.tk.rpz.example.", dns.TypeA, "c2.evil.tk.rpz.example.>."},
		{"C2.Evil.TK.rpz.example.", dns.TypeAAAA, "C2.Evil.TK.rpz.example.>."},
	}
	for _, tt := range tests {
		rec, _ := serve(t, newContext(server), f, newQuery(tt.qname, tt.qtype))
		if got := rrStrings(rec.Msg.Answer); len(got) != 1 || !strings.HasPrefix(got[0], tt.answer) || !rec.Msg.Authoritative {
			t.Errorf("%s %s: got\n%s", tt.qname, dns.TypeToString[tt.qtype], rec.Msg)
		}
	}
	if up.total != calls {
		t.Errorf("Expected the zone's queries answered by fluxguard, the chain got %d", up.total-calls)
	}
	ch, err := f.Transfer("rpz.example.", 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []dns.RR
	for rrs := range ch {
		got = append(got, rrs...)
	}
	if s := rrStrings(got); len(s) != 4 || s[2] != "c2.evil.tk.rpz.example.>." {
		t.Errorf("AXFR: %q", s)
	}

	plain, _ := newTestFluxguard(t, "fluxguard")
	if _, err := plain.Transfer("rpz.example.", 0); !errors.Is(err, transfer.ErrNotAuthoritative) {
		t.Errorf("Expected ErrNotAuthoritative without rpz, got %v", err)
	}
}

// TestRPZHandlerIP checks the ip sub-option in the handler: the addresses
// the flagged name answered become rpz-ip triggers, which fluxguard
// answers as the zone's primary.
func TestRPZHandlerIP(t *testing.T) {
	for _, ip := range []bool{false, true} {
		corefile := "fluxguard . {\n rpz rpz.example\n action block\n}"
		if ip {
			corefile = "fluxguard . {\n rpz rpz.example ip\n action block\n}"
		}
		f, _ := newTestFluxguard(t, corefile)
		server := serverLabel(t)
		for range 3 {
			serve(t, newContext(server), f, newQuery("c2.evil.tk.", dns.TypeA))
		}
		want := map[string]string{"c2.evil.tk.rpz.example.": "."}
		if ip {
			for k := 1; k <= 8; k++ { // flux's addresses of three answers
				want[fmt.Sprintf("32.%d.0.0.45.rpz-ip.rpz.example.", k)] = "."
			}
		}
		if got, _ := f.rpzRecords(); !maps.Equal(got, want) {
			t.Fatalf("ip %v: zone %v, want %v", ip, zoneOf(got), zoneOf(want))
		}
		f.updateRPZ(time.Now().Add(time.Second))
		rec, _ := serve(t, newContext(server), f, newQuery("32.1.0.0.45.rpz-ip.rpz.example.", dns.TypeA))
		if got := rrStrings(rec.Msg.Answer); ip && !slices.Equal(got, []string{"32.1.0.0.45.rpz-ip.rpz.example.>."}) ||
			!ip && rec.Msg.Rcode != dns.RcodeNameError {
			t.Errorf("ip %v: the trigger's query answered %s %v", ip, dns.RcodeToString[rec.Msg.Rcode], got)
		}
	}
}

// TestRPZIPBounded: with ip, the addresses past a full zone are counted as
// left out up to max: the names after are not read.
func TestRPZIPBounded(t *testing.T) {
	const names, perName, max = 30, 12, 40
	f, _ := newTestFluxguard(t, fmt.Sprintf("fluxguard . {\n profile seed\n rpz rpz.example max %d ip\n action block\n}", max))
	for i := range names {
		for answer := range 3 {
			obs := engine.Observation{Name: fmt.Sprintf("h%d.evil.tk", i), MinTTL: 30}
			for j := range perName / 3 {
				obs.Addrs = append(obs.Addrs, netip.AddrFrom4([4]byte{45, byte(i), byte(answer), byte(j + 1)}))
			}
			f.eng.Observe(&obs)
		}
	}
	// The name whose addresses cross max is read whole, then no more.
	records, leftOut := f.rpzRecords()
	if len(records) != max || leftOut < max || leftOut >= max+perName {
		t.Errorf("%d records, %d left out; want %d, and %d to %d", len(records), leftOut, max, max, max+perName-1)
	}
}

// TestRPZFilledByExceptions: a zone the allow exceptions fill blocks
// nothing, which the log says each time it starts.
func TestRPZFilledByExceptions(t *testing.T) {
	var logged bytes.Buffer
	golog.SetOutput(&logged)
	defer golog.SetOutput(os.Stderr)
	f, _ := newTestFluxguard(t, "fluxguard . {\n rpz rpz.example max 2 ip\n action block\n}")
	flagFlux(t, f.eng, "c2.evil.tk")
	allow := func(names ...string) {
		var rules []engine.Rule
		for _, n := range names {
			rules = append(rules, engine.Rule{Name: n})
		}
		f.eng.SetPolicy(engine.NewPolicy(rules, nil, nil))
		f.rpzRecords()
	}
	allow("a.example", "b.example")
	allow("a.example")
	allow("a.example", "b.example")
	if n := strings.Count(logged.String(), "allow exceptions fill its max"); n != 2 {
		t.Errorf("said %d times, want 2:\n%s", n, logged.String())
	}
}

// TestRPZMetrics checks the zone's series: its serial, triggers and the
// entries max leaves out follow each update; each transfer of the zone
// counts by the type asked for, and those of other zones do not; stop
// removes the gauges.
func TestRPZMetrics(t *testing.T) {
	f, _ := newTestFluxguard(t, "fluxguard . {\n rpz rpz.example max 1\n action block\n}")
	m := f.rpzMetrics
	server := serverLabel(t)
	for _, name := range []string{"c2.evil.tk.", "c3.evil.tk."} {
		for range 3 {
			serve(t, newContext(server), f, newQuery(name, dns.TypeA))
		}
	}
	if !f.updateRPZ(time.Now().Add(time.Second)) {
		t.Fatal("Expected the flagged names to change the zone")
	}
	serial, _ := f.rpz.size()
	if got := [3]float64{toFloat64(m.serial), toFloat64(m.records), toFloat64(m.leftOut)}; got != [3]float64{float64(serial), 1, 1} {
		t.Errorf("serial, records, left out: %v; want %d, 1, 1", got, serial)
	}

	for _, tr := range []struct {
		zone   string
		serial uint32
	}{{"rpz.example.", 0}, {"RPZ.example.", serial - 1}, {"rpz.example.", serial}, {"example.", 0}} {
		if ch, err := f.Transfer(tr.zone, tr.serial); err == nil {
			for range ch {
			}
		}
	}
	if axfr, ixfr := toFloat64(m.axfr), toFloat64(m.ixfr); axfr != 1 || ixfr != 2 {
		t.Errorf("transfers counted: axfr %v, ixfr %v; want 1, 2", axfr, ixfr)
	}

	f.stop()
	if n := seriesCount(rpzSerial, m.server, m.zone) + seriesCount(rpzRecords, m.server, m.zone) + seriesCount(rpzLeftOut, m.server, m.zone); n != 0 {
		t.Errorf("%d gauges left after stop", n)
	}
}

// seriesCount returns how many series of v carry the labels server and zone.
func seriesCount(v *prometheus.GaugeVec, server, zone string) int {
	ch := make(chan prometheus.Metric, 16)
	go func() { v.Collect(ch); close(ch) }()
	n := 0
	for m := range ch {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			panic(err)
		}
		labels := map[string]string{}
		for _, l := range pb.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["server"] == server && labels["zone"] == zone {
			n++
		}
	}
	return n
}

// secondary is a secondary's copy of a zone, kept up to date from what
// transfers send, as RFC 1995 has it.
type secondary struct {
	serial  uint32
	records map[string]string
}

// refresh transfers z from the secondary's serial (IXFR; AXFR at first).
func (s *secondary) refresh(z *rpzZone) {
	rrs := z.transferRecords(s.serial)
	current := rrs[0].(*dns.SOA).Serial
	switch {
	case len(rrs) == 1: // up to date
	case s.serial != 0 && len(rrs) > 2 && rrs[1].Header().Rrtype == dns.TypeSOA: // the differences
		deleting := false
		for _, rr := range rrs[1 : len(rrs)-1] {
			switch rr := rr.(type) {
			case *dns.SOA:
				deleting = !deleting
			case *dns.CNAME:
				if deleting {
					delete(s.records, rr.Hdr.Name)
				} else {
					s.records[rr.Hdr.Name] = rr.Target
				}
			}
		}
	default: // the whole zone
		s.records = map[string]string{}
		for _, rr := range rrs {
			if c, ok := rr.(*dns.CNAME); ok {
				s.records[c.Hdr.Name] = c.Target
			}
		}
	}
	s.serial = current
}

// TestRPZAcrossReloads checks that a reload keeps the zone a secondary
// holds, so that its transfers stay right: a new zone would start at the
// clock's second, the serial the old one had just reached with other
// content, and the secondary would keep a name the reload allowed.
func TestRPZAcrossReloads(t *testing.T) {
	const key = "TestRPZAcrossReloads#0"
	defer forgetState(key)
	engineFor(key, defaultConfig()) // the block's engine, made by its setup first
	cfg := rpzConfig{zone: testRPZ, max: 100, refresh: time.Minute}
	t0 := time.Unix(1_800_000_000, 0)
	a, x, b := "a.tk."+testRPZ, "x.tk."+testRPZ, "b.tk."+testRPZ

	z := rpzZoneFor(key, cfg, 10, t0.Add(-time.Second))
	z.update(map[string]string{a: ".", x: "."}, t0)
	sec := &secondary{}
	sec.refresh(z)

	steps := []struct {
		name string
		cfg  rpzConfig
		ttl  uint32
		next map[string]string
		same bool // the reload keeps the zone
	}{
		{"x.tk allowed, reloaded a second later", cfg, 10, map[string]string{a: "."}, true},
		{"another name flagged", cfg, 10, map[string]string{a: ".", b: "."}, true},
		{"a new sinkhole_ttl", cfg, 30, map[string]string{a: ".", b: "."}, true},
		{"a new refresh", rpzConfig{zone: testRPZ, max: 100, refresh: time.Hour}, 30, map[string]string{b: "."}, true},
		{"another zone", rpzConfig{zone: "other." + testRPZ, max: 100, refresh: time.Hour}, 30, map[string]string{"b.tk.other." + testRPZ: "."}, false},
	}
	for i, s := range steps {
		now := t0.Add(time.Duration(2*i+1) * time.Second)
		next := rpzZoneFor(key, s.cfg, s.ttl, now)
		if (next == z) != s.same {
			t.Errorf("%s: zone kept %v, want %v", s.name, next == z, s.same)
		}
		if !s.same {
			sec = &secondary{}
		}
		z = next
		z.configure(s.cfg, s.ttl)
		z.update(s.next, now.Add(time.Second))
		sec.refresh(z)
		whole := &secondary{}
		whole.refresh(z)
		if sec.serial != whole.serial || !maps.Equal(sec.records, whole.records) {
			t.Errorf("%s: the secondary holds serial %d %v; the zone is serial %d %v", s.name, sec.serial, sec.records, whole.serial, whole.records)
		}
		if soa := z.transferRecords(0)[0].(*dns.SOA); soa.Minttl != s.ttl || soa.Refresh != uint32(s.cfg.refresh/time.Second) {
			t.Errorf("%s: SOA %v", s.name, soa)
		}
	}
}

// TestRPZRestart checks that a restarted process's zone, made in the very
// second of its predecessor's last change, brings a secondary holding the
// predecessor's zone to its own content.
func TestRPZRestart(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	a, x, b := "a.tk."+testRPZ, "x.tk."+testRPZ, "b.tk."+testRPZ
	old := newTestRPZ(t0)
	for i := 1; i <= 5; i++ { // a change every second
		old.update(map[string]string{a: ".", x: ".", fmt.Sprintf("n%d.tk.%s", i, testRPZ): "."}, t0.Add(time.Duration(i)*time.Second))
	}
	sec := &secondary{}
	sec.refresh(old)
	restart := t0.Add(5 * time.Second)
	z := newTestRPZ(restart)
	// In the restart's own second the new zone has no content yet, at the
	// serial the secondary holds: it keeps its copy until the next second.
	for i, next := range []map[string]string{{a: "."}, {a: "."}, {a: ".", b: "."}} {
		z.update(next, restart.Add(time.Duration(i)*time.Second))
		if i == 0 {
			continue
		}
		sec.refresh(z)
		whole := &secondary{}
		whole.refresh(z)
		if sec.serial != whole.serial || !maps.Equal(sec.records, whole.records) {
			t.Errorf("update %d: the secondary holds serial %d %v; the zone is serial %d %v", i, sec.serial, zoneOf(sec.records), whole.serial, zoneOf(whole.records))
		}
	}
}

// TestRPZFirstContentAtOnce checks that a zone's first update, in the
// second the zone was made (runRPZ's first, at startup), brings its
// content: the NOTIFY that follows must not hand the secondaries an empty
// zone at a serial newer than theirs.
func TestRPZFirstContentAtOnce(t *testing.T) {
	// Just past a second's start: setup and the first update share it.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 10*time.Millisecond)))
	f, _ := newTestFluxguard(t, "fluxguard . {\n rpz rpz.example\n deny c2.evil.tk\n}")
	// The predecessor's zone, as a secondary holds it.
	sec := &secondary{serial: uint32(time.Now().Add(-time.Minute).Unix()), records: map[string]string{"c2.evil.tk.rpz.example.": "."}}
	f.updateRPZ(time.Now())
	sec.refresh(f.rpz)
	if _, ok := sec.records["c2.evil.tk.rpz.example."]; !ok {
		t.Errorf("after the first update the secondary holds serial %d with %v: the denied name is not blocked", sec.serial, zoneOf(sec.records))
	}
}

// TestRPZRetimedThenRestart checks that new timers (a reload changing
// sinkhole_ttl) do not put the serial ahead of the clock, where a process
// restarted in that second would meet it with other content.
func TestRPZRetimedThenRestart(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	a, x := "a.tk."+testRPZ, "x.tk."+testRPZ
	old := newTestRPZ(t0.Add(-10 * time.Second))
	old.update(map[string]string{a: ".", x: "."}, t0)
	old.configure(rpzConfig{zone: testRPZ, max: 100, refresh: time.Minute}, 30) // a reload in that second
	old.update(map[string]string{a: ".", x: "."}, t0)
	sec := &secondary{}
	sec.refresh(old)
	z := newTestRPZ(t0) // restarted in the same second
	z.update(map[string]string{a: "."}, t0)
	sec.refresh(z)
	whole := &secondary{}
	whole.refresh(z)
	if sec.serial != whole.serial || !maps.Equal(sec.records, whole.records) {
		t.Errorf("the secondary holds serial %d %v; the zone is serial %d %v", sec.serial, zoneOf(sec.records), whole.serial, zoneOf(whole.records))
	}
}

// TestRPZRestartNothingHeld checks that a process restarted in the second
// of its predecessor's last change, with nothing to hold (no state file,
// or the deny rule the restart came to remove), advances its empty zone
// past the serial the secondaries hold with the predecessor's content.
func TestRPZRestartNothingHeld(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	x := "c2.evil.tk." + testRPZ
	old := newTestRPZ(t0.Add(-time.Hour))
	old.update(map[string]string{x: "."}, t0) // its last change, at t0
	sec := &secondary{}
	sec.refresh(old)
	z := newTestRPZ(t0.Add(300 * time.Millisecond)) // restarted within that second
	for i := range 60 {                             // a minute of runRPZ's updates (and NOTIFYs), then the SOA refresh
		z.update(map[string]string{}, t0.Add(300*time.Millisecond+time.Duration(i)*time.Second))
	}
	sec.refresh(z)
	whole := &secondary{}
	whole.refresh(z)
	if sec.serial != whole.serial || !maps.Equal(sec.records, whole.records) {
		t.Errorf("a minute after the restart the secondary holds serial %d %v; the zone is serial %d %v", sec.serial, zoneOf(sec.records), whole.serial, zoneOf(whole.records))
	}
}

// realSecondary is a secondary as BIND runs one: it asks the SOA and
// transfers only when the primary's serial is newer than its own (RFC
// 1982), by IXFR from its serial; the transfer itself is secondary's.
type realSecondary struct{ secondary }

func (s *realSecondary) poll(z *rpzZone) {
	serial, _ := z.size()
	if s.serial == 0 && s.records == nil || serialBefore(s.serial, serial) {
		s.secondary.refresh(z)
	}
}

// TestRPZRandomTransfers replays random sequences of updates (the clock
// going on by 0-3 s, stepping back now and then), reloads that change the
// timers (configure), and restarts (a new zone at the clock's second,
// never while the old serial is ahead of the clock: the documented
// exception), with three secondaries polling at random. Invariants:
// within a zone the serial never goes back; a serial, once advertised,
// always names the same content (across restarts too); an IXFR from any
// serial a zone advertised yields the zone's AXFR content; and after a
// quiet spell of updates every secondary holds the zone's content.
func TestRPZRandomTransfers(t *testing.T) {
	names := []string{"a.tk." + testRPZ, "b.tk." + testRPZ, "c.tk." + testRPZ, "*.d.tk." + testRPZ}
	random := func(r *rand.Rand) map[string]string {
		m := map[string]string{}
		for _, n := range names {
			if r.IntN(2) == 0 {
				m[n] = "."
			}
		}
		return m
	}
	failures := 0
	for seed := uint64(1); seed <= 3000 && failures < 3; seed++ {
		r := rand.New(rand.NewPCG(seed, 7))
		now := time.Unix(1_800_000_000, int64(r.IntN(1000))*int64(time.Millisecond))
		z := newTestRPZ(now)
		var log []string
		fail := func(format string, args ...any) {
			failures++
			t.Errorf("seed %d: "+format+"\n  steps: %v", append(append([]any{seed}, args...), log)...)
		}
		secs := []*realSecondary{{}, {}, {}}
		advertised := map[uint32]map[string]string{} // serial -> content, over every zone
		advertise := func() bool {
			serial, _ := z.size()
			z.mu.RLock()
			content := maps.Clone(z.records)
			z.mu.RUnlock()
			if c, ok := advertised[serial]; ok && !maps.Equal(c, content) {
				fail("serial %d advertised with %v and later with %v", serial, zoneOf(c), zoneOf(content))
				return false
			}
			advertised[serial] = content
			return true
		}
		asked := map[uint32]bool{}
		next := random(r)
		stepped := false
		ok := advertise()
	steps:
		for step := 0; step < 40 && ok; step++ {
			switch op := r.IntN(20); {
			case op < 1 && !stepped:
				if s, _ := z.size(); serialBefore(uint32(now.Unix()), s) {
					break // the documented exception: the old serial ahead of the clock
				}
				log = append(log, fmt.Sprintf("restart@%d.%03d", now.Unix(), now.Nanosecond()/1e6))
				z = newTestRPZ(now)
				asked = map[uint32]bool{}
			case op < 2:
				ttl := uint32(10 + 20*r.IntN(2))
				log = append(log, fmt.Sprintf("configure(ttl %d)", ttl))
				z.configure(rpzConfig{zone: testRPZ, max: 100, refresh: time.Minute}, ttl)
			case op < 3:
				back := time.Duration(1+r.IntN(4)) * time.Second
				now = now.Add(-back)
				stepped = true
				log = append(log, fmt.Sprintf("back %v", back))
			case op < 8:
				next = random(r)
				log = append(log, fmt.Sprintf("next %v", zoneOf(next)))
			default:
				d := time.Duration(r.IntN(3000)) * time.Millisecond
				now = now.Add(d)
				before, _ := z.size()
				changed := z.update(next, now)
				after, _ := z.size()
				log = append(log, fmt.Sprintf("update@%d.%03d %v->%d", now.Unix(), now.Nanosecond()/1e6, changed, after))
				if serialBefore(after, before) {
					fail("the serial went back from %d to %d", before, after)
					break steps
				}
				if ok = advertise(); !ok {
					break steps
				}
				asked[after] = true
				for s := range asked {
					got := &secondary{serial: s, records: map[string]string{}}
					if s != after {
						// what a secondary at s held: the content advertised at s
						got.records = maps.Clone(advertised[s])
					}
					got.refresh(z)
					whole := &secondary{}
					whole.refresh(z)
					if s != after && (got.serial != whole.serial || !maps.Equal(got.records, whole.records)) {
						fail("IXFR from %d gives serial %d %v; AXFR serial %d %v", s, got.serial, zoneOf(got.records), whole.serial, zoneOf(whole.records))
						break steps
					}
				}
				for _, s := range secs {
					if r.IntN(2) == 0 {
						s.poll(z)
					}
				}
			}
		}
		if !ok {
			continue
		}
		// A quiet spell: the same content, an update a second, every secondary polling.
		for range 5 {
			now = now.Add(time.Second)
			z.update(next, now)
			for _, s := range secs {
				s.poll(z)
			}
		}
		whole := &secondary{}
		whole.refresh(z)
		for i, s := range secs {
			if s.records != nil && (s.serial != whole.serial || !maps.Equal(s.records, whole.records)) {
				fail("after a quiet spell secondary %d holds serial %d %v; the zone is serial %d %v", i, s.serial, zoneOf(s.records), whole.serial, zoneOf(whole.records))
				break
			}
		}
	}
}
