package fluxguard

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/metadata"
	"github.com/coredns/coredns/plugin/metrics"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/coredns/coredns/request"
	"github.com/miekg/dns"
	ot "github.com/opentracing/opentracing-go"
	"github.com/opentracing/opentracing-go/mocktracer"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/fluxguard/fluxguard/internal/engine"
	"github.com/fluxguard/fluxguard/internal/testenv"
)

// upstream stands for the rest of the plugin chain. Unless a name below says
// otherwise it answers A and AAAA queries with 4 public addresses that move
// on by 2 with every call for the name (45.0.0.1-4, 45.0.0.3-6, ...), so the
// n-th answer brings the name to 2n+2 unique addresses: 8 after 3 answers,
// below the seed's many_ips of 10.
type upstream struct {
	mu    sync.Mutex
	calls map[string]int // calls per lower-cased question name
	total int
	wire  []byte // the last message written, packed before writing
}

func newUpstream() *upstream { return &upstream{calls: map[string]int{}} }

func (u *upstream) Name() string { return "upstream" }

func (u *upstream) ServeDNS(_ context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	q := r.Question[0]
	lname := strings.ToLower(q.Name)
	u.mu.Lock()
	n := u.calls[lname]
	u.calls[lname]++
	u.total++
	u.mu.Unlock()

	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	if o := r.IsEdns0(); o != nil {
		m.SetEdns0(o.UDPSize(), o.Do())
	}
	switch lname {
	case "fail.evil.tk.":
		return dns.RcodeServerFailure, nil // the server writes SERVFAIL
	case "silent.evil.tk.":
		return dns.RcodeSuccess, nil // writes nothing at all
	case "nx.evil.tk.":
		m.Rcode = dns.RcodeNameError
	case "www.stable.com.":
		if q.Qtype == dns.TypeAAAA {
			m.Answer = []dns.RR{test.AAAA("www.stable.com. 300 IN AAAA 2606:2800:21f:cb07:6820:80da:af6b:8b2c")}
		} else {
			m.Answer = []dns.RR{test.A("www.stable.com. 300 IN A 93.184.216.34")}
		}
	case "cname.evil.tk.": // two CNAME hops, then rotating addresses
		m.Answer = append([]dns.RR{
			test.CNAME(q.Name + " 60 IN CNAME hop.evil-cdn.tk."),
			test.CNAME("hop.evil-cdn.tk. 60 IN CNAME edge.evil-cdn.tk."),
		}, flux("edge.evil-cdn.tk.", q.Qtype, n)...)
	case "mismatch.evil.tk.": // addresses of a name that was not asked
		m.Answer = flux("other.evil.tk.", q.Qtype, n)
	case "private.evil.tk.": // rotating, but never public
		for i := range 4 {
			m.Answer = append(m.Answer, test.A(fmt.Sprintf("%s 60 IN A 10.0.%d.%d", q.Name, n, i+1)))
		}
	case "tc.evil.tk.":
		m.Truncated = true
		m.Answer = flux(q.Name, q.Qtype, n)
	default:
		switch q.Qtype {
		case dns.TypeA, dns.TypeAAAA:
			m.Answer = flux(q.Name, q.Qtype, n)
		case dns.TypeMX:
			m.Answer = []dns.RR{test.MX(q.Name + " 60 IN MX 10 mail.evil.tk.")}
		case dns.TypeTXT:
			m.Answer = []dns.RR{test.TXT(q.Name + ` 60 IN TXT "v=spf1 -all"`)}
		}
	}
	wire, err := m.Pack()
	if err != nil {
		return dns.RcodeServerFailure, err
	}
	u.mu.Lock()
	u.wire = wire
	u.mu.Unlock()
	w.WriteMsg(m)
	return dns.RcodeSuccess, nil
}

// flux returns the n-th rotating answer for owner.
func flux(owner string, qtype uint16, n int) []dns.RR {
	var rrs []dns.RR
	for i := range 4 {
		host := 2*n + i + 1
		switch qtype {
		case dns.TypeA:
			rrs = append(rrs, test.A(fmt.Sprintf("%s 60 IN A 45.0.%d.%d", owner, host/250, host%250)))
		case dns.TypeAAAA:
			rrs = append(rrs, test.AAAA(fmt.Sprintf("%s 60 IN AAAA 2a00:1450:4001::%x", owner, host)))
		}
	}
	return rrs
}

func (u *upstream) callCount() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.total
}

func (u *upstream) lastWire() []byte {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.wire
}

// newTestFluxguard builds the handler from a Corefile snippet, in front of a
// fresh upstream.
func newTestFluxguard(t *testing.T, corefile string) (*Fluxguard, *upstream) {
	t.Helper()
	cfg, err := parse(caddy.NewTestController("dns", corefile))
	if err != nil {
		t.Fatalf("Expected no errors parsing %q, but got: %v", corefile, err)
	}
	if !strings.Contains(corefile, "profile") {
		// The handler tests check the seed profile's scores, simple to work
		// out by hand, one query an answer.
		cfg.engine.Profile = engine.ProfileSeed
		if !strings.Contains(corefile, "query_count") {
			cfg.engine.QueryCount = engine.CountAnswers
		}
	}
	cfg.server = serverLabel(t)
	f, err := newFluxguard(cfg, "")
	if err != nil {
		t.Fatalf("Expected no errors building %q, but got: %v", corefile, err)
	}
	up := newUpstream()
	f.Next = up
	return f, up
}

// serverLabel is the metrics server label of a test, unique so that the
// test sees only its own counts in the global metrics.
// It is also unique per run, for -count.
func serverLabel(t *testing.T) string {
	return fmt.Sprintf("dns://%s#%d:53", t.Name(), serverSeq.Add(1))
}

var serverSeq atomic.Int64

// newContext returns a context as the server and the metadata plugin make it.
func newContext(server string) context.Context {
	ctx := context.WithValue(context.Background(), dnsserver.Key{}, &dnsserver.Server{Addr: server})
	return metadata.ContextWithMetadata(ctx)
}

// meta returns the metadata value of label, or "<unset>" when fluxguard
// did not set it for the last request.
func meta(ctx context.Context, label string) string {
	fn := metadata.ValueFunc(ctx, label)
	if fn == nil || fn() == unset {
		return "<unset>"
	}
	return fn()
}

func newQuery(name string, qtype uint16) *dns.Msg {
	r := new(dns.Msg)
	r.SetQuestion(name, qtype)
	return r
}

func newQueryEDNS(name string, qtype uint16, size uint16, do bool) *dns.Msg {
	r := newQuery(name, qtype)
	r.SetEdns0(size, do)
	return r
}

// serve runs r through f and returns what the client got.
func serve(t *testing.T, ctx context.Context, f *Fluxguard, r *dns.Msg) (*dnstest.Recorder, int) {
	t.Helper()
	rec := dnstest.NewRecorder(&test.ResponseWriter{})
	if ctx.Value(dnsserver.Key{}) != nil {
		ctx = f.Metadata(ctx, request.Request{W: rec, Req: r}) // as the metadata plugin's Collect does
	}
	rc, err := f.ServeDNS(ctx, rec, r)
	if err != nil {
		t.Fatalf("Expected no error from ServeDNS, got: %v", err)
	}
	return rec, rc
}

func packed(t *testing.T, m *dns.Msg) []byte {
	t.Helper()
	if m == nil {
		t.Fatal("Expected a written answer, got none")
	}
	b, err := m.Pack()
	if err != nil {
		t.Fatalf("Expected the answer to pack, got: %v", err)
	}
	return b
}

// checkPassedThrough checks that the client got exactly what upstream wrote.
func checkPassedThrough(t *testing.T, rec *dnstest.Recorder, up *upstream) {
	t.Helper()
	if got := packed(t, rec.Msg); !bytes.Equal(got, up.lastWire()) {
		want := new(dns.Msg)
		want.Unpack(up.lastWire())
		t.Errorf("Expected the upstream answer unchanged:\n%s\ngot:\n%s", want, rec.Msg)
	}
}

// checkEDE checks m's OPT record against the query's: none without EDNS,
// else the query's buffer size and DO bit and EDE 15 with text.
func checkEDE(t *testing.T, m *dns.Msg, edns bool, size uint16, do bool, text string) {
	t.Helper()
	opt := m.IsEdns0()
	if !edns {
		if opt != nil {
			t.Errorf("Expected no OPT in the reply to a query without EDNS, got %s", opt)
		}
		return
	}
	if opt == nil {
		t.Fatalf("Expected an OPT in the reply, got none:\n%s", m)
	}
	if opt.UDPSize() != size {
		t.Errorf("Expected UDP size %d, got %d", size, opt.UDPSize())
	}
	if opt.Do() != do {
		t.Errorf("Expected DO %t, got %t", do, opt.Do())
	}
	var ede *dns.EDNS0_EDE
	for _, o := range opt.Option {
		if e, ok := o.(*dns.EDNS0_EDE); ok {
			if ede != nil {
				t.Errorf("Expected one EDE option, got more")
			}
			ede = e
		}
	}
	if ede == nil {
		t.Fatalf("Expected an EDE option, got none: %s", opt)
	}
	if ede.InfoCode != dns.ExtendedErrorCodeBlocked {
		t.Errorf("Expected EDE info code %d (Blocked), got %d", dns.ExtendedErrorCodeBlocked, ede.InfoCode)
	}
	if ede.ExtraText != text {
		t.Errorf("Expected EDE extra text %q, got %q", text, ede.ExtraText)
	}
}

// checkNegativeSOA checks that m's authority section is the synthetic SOA
// of its question name's parent, with ttl as its TTL and MINIMUM.
func checkNegativeSOA(t *testing.T, m *dns.Msg, ttl uint32) {
	t.Helper()
	if len(m.Ns) != 1 {
		t.Fatalf("Expected one SOA in the authority section, got:\n%s", m)
	}
	soa, ok := m.Ns[0].(*dns.SOA)
	owner := soaOwner(m.Question[0].Name)
	if !ok || soa.Hdr.Name != owner || soa.Hdr.Class != dns.ClassINET ||
		soa.Hdr.Ttl != ttl || soa.Minttl != ttl || soa.Ns != soaMname || soa.Mbox != soaRname {
		t.Errorf("Expected the SOA of %s with TTL and minimum %d, got %v", owner, ttl, m.Ns[0])
	}
}

// checkReplyTo checks that m answers r.
func checkReplyTo(t *testing.T, m, r *dns.Msg) {
	t.Helper()
	if !m.Response || m.Id != r.Id || !slices.Equal(m.Question, r.Question) || m.Opcode != r.Opcode {
		t.Errorf("Expected a reply to %s, got:\n%s", r.Question[0].String(), m)
	}
	if !m.RecursionAvailable {
		t.Errorf("Expected RA set in the reply")
	}
}

func TestMonitor(t *testing.T) {
	f, up := newTestFluxguard(t, "fluxguard . {\n action log\n}")
	server := serverLabel(t)
	tests := []struct {
		name    string // mixed case must count toward the same name
		level   string
		score   string
		reasons string
	}{
		{"c2.evil.tk.", "none", "2", "suspicious_tld,short_sld"},             // 4 IPs, 1 query
		{"C2.Evil.TK.", "none", "2", "suspicious_tld,short_sld"},             // 6 IPs, 2 queries
		{"c2.evil.tk.", "flagged", "2", "suspicious_tld,short_sld"},          // 8 IPs, 3 queries: crosses
		{"c2.EVIL.tk.", "flagged", "3", "suspicious_tld,short_sld,many_ips"}, // 10 IPs: many_ips
		{"c2.evil.tk.", "flagged", "3", "suspicious_tld,short_sld,many_ips"}, // 12 IPs
		{"c2.evil.tk.", "flagged", "3", "suspicious_tld,short_sld,many_ips"},
	}
	for i, tc := range tests {
		ctx := newContext(server)
		r := newQueryEDNS(tc.name, dns.TypeA, 1232, true)
		rec, rc := serve(t, ctx, f, r)
		if rc != dns.RcodeSuccess {
			t.Errorf("Query %d: expected rcode NOERROR, got %s", i, dns.RcodeToString[rc])
		}
		checkPassedThrough(t, rec, up)
		if len(rec.Msg.Answer) != 4 {
			t.Errorf("Query %d: expected the 4 upstream addresses, got %d", i, len(rec.Msg.Answer))
		}
		if got := meta(ctx, "fluxguard/level"); got != tc.level {
			t.Errorf("Query %d: expected level %q, got %q", i, tc.level, got)
		}
		if got := meta(ctx, "fluxguard/score"); got != tc.score {
			t.Errorf("Query %d: expected score %q, got %q", i, tc.score, got)
		}
		if got := meta(ctx, "fluxguard/reasons"); got != tc.reasons {
			t.Errorf("Query %d: expected reasons %q, got %q", i, tc.reasons, got)
		}
	}
	if got := up.callCount(); got != len(tests) {
		t.Errorf("Expected every query to go upstream in monitor mode, got %d of %d", got, len(tests))
	}
	if got := f.eng.Len(); got != 1 {
		t.Errorf("Expected 1 tracked name, got %d", got)
	}

	// Metrics: every answer inspected, two "none" verdicts, four "flagged"
	// ones, no action, and the domain's flagged series.
	if got := toFloat64(responsesInspected.WithLabelValues(server)); got != 6 {
		t.Errorf("Expected 6 inspected responses, got %v", got)
	}
	if got := toFloat64(verdicts.WithLabelValues(server, "none")); got != 2 {
		t.Errorf("Expected 2 none verdicts, got %v", got)
	}
	if got := toFloat64(verdicts.WithLabelValues(server, "flagged")); got != 4 {
		t.Errorf("Expected 4 flagged verdicts, got %v", got)
	}
	if got := toFloat64(actions.WithLabelValues(server, "log")); got != 0 {
		t.Errorf("Expected no actions in monitor mode, got %v", got)
	}
	if got := toFloat64(flaggedDomain.WithLabelValues(server, "c2.evil.tk")); got != 1 {
		t.Errorf("Expected flagged{domain=c2.evil.tk} 1, got %v", got)
	}
	f.flagged.refresh(server, f.eng)
	if got := toFloat64(flaggedDomains.WithLabelValues(server)); got != 1 {
		t.Errorf("Expected flagged_domains 1, got %v", got)
	}
}

// TestServersSharingHandler serves queries of two servers in turn through
// one handler, as a server block that binds two addresses does: each
// server's answers count under its own label, and its counters are made
// once, not on every change of server.
func TestServersSharingHandler(t *testing.T) {
	f, _ := newTestFluxguard(t, "fluxguard . {\n action log\n}")
	base := serverLabel(t)
	servers := []string{base + "-v4", base + "-v6"}
	var made [2]*serverMetrics
	for i := range 6 {
		ctx := newContext(servers[i%2])
		serve(t, ctx, f, newQueryEDNS("www.example.com.", dns.TypeA, 1232, false))
		sm := f.metricsFor(ctx)
		if made[i%2] == nil {
			made[i%2] = sm
		} else if sm != made[i%2] {
			t.Errorf("Query %d: the counters of %s were made again", i, servers[i%2])
		}
	}
	if made[0] == made[1] {
		t.Error("Expected the two servers to have counters of their own")
	}
	for _, server := range servers {
		if got := toFloat64(responsesInspected.WithLabelValues(server)); got != 3 {
			t.Errorf("Expected 3 inspected responses for %s, got %v", server, got)
		}
	}
}

// TestMetadataWithoutPlugin checks that serving without the metadata plugin
// in the context works.
func TestMetadataWithoutPlugin(t *testing.T) {
	f, up := newTestFluxguard(t, "fluxguard . {\n action block\n}")
	ctx := context.Background()
	for range 3 {
		serve(t, ctx, f, newQuery("c2.evil.tk.", dns.TypeA))
	}
	rec, _ := serve(t, ctx, f, newQuery("c2.evil.tk.", dns.TypeA))
	if rec.Msg == nil || rec.Msg.Rcode != dns.RcodeNameError {
		t.Errorf("Expected NXDOMAIN for the held name, got:\n%v", rec.Msg)
	}
	if got := up.callCount(); got != 3 {
		t.Errorf("Expected 3 upstream calls, got %d", got)
	}
}

// TestOtherOpcodesPass checks that only queries are answered for a held
// name: a NOTIFY or an UPDATE for it goes down the chain, to the plugin
// that handles it or to CoreDNS's NOTIMP, as the cache plugin lets them.
func TestOtherOpcodesPass(t *testing.T) {
	f, up := newTestFluxguard(t, "fluxguard . {\n action block\n deny evil.tk\n}")
	for _, tc := range []struct {
		opcode    int
		answered  bool // by fluxguard, without going down the chain
		wantRcode int
	}{
		{dns.OpcodeQuery, true, dns.RcodeNameError},
		{dns.OpcodeNotify, false, dns.RcodeSuccess},
		{dns.OpcodeUpdate, false, dns.RcodeSuccess},
	} {
		t.Run(dns.OpcodeToString[tc.opcode], func(t *testing.T) {
			calls := up.callCount()
			r := newQuery("evil.tk.", dns.TypeSOA)
			r.Opcode = tc.opcode
			rec, _ := serve(t, context.Background(), f, r)
			if went := up.callCount() > calls; went == tc.answered || rec.Msg == nil || rec.Msg.Rcode != tc.wantRcode {
				t.Errorf("went down the chain %v, reply:\n%v", went, rec.Msg)
			}
		})
	}
}

func TestBlock(t *testing.T) {
	tests := []struct {
		name      string
		options   string
		edns      bool
		size      uint16
		do        bool
		wantRcode int
	}{
		{"NXDOMAIN by default", "action block", true, 1232, false, dns.RcodeNameError},
		{"REFUSED with EDNS", "action block\nblock_rcode REFUSED", true, 1232, false, dns.RcodeRefused},
		{"REFUSED with EDNS and DO", "action block\nblock_rcode REFUSED", true, 4096, true, dns.RcodeRefused},
		{"REFUSED without EDNS", "action block\nblock_rcode REFUSED", false, 0, false, dns.RcodeRefused},
		{"NXDOMAIN with EDNS", "action block\nblock_rcode NXDOMAIN", true, 1400, false, dns.RcodeNameError},
		{"NXDOMAIN without EDNS", "action block\nblock_rcode NXDOMAIN", false, 0, false, dns.RcodeNameError},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, up := newTestFluxguard(t, "fluxguard . {\n"+tc.options+"\n}")
			server := serverLabel(t)
			query := func(qtype uint16) *dns.Msg {
				if tc.edns {
					return newQueryEDNS("c2.evil.tk.", qtype, tc.size, tc.do)
				}
				return newQuery("c2.evil.tk.", qtype)
			}
			// Two answers pass: the name is not a candidate yet.
			for i := range 2 {
				rec, _ := serve(t, newContext(server), f, query(dns.TypeA))
				checkPassedThrough(t, rec, up)
				if rec.Msg.Rcode != dns.RcodeSuccess || len(rec.Msg.Answer) != 4 {
					t.Errorf("Query %d: expected the upstream answer, got:\n%s", i, rec.Msg)
				}
			}
			// The third answer crosses: it is fetched, then replaced.
			// Afterwards the name is held: answered without going upstream,
			// for every type (an HTTPS record's address hints, say).
			for i, qtype := range []uint16{dns.TypeA, dns.TypeA, dns.TypeAAAA, dns.TypeHTTPS, dns.TypeTXT} {
				ctx := newContext(server)
				r := query(qtype)
				rec, rc := serve(t, ctx, f, r)
				if !plugin.ClientWrite(rc) {
					t.Errorf("Reply %d: expected an rcode telling the server the reply was written, got %s", i, dns.RcodeToString[rc])
				}
				if rec.Msg == nil {
					t.Fatalf("Reply %d: expected a reply, got none", i)
				}
				checkReplyTo(t, rec.Msg, r)
				if rec.Msg.Rcode != tc.wantRcode {
					t.Errorf("Reply %d: expected rcode %s, got %s", i, dns.RcodeToString[tc.wantRcode], dns.RcodeToString[rec.Msg.Rcode])
				}
				wantNs := 0
				if tc.wantRcode == dns.RcodeNameError {
					wantNs = 1 // the SOA of negative caching
					checkNegativeSOA(t, rec.Msg, 10)
				}
				if len(rec.Msg.Answer) != 0 || len(rec.Msg.Ns) != wantNs {
					t.Errorf("Reply %d: expected no answer and %d authority records, got:\n%s", i, wantNs, rec.Msg)
				}
				// 8 IPs of c2.evil.tk, TTL 60 (see upstream): 2 points of the seed rule.
				checkEDE(t, rec.Msg, tc.edns, tc.size, tc.do, "fluxguard: flagged fast-flux (T1568.001), score 2: 8 IPs, TTL 60s; suspicious_tld,short_sld")
				packed(t, rec.Msg)
				if got := meta(ctx, "fluxguard/level"); got != "flagged" {
					t.Errorf("Reply %d: expected level flagged, got %q", i, got)
				}
				if got := up.callCount(); got != 3 {
					t.Errorf("Reply %d: expected 3 upstream calls, got %d", i, got)
				}
			}
			if got := toFloat64(actions.WithLabelValues(server, "block")); got != 5 {
				t.Errorf("Expected 5 block actions, got %v", got)
			}
			if got := toFloat64(responsesInspected.WithLabelValues(server)); got != 3 {
				t.Errorf("Expected 3 inspected responses, got %v", got)
			}

			// Other names are not affected.
			rec, _ := serve(t, newContext(server), f, newQuery("www.stable.com.", dns.TypeA))
			checkPassedThrough(t, rec, up)
		})
	}
}

func TestSinkhole(t *testing.T) {
	tests := []struct {
		name    string
		options string
		ttl     uint32
		wantA   []string
		want4A  []string // for AAAA
	}{
		{"default addresses", "action sinkhole\nsinkhole_ttl 30s", 30, []string{"0.0.0.0"}, []string{"::"}},
		{"default TTL", "action sinkhole", 10, []string{"0.0.0.0"}, []string{"::"}},
		{"IPv4 only", "action sinkhole\nsinkhole 192.0.2.53 192.0.2.54", 10, []string{"192.0.2.53", "192.0.2.54"}, nil},
		{"IPv6 only", "action sinkhole\nsinkhole 2001:db8::53", 10, nil, []string{"2001:db8::53"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, up := newTestFluxguard(t, "fluxguard . {\n"+tc.options+"\n}")
			server := serverLabel(t)
			for range 2 {
				rec, _ := serve(t, newContext(server), f, newQueryEDNS("c2.evil.tk.", dns.TypeA, 1232, false))
				checkPassedThrough(t, rec, up)
			}
			for i, qtype := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeA} {
				r := newQueryEDNS("c2.evil.tk.", qtype, 1232, true)
				rec, _ := serve(t, newContext(server), f, r)
				if rec.Msg == nil {
					t.Fatalf("Reply %d: expected a reply, got none", i)
				}
				checkReplyTo(t, rec.Msg, r)
				if rec.Msg.Rcode != dns.RcodeSuccess {
					t.Errorf("Reply %d: expected NOERROR, got %s", i, dns.RcodeToString[rec.Msg.Rcode])
				}
				want := tc.wantA
				if qtype == dns.TypeAAAA {
					want = tc.want4A
				}
				var got []string
				for _, rr := range rec.Msg.Answer {
					h := rr.Header()
					if h.Name != "c2.evil.tk." || h.Rrtype != qtype || h.Class != dns.ClassINET || h.Ttl != tc.ttl {
						t.Errorf("Reply %d: expected a %s record for c2.evil.tk. with TTL %d, got %s", i, dns.TypeToString[qtype], tc.ttl, rr)
					}
					switch rr := rr.(type) {
					case *dns.A:
						got = append(got, rr.A.String())
					case *dns.AAAA:
						got = append(got, rr.AAAA.String())
					}
				}
				if !slices.Equal(got, want) {
					t.Errorf("Reply %d: expected addresses %v, got %v", i, want, got)
				}
				if len(want) == 0 {
					checkNegativeSOA(t, rec.Msg, tc.ttl) // NODATA
				} else if len(rec.Msg.Ns) != 0 {
					t.Errorf("Reply %d: expected no authority records with addresses, got:\n%s", i, rec.Msg)
				}
				checkEDE(t, rec.Msg, true, 1232, true, "fluxguard: flagged fast-flux (T1568.001), score 2: 8 IPs, TTL 60s; suspicious_tld,short_sld")
				packed(t, rec.Msg)
			}
			if got := up.callCount(); got != 3 {
				t.Errorf("Expected 3 upstream calls, got %d", got)
			}
			if got := toFloat64(actions.WithLabelValues(server, "sinkhole")); got != 3 {
				t.Errorf("Expected 3 sinkhole actions, got %v", got)
			}
		})
	}
}

// TestNeverBlocked checks names that must pass whatever their churn.
func TestNeverBlocked(t *testing.T) {
	tests := []struct {
		name    string
		qname   string
		options string
		tracked int
		level   string
	}{
		{"stable", "www.stable.com.", "", 1, "none"},
		{"allowlisted", "flux.allowed.tk.", "", 0, "allowed"},
		{"allowlisted child", "a.b.allowed.tk.", "", 0, "allowed"},
		{"allowlisted, second allow line", "c2.good.tk.", "", 0, "allowed"},
		{"CDN", "d111.cloudfront.net.", "", 0, "excluded"},
		{"internal TLD", "c2.evil.corp.", "", 0, "excluded"},
		{"excluded suffix", "x.live.com.", "", 0, "excluded"},
		{"ignore_nets", "c2.evil.tk.", "ignore_nets 45.0.0.0/8 2a00:1450::/32", 0, "no_public_addrs"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, up := newTestFluxguard(t, "fluxguard . {\naction block\nallow allowed.tk\nallow good.tk\n"+tc.options+"\n}")
			server := serverLabel(t)
			const n = 20
			for i := range n {
				qtype := dns.TypeA
				if i%2 == 1 {
					qtype = dns.TypeAAAA
				}
				ctx := newContext(server)
				rec, _ := serve(t, ctx, f, newQuery(tc.qname, qtype))
				checkPassedThrough(t, rec, up)
				if got := meta(ctx, "fluxguard/level"); got != tc.level {
					t.Errorf("Query %d: expected level %q, got %q", i, tc.level, got)
				}
			}
			if got := up.callCount(); got != n {
				t.Errorf("Expected %d upstream calls, got %d", n, got)
			}
			if got := f.eng.Len(); got != tc.tracked {
				t.Errorf("Expected %d tracked names, got %d", tc.tracked, got)
			}
			if _, held := f.eng.Held(engine.Normalize(tc.qname)); held {
				t.Errorf("Expected %s not held", tc.qname)
			}
			if got := toFloat64(actions.WithLabelValues(server, "block")); got != 0 {
				t.Errorf("Expected no block actions, got %v", got)
			}
		})
	}
}

func TestCNAMEChain(t *testing.T) {
	f, up := newTestFluxguard(t, "fluxguard . {\n action block\n}")
	server := serverLabel(t)
	for i := range 2 {
		rec, _ := serve(t, newContext(server), f, newQuery("cname.evil.tk.", dns.TypeA))
		checkPassedThrough(t, rec, up)
		if len(rec.Msg.Answer) != 6 {
			t.Errorf("Query %d: expected 2 CNAMEs and 4 addresses, got:\n%s", i, rec.Msg)
		}
	}
	ctx := newContext(server)
	rec, _ := serve(t, ctx, f, newQuery("cname.evil.tk.", dns.TypeA))
	if rec.Msg == nil || rec.Msg.Rcode != dns.RcodeNameError {
		t.Fatalf("Expected the chain's addresses to flag the question name and NXDOMAIN, got:\n%v", rec.Msg)
	}
	if got := meta(ctx, "fluxguard/level"); got != "flagged" {
		t.Errorf("Expected level flagged, got %q", got)
	}
	if _, held := f.eng.Held("cname.evil.tk"); !held {
		t.Errorf("Expected cname.evil.tk held")
	}
	// Only the question name is tracked, not the CNAME targets.
	if got := f.eng.Len(); got != 1 {
		t.Errorf("Expected 1 tracked name, got %d", got)
	}
	for _, name := range []string{"hop.evil-cdn.tk", "edge.evil-cdn.tk"} {
		if _, held := f.eng.Held(name); held {
			t.Errorf("Expected %s not held", name)
		}
	}
}

// TestNotEvidence checks answers that must pass through untouched and
// unobserved, even in block mode.
func TestNotEvidence(t *testing.T) {
	tests := []struct {
		name      string
		qname     string
		qtype     uint16
		wantRcode int  // returned by ServeDNS
		written   bool // whether anything reaches the client
		inspected bool // whether the answer counts as inspected
		level     string
	}{
		{"SERVFAIL without write", "fail.evil.tk.", dns.TypeA, dns.RcodeServerFailure, false, false, "<unset>"},
		{"no write", "silent.evil.tk.", dns.TypeA, dns.RcodeSuccess, false, false, "<unset>"},
		{"NXDOMAIN", "nx.evil.tk.", dns.TypeA, dns.RcodeSuccess, true, false, "<unset>"},
		{"truncated", "tc.evil.tk.", dns.TypeA, dns.RcodeSuccess, true, false, "<unset>"},
		{"owner mismatch", "mismatch.evil.tk.", dns.TypeA, dns.RcodeSuccess, true, false, "<unset>"},
		{"owner mismatch AAAA", "mismatch.evil.tk.", dns.TypeAAAA, dns.RcodeSuccess, true, false, "<unset>"},
		{"MX", "c2.evil.tk.", dns.TypeMX, dns.RcodeSuccess, true, false, "<unset>"},
		{"TXT", "c2.evil.tk.", dns.TypeTXT, dns.RcodeSuccess, true, false, "<unset>"},
		{"private addresses", "private.evil.tk.", dns.TypeA, dns.RcodeSuccess, true, true, "no_public_addrs"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, up := newTestFluxguard(t, "fluxguard . {\n action block\n}")
			server := serverLabel(t)
			const n = 6
			for i := range n {
				ctx := newContext(server)
				rec, rc := serve(t, ctx, f, newQueryEDNS(tc.qname, tc.qtype, 1232, false))
				if rc != tc.wantRcode {
					t.Errorf("Query %d: expected rcode %s returned, got %s", i, dns.RcodeToString[tc.wantRcode], dns.RcodeToString[rc])
				}
				if !tc.written {
					if rec.Msg != nil {
						t.Errorf("Query %d: expected nothing written, got:\n%s", i, rec.Msg)
					}
				} else {
					checkPassedThrough(t, rec, up)
				}
				if got := meta(ctx, "fluxguard/level"); got != tc.level {
					t.Errorf("Query %d: expected level %q, got %q", i, tc.level, got)
				}
			}
			if got := up.callCount(); got != n {
				t.Errorf("Expected %d upstream calls, got %d", n, got)
			}
			if got := f.eng.Len(); got != 0 {
				t.Errorf("Expected no tracked names, got %d", got)
			}
			wantInspected := 0.0
			if tc.inspected {
				wantInspected = n
			}
			if got := toFloat64(responsesInspected.WithLabelValues(server)); got != wantInspected {
				t.Errorf("Expected %v inspected responses, got %v", wantInspected, got)
			}
			if got := toFloat64(actions.WithLabelValues(server, "block")); got != 0 {
				t.Errorf("Expected no block actions, got %v", got)
			}
		})
	}
}

func TestZones(t *testing.T) {
	f, up := newTestFluxguard(t, "fluxguard example.org {\n action block\n}")
	server := serverLabel(t)
	for i := range 6 {
		ctx := newContext(server)
		rec, _ := serve(t, ctx, f, newQuery("c2.evil.tk.", dns.TypeA))
		checkPassedThrough(t, rec, up)
		if got := meta(ctx, "fluxguard/level"); got != "<unset>" {
			t.Errorf("Query %d: expected no level outside the zones, got %q", i, got)
		}
	}
	if got := f.eng.Len(); got != 0 {
		t.Errorf("Expected no tracked names outside the zones, got %d", got)
	}
	// A name in the zone is tracked.
	ctx := newContext(server)
	serve(t, ctx, f, newQuery("www.example.org.", dns.TypeA))
	if got := f.eng.Len(); got != 1 {
		t.Errorf("Expected the name in the zone tracked, got %d tracked names", got)
	}
	if got := meta(ctx, "fluxguard/level"); got != "none" {
		t.Errorf("Expected level none in the zone, got %q", got)
	}
	if got := up.callCount(); got != 7 {
		t.Errorf("Expected 7 upstream calls, got %d", got)
	}
}

// TestNoNext checks that a missing next plugin is an error, not a panic.
func TestNoNext(t *testing.T) {
	f, _ := newTestFluxguard(t, "fluxguard .")
	f.Next = nil
	rec := dnstest.NewRecorder(&test.ResponseWriter{})
	rc, err := f.ServeDNS(context.Background(), rec, newQuery("c2.evil.tk.", dns.TypeA))
	if err == nil || rc != dns.RcodeServerFailure {
		t.Errorf("Expected SERVFAIL and an error without a next plugin, got %s, %v", dns.RcodeToString[rc], err)
	}
}

// TestNamesAtTheLimits runs the root name and a 255-octet name written
// with escapes (1,000 characters) through the handler: both are tracked
// and their answers pass.
func TestNamesAtTheLimits(t *testing.T) {
	label := strings.Repeat(`\255`, 63)
	long := label + "." + label + "." + label + "." + strings.Repeat(`\255`, 61) + "."
	if _, ok := dns.IsDomainName(long); !ok {
		t.Fatalf("%q is not a domain name", long)
	}
	for _, name := range []string{".", long} {
		f, _ := newTestFluxguard(t, "fluxguard .")
		for range 10 {
			if rec, _ := serve(t, context.Background(), f, newQuery(name, dns.TypeA)); rec.Msg == nil || len(rec.Msg.Answer) != 4 {
				t.Fatalf("%.20q...: the answer did not pass: %v", name, rec.Msg)
			}
		}
		if f.eng.Len() == 0 {
			t.Errorf("%.20q... was not tracked", name)
		}
	}
}

// TestNextKeepsTracingAndTracking checks that the rest of the chain is
// called through plugin.NextOrFailure whenever that does something: under a
// tracing span, and for a writer that tracks the writing plugin.
func TestNextKeepsTracingAndTracking(t *testing.T) {
	tracer := mocktracer.New()
	traced := ot.ContextWithSpan(context.Background(), tracer.StartSpan("server"))
	tests := []struct {
		name     string
		ctx      context.Context
		qtype    uint16 // A is inspected (a captureWriter), TXT is not
		tracker  bool
		wantSpan bool
		wantPlug string // the plugin named to the tracker
	}{
		{"inspected", context.Background(), dns.TypeA, false, false, ""},
		{"not inspected", context.Background(), dns.TypeTXT, false, false, ""},
		{"inspected, traced", traced, dns.TypeA, false, true, ""},
		{"not inspected, traced", traced, dns.TypeTXT, false, true, ""},
		{"not inspected, tracker", context.Background(), dns.TypeTXT, true, false, "upstream"},
		// A captureWriter is no tracker: NextOrFailure would not name the plugin either.
		{"inspected, tracker", context.Background(), dns.TypeA, true, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tracer.Reset()
			f, _ := newTestFluxguard(t, "fluxguard .")
			var rec dns.ResponseWriter = dnstest.NewRecorder(&test.ResponseWriter{})
			if tc.tracker {
				rec = metrics.NewRecorder(rec)
			}
			if _, err := f.ServeDNS(tc.ctx, rec, newQuery("www.example.org.", tc.qtype)); err != nil {
				t.Fatal(err)
			}
			if got := len(tracer.FinishedSpans()) > 0; got != tc.wantSpan {
				t.Errorf("Expected a span for the next plugin: %t, got %t", tc.wantSpan, got)
			}
			if r, ok := rec.(*metrics.Recorder); ok && r.GetPlugin() != tc.wantPlug {
				t.Errorf("Expected the writing plugin %q, got %q", tc.wantPlug, r.GetPlugin())
			}
		})
	}
}

// TestFlaggedGaugeCap checks that metrics_domains caps the flagged{domain}
// series.
func TestFlaggedGaugeCap(t *testing.T) {
	f, _ := newTestFluxguard(t, "fluxguard . {\n metrics_domains 1\n}")
	server := serverLabel(t)
	for _, name := range []string{"c2.evil.tk.", "c3.evil.tk."} {
		for range 3 {
			serve(t, newContext(server), f, newQuery(name, dns.TypeA))
		}
	}
	if _, held := f.eng.Held("c3.evil.tk"); !held {
		t.Fatal("Expected c3.evil.tk flagged")
	}
	if got := len(f.flagged.shown); got != 1 {
		t.Errorf("Expected 1 flagged series, got %d", got)
	}
	if flaggedDomain.DeleteLabelValues(server, "c3.evil.tk") {
		t.Errorf("Expected no series for the second flagged domain")
	}
	f.flagged.refresh(server, f.eng)
	if got := toFloat64(flaggedDomains.WithLabelValues(server)); got != 2 {
		t.Errorf("Expected flagged_domains 2, got %v", got)
	}
}

// TestFlaggedGaugeFirstServer checks that a domain flagged through a
// block's second address is shown under its first, as the block's other
// gauges are, and that clear finds it there.
func TestFlaggedGaugeFirstServer(t *testing.T) {
	f, _ := newTestFluxguard(t, "fluxguard .")
	first := serverLabel(t)
	second := first + "-v6"
	serve(t, newContext(first), f, newQuery("www.example.com.", dns.TypeA))
	for range 3 {
		serve(t, newContext(second), f, newQuery("c2.evil.tk.", dns.TypeA))
	}
	if got := toFloat64(flaggedDomain.WithLabelValues(first, "c2.evil.tk")); got != 1 {
		t.Errorf("Expected flagged{server=first, domain=c2.evil.tk} 1, got %v", got)
	}
	if flaggedDomain.DeleteLabelValues(second, "c2.evil.tk") {
		t.Errorf("Expected no series under the second server")
	}
	f.flagged.refresh(first, f.eng)
	f.flagged.clear()
	if flaggedDomain.DeleteLabelValues(first, "c2.evil.tk") {
		t.Errorf("Expected clear to drop the series")
	}
}

// TestFlaggedGaugeRefresh checks that refresh drops the series of names no
// longer flagged and fills the room they leave.
func TestFlaggedGaugeRefresh(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Unix())
	cfg, err := parse(caddy.NewTestController("dns", "fluxguard . {\n profile seed\n query_count answers\n metrics_domains 1\n hold 10m\n window 10m\n}"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.engine.Now = func() time.Time { return time.Unix(now.Load(), 0) }
	f, err := newFluxguard(cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	f.Next = newUpstream()
	server := serverLabel(t)
	f.flagged.refresh(server, f.eng) // nothing flagged yet
	for range 3 {
		serve(t, newContext(server), f, newQuery("c2.evil.tk.", dns.TypeA))
	}
	if got := toFloat64(flaggedDomain.WithLabelValues(server, "c2.evil.tk")); got != 1 {
		t.Fatalf("Expected flagged{domain=c2.evil.tk} 1, got %v", got)
	}

	// c2 expires; c3 is flagged meanwhile but finds no room until refresh.
	now.Add(int64(11 * time.Minute / time.Second))
	for range 3 {
		serve(t, newContext(server), f, newQuery("c3.evil.tk.", dns.TypeA))
	}
	if _, ok := f.flagged.shown["c3.evil.tk"]; ok {
		t.Fatal("Expected no room for c3.evil.tk before refresh")
	}
	f.flagged.refresh(server, f.eng)
	if _, ok := f.flagged.shown["c2.evil.tk"]; ok {
		t.Errorf("Expected c2.evil.tk dropped by refresh")
	}
	if flaggedDomain.DeleteLabelValues(server, "c2.evil.tk") {
		t.Errorf("Expected the c2.evil.tk series deleted by refresh")
	}
	if got := toFloat64(flaggedDomain.WithLabelValues(server, "c3.evil.tk")); got != 1 {
		t.Errorf("Expected flagged{domain=c3.evil.tk} 1 after refresh, got %v", got)
	}
	if got := toFloat64(flaggedDomains.WithLabelValues(server)); got != 1 {
		t.Errorf("Expected flagged_domains 1, got %v", got)
	}

	f.flagged.clear()
	if len(f.flagged.shown) != 0 || flaggedDomain.DeleteLabelValues(server, "c3.evil.tk") {
		t.Errorf("Expected clear to drop every series")
	}
}

// TestOnlyFirstWriteIsEvidence checks that a second answer written for one
// query is passed on but not observed.
func TestOnlyFirstWriteIsEvidence(t *testing.T) {
	f, _ := newTestFluxguard(t, "fluxguard . {\n action block\n}")
	n := 0
	f.Next = test.HandlerFunc(func(_ context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
		for range 2 {
			m := new(dns.Msg)
			m.SetReply(r)
			m.Answer = flux(r.Question[0].Name, dns.TypeA, n)
			n++
			w.WriteMsg(m)
		}
		return dns.RcodeSuccess, nil
	})
	server := serverLabel(t)
	ctx := newContext(server)
	rec, _ := serve(t, ctx, f, newQuery("c2.evil.tk.", dns.TypeA))
	if rec.Msg == nil || len(rec.Msg.Answer) != 4 {
		t.Fatalf("Expected the second answer written, got %v", rec.Msg)
	}
	if got := toFloat64(responsesInspected.WithLabelValues(server)); got != 1 {
		t.Errorf("Expected 1 inspected response, got %v", got)
	}
	if _, held := f.eng.Held("c2.evil.tk"); held {
		t.Errorf("Expected c2.evil.tk not held after one query")
	}
}

// TestWhenJudged checks when an answer is judged: in monitor mode after it
// is written to the client, unless the metadata plugin asks for
// fluxguard's labels; before, when the verdict can change what the client
// gets.
func TestWhenJudged(t *testing.T) {
	tests := []struct {
		name, corefile string
		metadata       bool
		before         bool // judged before the client's WriteMsg
	}{
		{"monitor", "fluxguard . {\n action log\n}", false, false},
		{"monitor with metadata", "fluxguard . {\n action log\n}", true, true},
		{"block", "fluxguard . {\n action block\n}", false, true},
		{"sinkhole", "fluxguard . {\n action sinkhole\n}", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, _ := newTestFluxguard(t, tc.corefile)
			server := serverLabel(t)
			inspected := func() float64 { return toFloat64(responsesInspected.WithLabelValues(server)) }
			var atWrite float64
			ctx := newContext(server)
			rec := dnstest.NewRecorder(&test.ResponseWriter{})
			client := writeRecorder{rec, func(*dns.Msg) { atWrite = inspected() }}
			r := newQuery("c2.evil.tk.", dns.TypeA)
			if tc.metadata {
				ctx = f.Metadata(ctx, request.Request{W: client, Req: r})
			}
			if _, err := f.ServeDNS(ctx, client, r); err != nil || rec.Msg == nil || len(rec.Msg.Answer) != 4 {
				t.Fatalf("Expected the answer written, got %v (%v)", rec.Msg, err)
			}
			if want := map[bool]float64{true: 1, false: 0}[tc.before]; atWrite != want {
				t.Errorf("Expected %v inspected as the answer was written to the client, got %v", want, atWrite)
			}
			if got := inspected(); got != 1 {
				t.Errorf("Expected 1 inspected once ServeDNS returned, got %v", got)
			}
			if tc.metadata && meta(ctx, metaLevel) != "none" {
				t.Errorf("Expected the level label set, got %q", meta(ctx, metaLevel))
			}
		})
	}
}

// TestRepeatsCountedUnread checks that without the metadata plugin a
// query whose name's answer was seen repeated in the same second, to the
// same client and of the same family, is counted without its answer being
// read, and still answered from upstream, and that answers that rotate
// are all read; in monitor mode and, for a name that is not flagged, with
// block.
func TestRepeatsCountedUnread(t *testing.T) {
	for _, action := range []string{"log", "block"} {
		t.Run(action, func(t *testing.T) {
			// The seed profile's score is 4 at most: c2.evil.tk stays suspicious.
			cfg, err := parse(caddy.NewTestController("dns", "fluxguard . {\n action "+action+"\n threshold 100\n}"))
			if err != nil {
				t.Fatal(err)
			}
			testRepeatsCountedUnread(t, cfg)
		})
	}
}

// newSeedFluxguard returns a fluxguard of cfg with the seed profile,
// counting answers, whose clock reads *now.
func newSeedFluxguard(t *testing.T, cfg config, now *time.Time) *Fluxguard {
	t.Helper()
	cfg.engine.Profile, cfg.engine.QueryCount = engine.ProfileSeed, engine.CountAnswers
	cfg.engine.Now = func() time.Time { return *now }
	f, err := newFluxguard(cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func testRepeatsCountedUnread(t *testing.T, cfg config) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	f := newSeedFluxguard(t, cfg, &now)
	set := func(first int) []dns.RR { return flux("c2.evil.tk.", dns.TypeA, first) } // hosts 2n+1 to 2n+4
	steps := []struct {
		name   string
		after  time.Duration
		answer []dns.RR
	}{
		{"first answer: read", 0, set(0)},
		{"the same: read, a repeat", 0, set(0)},
		{"changed after a repeat, same second: counted, not read", 0, set(2)},
		{"AAAA in the same second: read", 0, flux("c2.evil.tk.", dns.TypeAAAA, 20)},
		{"the next second: read", time.Second, set(4)},
		{"rotating in that second: read", 0, set(6)},
		{"rotating again: read", 0, set(8)},
	}
	var answer []dns.RR
	f.Next = test.HandlerFunc(func(_ context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
		m := new(dns.Msg).SetReply(r)
		m.Answer = answer
		return dns.RcodeSuccess, w.WriteMsg(m)
	})
	server := serverLabel(t)
	for _, s := range steps {
		now, answer = now.Add(s.after), s.answer
		rec := dnstest.NewRecorder(&test.ResponseWriter{})
		r := newQuery("c2.evil.tk.", s.answer[0].Header().Rrtype)
		if _, err := f.ServeDNS(newContext(server), rec, r); err != nil || rec.Msg == nil || len(rec.Msg.Answer) != 4 {
			t.Fatalf("%s: expected the upstream's 4 addresses, got %v (%v)", s.name, rec.Msg, err)
		}
	}
	// A report forgets the slots' last answers, so it comes last.
	var want []string
	for _, first := range []int{1, 2, 3, 4, 41, 42, 43, 44, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20} {
		if first > 40 {
			want = append(want, fmt.Sprintf("2a00:1450:4001::%x", first))
		} else {
			want = append(want, fmt.Sprintf("45.0.0.%d", first))
		}
	}
	rows := f.eng.Report()
	if len(rows) != 1 || !slices.Equal(rows[0].IPAddressList, want) || rows[0].QueryCount != len(steps) {
		t.Errorf("Expected addresses %v and %d queries, got %+v", want, len(steps), rows)
	}
	if got := toFloat64(responsesInspected.WithLabelValues(server)); got != float64(len(steps)) {
		t.Errorf("Expected every answer counted as inspected, got %v", got)
	}
	none, suspicious := toFloat64(verdicts.WithLabelValues(server, "none")), toFloat64(verdicts.WithLabelValues(server, "suspicious"))
	if none+suspicious != float64(len(steps)) || suspicious == 0 {
		t.Errorf("Expected %d verdicts, none or suspicious, some suspicious; got %v and %v", len(steps), none, suspicious)
	}
}

// TestQueuedRepeatsByPrint checks that in monitor mode a queued answer
// whose print repeats the name's last answer to the same client, in the
// same query-count bucket (5 minutes), is counted without being read, as
// is one in a second that saw a repeat (see engine.Precheck), and that
// every other is read: another client, an answer that rotates or rotates
// back, the next bucket, and every answer when the metadata plugin wants
// labels. The counted ones reach the name's state.
func TestQueuedRepeatsByPrint(t *testing.T) {
	cfg, err := parse(caddy.NewTestController("dns", "fluxguard . {\n threshold 100\n}"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	f := newSeedFluxguard(t, cfg, &now)
	answer := func(ttl, first int) *dns.Msg { // 3 addresses, from 45.0.0.first
		m := new(dns.Msg).SetReply(newQuery("c2.evil.tk.", dns.TypeA))
		for n := first; n < first+3; n++ {
			m.Answer = append(m.Answer, test.A(fmt.Sprintf("c2.evil.tk. %d IN A 45.0.0.%d", ttl, n)))
		}
		return m
	}
	first, other := &net.UDPAddr{IP: net.IPv4(10, 0, 0, 1)}, &net.UDPAddr{IP: net.IPv4(10, 0, 0, 2)}
	steps := []struct {
		name   string
		after  time.Duration
		client net.Addr
		answer *dns.Msg
		labels bool // the metadata plugin wants fluxguard's labels
		read   bool
	}{
		{"first answer: read", 0, first, answer(60, 1), false, true},
		{"the same, a second on: counted", time.Second, first, answer(60, 1), false, false},
		{"TTLs counted down, a minute on: counted", time.Minute, first, answer(1, 1), false, false},
		{"another client: read", 0, other, answer(60, 1), false, true},
		{"the same to that client: counted", 0, other, answer(60, 1), false, false},
		{"rotated after a repeat, same second: counted, not read", 0, other, answer(60, 4), false, false},
		{"rotated, a second on: read", time.Second, other, answer(60, 4), false, true},
		{"rotated back: read", time.Second, other, answer(60, 1), false, true},
		{"the next bucket: read", 5 * time.Minute, other, answer(60, 1), false, true},
		{"labels wanted: read", time.Second, other, answer(60, 1), true, true},
	}
	ctx := newContext(serverLabel(t))
	for _, s := range steps {
		now = now.Add(s.after)
		f.labelsWanted.Store(s.labels)
		q := query{name: "c2.evil.tk"}
		b := f.readQueued(ctx, &q, s.client, s.answer, answerPrint(s.answer))
		if (b != nil) != s.read {
			t.Fatalf("%s: read %t, want %t", s.name, b != nil, s.read)
		}
		if b != nil {
			f.observeLater(ctx, q.metrics, b)
		}
	}
	rows := f.eng.Report()
	if len(rows) != 1 || len(rows[0].IPAddressList) != 6 || rows[0].QueryCount != len(steps) {
		t.Errorf("Expected 6 addresses and %d queries, got %+v", len(steps), rows)
	}
}

// TestWriteAfterReturn checks that an answer written once ServeDNS has
// returned, as from a goroutine the chain left running, is passed on but
// not observed, and that one racing ServeDNS's return is observed at most
// once (go test -race checks the rest).
func TestWriteAfterReturn(t *testing.T) {
	for _, racing := range []bool{false, true} {
		t.Run(fmt.Sprintf("racing=%v", racing), func(t *testing.T) {
			f, up := newTestFluxguard(t, "fluxguard . {\n action log\n}")
			server := serverLabel(t)
			done := make(chan struct{})
			var late func()
			f.Next = test.HandlerFunc(func(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
				late = func() { up.ServeDNS(ctx, w, r); close(done) }
				if racing {
					go late()
				}
				return dns.RcodeSuccess, nil
			})
			rec := dnstest.NewRecorder(&test.ResponseWriter{})
			if _, err := f.ServeDNS(newContext(server), rec, newQuery("c2.evil.tk.", dns.TypeA)); err != nil {
				t.Fatal(err)
			}
			if !racing {
				late()
			}
			<-done
			if rec.Msg == nil || len(rec.Msg.Answer) != 4 {
				t.Fatalf("Expected the late answer passed on, got %v", rec.Msg)
			}
			got := toFloat64(responsesInspected.WithLabelValues(server))
			if !racing && got != 0 || got > 1 {
				t.Errorf("Expected the late answer observed %s, got %v", map[bool]string{true: "at most once", false: "never"}[racing], got)
			}
		})
	}
}

type addrWriter struct {
	test.ResponseWriter
	addr net.Addr
}

func (w *addrWriter) RemoteAddr() net.Addr { return w.addr }

func TestClientAddr(t *testing.T) {
	tests := []struct {
		name string
		w    dns.ResponseWriter
		want netip.Addr
	}{
		{"UDP", &test.ResponseWriter{}, netip.MustParseAddr("10.240.0.1")},
		{"TCP", &test.ResponseWriter{TCP: true}, netip.MustParseAddr("10.240.0.1")},
		{"IPv6", &test.ResponseWriter6{}, netip.MustParseAddr("fe80::42:ff:feca:4c65")},
		{"IPv4-mapped", &addrWriter{addr: &net.UDPAddr{IP: net.ParseIP("::ffff:45.0.0.1"), Port: 53}}, netip.MustParseAddr("45.0.0.1")},
		{"not IP", &addrWriter{addr: &net.UnixAddr{Name: "/tmp/sock", Net: "unix"}}, netip.Addr{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := clientAddr(tc.w.RemoteAddr()); got != tc.want {
				t.Errorf("Expected %v, got %v", tc.want, got)
			}
		})
	}
}

func TestActionString(t *testing.T) {
	for a, want := range map[action]string{actionLog: "log", actionBlock: "block", actionSinkhole: "sinkhole", action(42): "unknown"} {
		if got := a.String(); got != want {
			t.Errorf("Expected %q, got %q", want, got)
		}
	}
}

func TestObserve(t *testing.T) {
	answer := func(qname string, qtype uint16, rrs ...dns.RR) *dns.Msg {
		m := new(dns.Msg)
		m.SetQuestion(qname, qtype)
		m.Response = true
		m.Answer = rrs
		return m
	}
	many := make([]dns.RR, 100)
	var manyWant []string
	for i := range many {
		many[i] = test.A(fmt.Sprintf("c2.evil.tk. 60 IN A 45.0.0.%d", i+1))
		if i < maxAnswerAddrs {
			manyWant = append(manyWant, fmt.Sprintf("45.0.0.%d", i+1))
		}
	}
	nx := answer("c2.evil.tk.", dns.TypeA, test.A("c2.evil.tk. 60 IN A 45.0.0.1"))
	nx.Rcode = dns.RcodeNameError
	servfail := answer("c2.evil.tk.", dns.TypeA, test.A("c2.evil.tk. 60 IN A 45.0.0.1"))
	servfail.Rcode = dns.RcodeServerFailure
	tc := answer("c2.evil.tk.", dns.TypeA, test.A("c2.evil.tk. 60 IN A 45.0.0.1"))
	tc.Truncated = true
	query := answer("c2.evil.tk.", dns.TypeA, test.A("c2.evil.tk. 60 IN A 45.0.0.1"))
	query.Response = false
	noQuestion := answer("c2.evil.tk.", dns.TypeA, test.A("c2.evil.tk. 60 IN A 45.0.0.1"))
	noQuestion.Question = nil
	twoQuestions := answer("c2.evil.tk.", dns.TypeA, test.A("c2.evil.tk. 60 IN A 45.0.0.1"))
	twoQuestions.Question = append(twoQuestions.Question, twoQuestions.Question[0])
	var longChain []dns.RR
	for i := range maxChain + 2 {
		longChain = append(longChain, test.CNAME(fmt.Sprintf("h%d.evil.tk. 60 IN CNAME h%d.evil.tk.", i, i+1)))
	}
	longChain = append(longChain, test.A(fmt.Sprintf("h%d.evil.tk. 60 IN A 45.0.0.1", maxChain+2)))
	var maxLenChain []dns.RR
	for i := range maxChain {
		maxLenChain = append(maxLenChain, test.CNAME(fmt.Sprintf("h%d.evil.tk. 60 IN CNAME h%d.evil.tk.", i, i+1)))
	}
	maxLenChain = append(maxLenChain, test.A(fmt.Sprintf("h%d.evil.tk. 60 IN A 45.0.0.1", maxChain)))

	// Private addresses first, as many as the buffer holds: the public
	// ones after them must still be read.
	var padded []dns.RR
	for i := range maxAnswerAddrs {
		padded = append(padded, test.A(fmt.Sprintf("c2.evil.tk. 10 IN A 10.0.0.%d", i)))
	}
	padded = append(padded, test.A("c2.evil.tk. 60 IN A 45.0.0.1"), test.A("c2.evil.tk. 60 IN A 45.1.0.1"))

	tests := []struct {
		name   string
		m      *dns.Msg
		want   []string // nil: not evidence
		minTTL uint32
	}{
		{"nil", nil, nil, 0},
		{"NXDOMAIN", nx, nil, 0},
		{"SERVFAIL", servfail, nil, 0},
		{"truncated", tc, nil, 0},
		{"not a response", query, nil, 0},
		{"no question", noQuestion, nil, 0},
		{"two questions", twoQuestions, nil, 0},
		{"MX question", answer("c2.evil.tk.", dns.TypeMX, test.MX("c2.evil.tk. 60 IN MX 10 mail.evil.tk.")), nil, 0},
		{"NODATA", answer("c2.evil.tk.", dns.TypeA), nil, 0},
		{"A", answer("c2.evil.tk.", dns.TypeA,
			test.A("c2.evil.tk. 300 IN A 45.0.0.1"),
			test.A("c2.evil.tk. 60 IN A 45.0.0.2"),
			test.A("c2.evil.tk. 120 IN A 45.0.0.3"),
		), []string{"45.0.0.1", "45.0.0.2", "45.0.0.3"}, 60},
		{"TTL 0 is the lowest", answer("c2.evil.tk.", dns.TypeA,
			test.A("c2.evil.tk. 0 IN A 45.0.0.1"),
			test.A("c2.evil.tk. 300 IN A 45.0.0.2"),
		), []string{"45.0.0.1", "45.0.0.2"}, 0},
		{"AAAA", answer("c2.evil.tk.", dns.TypeAAAA,
			test.AAAA("c2.evil.tk. 60 IN AAAA 2a00:1450:4001::1"),
		), []string{"2a00:1450:4001::1"}, 60},
		{"CNAME chain", answer("c2.evil.tk.", dns.TypeA,
			test.CNAME("c2.evil.tk. 300 IN CNAME hop.evil-cdn.tk."),
			test.CNAME("hop.evil-cdn.tk. 300 IN CNAME edge.evil-cdn.tk."),
			test.A("edge.evil-cdn.tk. 20 IN A 45.0.0.1"),
			test.A("edge.evil-cdn.tk. 30 IN A 45.0.0.2"),
		), []string{"45.0.0.1", "45.0.0.2"}, 20},
		{"CNAME chain out of order", answer("c2.evil.tk.", dns.TypeA,
			test.A("edge.evil-cdn.tk. 20 IN A 45.0.0.1"),
			test.CNAME("hop.evil-cdn.tk. 300 IN CNAME edge.evil-cdn.tk."),
			test.CNAME("c2.evil.tk. 300 IN CNAME hop.evil-cdn.tk."),
		), []string{"45.0.0.1"}, 20},
		{"CNAME chain of maxChain hops", answer("h0.evil.tk.", dns.TypeA, maxLenChain...), []string{"45.0.0.1"}, 60},
		{"CNAME chain too long", answer("h0.evil.tk.", dns.TypeA, longChain...), nil, 0},
		{"CNAME loop", answer("c2.evil.tk.", dns.TypeA,
			test.CNAME("c2.evil.tk. 60 IN CNAME loop.evil.tk."),
			test.CNAME("loop.evil.tk. 60 IN CNAME c2.evil.tk."),
		), nil, 0},
		{"CNAME self loop", answer("c2.evil.tk.", dns.TypeA,
			test.CNAME("c2.evil.tk. 60 IN CNAME c2.evil.tk."),
		), nil, 0},
		{"CNAME without target addresses", answer("c2.evil.tk.", dns.TypeA,
			test.CNAME("c2.evil.tk. 60 IN CNAME edge.evil-cdn.tk."),
			test.A("other.evil.tk. 60 IN A 45.0.0.1"),
		), nil, 0},
		{"addresses capped", answer("c2.evil.tk.", dns.TypeA, many...), manyWant, 60},
		{"mixed-case owner", answer("c2.evil.tk.", dns.TypeA,
			test.A("C2.EVIL.Tk. 60 IN A 45.0.0.1"),
		), []string{"45.0.0.1"}, 60},
		{"mixed-case question and chain", answer("C2.Evil.TK.", dns.TypeA,
			test.CNAME("c2.evil.tk. 60 IN CNAME EDGE.evil-cdn.tk."),
			test.A("edge.EVIL-CDN.tk. 60 IN A 45.0.0.1"),
		), []string{"45.0.0.1"}, 60},
		{"owner mismatch", answer("c2.evil.tk.", dns.TypeA,
			test.A("other.evil.tk. 60 IN A 45.0.0.1"),
			test.A("evil.tk. 60 IN A 45.0.0.2"),
			test.A("x.c2.evil.tk. 60 IN A 45.0.0.3"),
		), nil, 0},
		{"owner mismatch mixed with match", answer("c2.evil.tk.", dns.TypeA,
			test.A("other.evil.tk. 10 IN A 45.0.0.1"),
			test.A("c2.evil.tk. 60 IN A 45.0.0.2"),
		), []string{"45.0.0.2"}, 60},
		{"A in AAAA answer ignored", answer("c2.evil.tk.", dns.TypeAAAA,
			test.A("c2.evil.tk. 10 IN A 45.0.0.1"),
			test.AAAA("c2.evil.tk. 60 IN AAAA 2a00:1450:4001::1"),
		), []string{"2a00:1450:4001::1"}, 60},
		{"only A in AAAA answer", answer("c2.evil.tk.", dns.TypeAAAA,
			test.A("c2.evil.tk. 10 IN A 45.0.0.1"),
		), nil, 0},
		{"AAAA in A answer ignored", answer("c2.evil.tk.", dns.TypeA,
			test.AAAA("c2.evil.tk. 10 IN AAAA 2a00:1450:4001::1"),
			test.A("c2.evil.tk. 60 IN A 45.0.0.1"),
		), []string{"45.0.0.1"}, 60},
		{"IPv4-mapped AAAA", answer("c2.evil.tk.", dns.TypeAAAA,
			test.AAAA("c2.evil.tk. 60 IN AAAA ::ffff:45.0.0.1"),
		), []string{"::ffff:45.0.0.1"}, 60},
		{"private addresses crowd out none", answer("c2.evil.tk.", dns.TypeA, padded...), []string{"45.0.0.1", "45.1.0.1"}, 60},
		{"private addresses only", answer("c2.evil.tk.", dns.TypeA, test.A("c2.evil.tk. 60 IN A 10.0.0.1")), nil, 0},
		{"NAT64 AAAA as IPv4", answer("c2.evil.tk.", dns.TypeAAAA,
			test.AAAA("c2.evil.tk. 60 IN AAAA 64:ff9b::2d00:1"),
			test.AAAA("c2.evil.tk. 60 IN AAAA 64:ff9b::a00:1"),
		), []string{"45.0.0.1"}, 60},
		{"NAT64 local-use prefix is not", answer("c2.evil.tk.", dns.TypeAAAA,
			test.AAAA("c2.evil.tk. 60 IN AAAA 64:ff9b:1::2d00:1"),
		), nil, 0},
		{"other records ignored", answer("c2.evil.tk.", dns.TypeA,
			test.TXT(`c2.evil.tk. 10 IN TXT "x"`),
			test.A("c2.evil.tk. 60 IN A 45.0.0.1"),
		), []string{"45.0.0.1"}, 60},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var obs engine.Observation
			obs.Addrs, obs.MinTTL, obs.Chain, _ = answerAddrs(tc.m, new([maxAnswerAddrs]netip.Addr), new([maxChain]string))
			ok := len(obs.Addrs) > 0
			if ok != (tc.want != nil) {
				t.Fatalf("Expected evidence %t, got %t (addrs %v)", tc.want != nil, ok, obs.Addrs)
			}
			if !ok {
				return
			}
			var got []string
			for _, a := range obs.Addrs {
				got = append(got, a.String())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Expected addresses %v, got %v", tc.want, got)
			}
			if obs.MinTTL != tc.minTTL {
				t.Errorf("Expected min TTL %d, got %d", tc.minTTL, obs.MinTTL)
			}
		})
	}
}

// TestObserveMappedCountsAsIPv4 checks that an IPv4-mapped AAAA address
// and the IPv4 address it carries are one address to the engine.
func TestObserveMappedCountsAsIPv4(t *testing.T) {
	f, _ := newTestFluxguard(t, "fluxguard .")
	f.labelsWanted.Store(true) // full verdicts, as the metadata plugin gets: the second answer repeats the first
	var v engine.Verdict
	for _, m := range []*dns.Msg{
		{MsgHdr: dns.MsgHdr{Response: true}, Question: []dns.Question{{Name: "c2.evil.tk.", Qtype: dns.TypeA, Qclass: dns.ClassINET}},
			Answer: []dns.RR{test.A("c2.evil.tk. 60 IN A 45.0.0.1")}},
		{MsgHdr: dns.MsgHdr{Response: true}, Question: []dns.Question{{Name: "c2.evil.tk.", Qtype: dns.TypeAAAA, Qclass: dns.ClassINET}},
			Answer: []dns.RR{test.AAAA("c2.evil.tk. 60 IN AAAA ::ffff:45.0.0.1")}},
	} {
		var ok bool
		if v, ok = f.observeAnswer(context.Background(), &query{metrics: newServerMetrics("", actionLog), name: "c2.evil.tk"}, m); !ok {
			t.Fatalf("Expected evidence from %s", m)
		}
	}
	if v.UniqueIPs != 1 || v.Queries != 2 || v.Clients != 0 {
		t.Errorf("Expected 1 unique address, 2 queries and no client, got %+v", v)
	}
}

// toFloat64 returns the value of one counter or gauge series, as
// prometheus/testutil.ToFloat64 does; testutil itself needs a module
// (github.com/kylelemons/godebug) that go.sum does not list.
func toFloat64(m prometheus.Metric) float64 {
	var pb dto.Metric
	if err := m.Write(&pb); err != nil {
		panic(err)
	}
	if c := pb.GetCounter(); c != nil {
		return c.GetValue()
	}
	return pb.GetGauge().GetValue()
}

// freeAddr returns a loopback address with a port that was free a moment
// ago (see testenv.FreeAddr).
func freeAddr(t *testing.T) string { return testenv.FreeAddr(t) }

var reportClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func getReport(t *testing.T, addr string) ([]engine.Row, error) {
	t.Helper()
	resp, err := reportClient.Get("http://" + addr + "/report")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("Expected status 200, got %s", resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Expected Content-Type application/json, got %q", ct)
	}
	var rows []engine.Row
	if err := json.NewDecoder(resp.Body).Decode(&rows); err != nil {
		t.Fatalf("Expected a JSON array of rows, got: %v", err)
	}
	if rows == nil {
		t.Fatal("Expected a JSON array, got null")
	}
	return rows, nil
}

// getIndicators reads the newline-delimited JSON of /indicators.
func getIndicators(t *testing.T, addr string) []indicator {
	t.Helper()
	resp, err := reportClient.Get("http://" + addr + "/indicators")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("Expected status 200 with application/x-ndjson, got %s %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	var out []indicator
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var in indicator
		if err := json.Unmarshal(sc.Bytes(), &in); err != nil {
			t.Fatalf("Expected one JSON object a line, got %q: %v", sc.Text(), err)
		}
		out = append(out, in)
	}
	return out
}

func TestReportServer(t *testing.T) {
	addr := freeAddr(t)
	f, _ := newTestFluxguard(t, "fluxguard . {\n report "+addr+"\n}")
	if err := f.start(); err != nil {
		t.Fatalf("Expected no error starting, got: %v", err)
	}
	stopped := false
	defer func() {
		if !stopped {
			f.stop()
		}
	}()

	rows, err := getReport(t, addr)
	if err != nil {
		t.Fatalf("Expected the report, got: %v", err)
	}
	if len(rows) != 0 {
		t.Errorf("Expected an empty report, got %+v", rows)
	}
	if lines := getIndicators(t, addr); len(lines) != 0 {
		t.Errorf("Expected no indicators, got %+v", lines)
	}

	server := serverLabel(t)
	for range 3 {
		serve(t, newContext(server), f, newQuery("c2.evil.tk.", dns.TypeA))
	}
	serve(t, newContext(server), f, newQuery("www.stable.com.", dns.TypeA))

	rows, err = getReport(t, addr)
	if err != nil {
		t.Fatalf("Expected the report, got: %v", err)
	}
	if len(rows) != 1 {
		t.Fatalf("Expected one row (the stable name is not reported), got %+v", rows)
	}
	r := rows[0]
	if r.DomainName != "c2.evil.tk" || r.TLD != "tk" || !r.SuspiciousTLD || !r.ShortSLD || r.SuspicionScore != 2 {
		t.Errorf("Expected the c2.evil.tk row with score 2, got %+v", r)
	}
	if r.UniqueIPCount != 8 || len(r.IPAddressList) != 8 || r.QueryCount != 3 {
		t.Errorf("Expected 8 unique addresses in 3 queries, got %+v", r)
	}
	if r.UniqueClients != 1 || !slices.Equal(r.ClientList, []string{"10.240.0.1"}) {
		t.Errorf("Expected the one test client, got %d %v", r.UniqueClients, r.ClientList)
	}
	if r.ObservationMinutes < 1 || r.DetectionTime.IsZero() || r.FirstSeen.After(r.DetectionTime) {
		t.Errorf("Expected sane times, got %+v", r)
	}

	ind := getIndicators(t, addr)
	if len(ind) != 1 {
		t.Fatalf("Expected one indicator, got %+v", ind)
	}
	if in := ind[0]; in.Name != "c2.evil.tk" || in.Subdomains || in.Score != 2 || !slices.Equal(in.Reasons, []string{"suspicious_tld", "short_sld"}) ||
		len(in.Addresses) != 8 || in.Technique != "T1568.001" || in.FirstSeen.After(in.LastSeen) || !in.HoldUntil.After(in.LastSeen) {
		t.Errorf("Expected the c2.evil.tk indicator, got %+v", in)
	}

	if err := f.stop(); err != nil {
		t.Errorf("Expected no error stopping, got: %v", err)
	}
	stopped = true
	if _, err := getReport(t, addr); err == nil {
		t.Errorf("Expected the report listener closed after stop")
	}
}

// TestReportShared checks that instances naming the same address share one
// listener, which serves the newest engine and closes with the last release.
func TestReportShared(t *testing.T) {
	addr := freeAddr(t)
	cfg := engine.DefaultConfig()
	cfg.Profile = engine.ProfileSeed
	eng1, _ := engine.New(cfg)
	eng2, _ := engine.New(cfg)
	rs1, err := acquireReport(addr, &reportSource{eng: eng1})
	if err != nil {
		t.Fatalf("Expected no error, got: %v", err)
	}
	rs2, err := acquireReport(addr, &reportSource{eng: eng2})
	if err != nil {
		t.Fatalf("Expected no error, got: %v", err)
	}
	if rs1 != rs2 {
		t.Fatal("Expected one shared report server")
	}
	for i := range 3 {
		eng2.Observe(&engine.Observation{Name: "c2.evil.tk", Addrs: []netip.Addr{
			netip.MustParseAddr(fmt.Sprintf("45.0.0.%d", 2*i+1)), netip.MustParseAddr(fmt.Sprintf("45.0.0.%d", 2*i+2)),
		}})
	}
	rows, err := getReport(t, addr)
	if err != nil {
		t.Fatalf("Expected the report, got: %v", err)
	}
	if len(rows) != 1 || rows[0].DomainName != "c2.evil.tk" {
		t.Errorf("Expected the newest engine's row, got %+v", rows)
	}

	releaseReport(rs1)
	if _, err := getReport(t, addr); err != nil {
		t.Errorf("Expected the report still served after the first release, got: %v", err)
	}
	releaseReport(rs2)
	if _, err := getReport(t, addr); err == nil {
		t.Errorf("Expected the report listener closed after the last release")
	}

	// The address can be acquired again.
	rs3, err := acquireReport(addr, &reportSource{eng: eng1})
	if err != nil {
		t.Fatalf("Expected no error re-acquiring, got: %v", err)
	}
	releaseReport(rs3)
}

// TestReportRequestsLimited checks that the report serves at most
// maxReportRequests requests at once, and answers the others 503 at once.
func TestReportRequestsLimited(t *testing.T) {
	rs := newReportServer("")
	entered, release := make(chan struct{}), make(chan struct{})
	h := rs.limited(func(w http.ResponseWriter, _ *http.Request) {
		entered <- struct{}{}
		<-release
	})
	var wg sync.WaitGroup
	for range maxReportRequests {
		wg.Go(func() { h(httptest.NewRecorder(), httptest.NewRequest("GET", "/report", nil)) })
		<-entered
	}
	rec := httptest.NewRecorder()
	h(rec, httptest.NewRequest("GET", "/report", nil))
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Errorf("Expected 503 with Retry-After beyond %d requests, got %d %v", maxReportRequests, rec.Code, rec.Header())
	}
	close(release)
	wg.Wait()
	rec = httptest.NewRecorder()
	go func() { <-entered }()
	h(rec, httptest.NewRequest("GET", "/report", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("Expected the request served once the others ended, got %d", rec.Code)
	}
}

// TestReportConnectionsTimeOut: a client that idles after a request, or
// asks for the report and never reads it, holds its connection, and its
// place among maxReportRequests, no longer than the report's timeouts.
func TestReportConnectionsTimeOut(t *testing.T) {
	saved := reportTimeouts
	defer func() { reportTimeouts = saved }()
	reportTimeouts.write, reportTimeouts.idle = time.Second, time.Second
	addr := freeAddr(t)
	f, _ := newTestFluxguard(t, "fluxguard . {\n report "+addr+"\n min_queries 1\n}")
	if err := f.start(); err != nil {
		t.Fatal(err)
	}
	defer f.stop()
	for i := range 5000 { // suspicious names: a report of megabytes
		var a []netip.Addr
		for j := range 64 {
			a = append(a, netip.AddrFrom4([4]byte{46 + byte(j%8), byte(i >> 8), byte(i), byte(j)}))
		}
		f.eng.Observe(&engine.Observation{Name: fmt.Sprintf("h%d.example.com", i), Addrs: a, MinTTL: 300})
	}
	dial := func(request string) net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", request)
		return c
	}
	idle := dial("/indicators")
	resp, err := http.ReadResponse(bufio.NewReader(idle), nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	for range maxReportRequests {
		c := dial("/report") // never read
		c.(*net.TCPConn).SetReadBuffer(4096)
	}
	// The writes time out after a second, once each report is built:
	// slowly under the race detector. Without the timeouts, never.
	idle.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := idle.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("Expected the idle connection closed, got %v", err)
	}
	status := ""
	for deadline := time.Now().Add(30 * time.Second); status != "200 OK" && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		resp, err := reportClient.Get("http://" + addr + "/indicators")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		status = resp.Status
	}
	if status != "200 OK" {
		t.Errorf("Expected the stalled reports' places free again, got %s", status)
	}
}

func TestReportAddressInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, _ := newTestFluxguard(t, "fluxguard . {\n report "+ln.Addr().String()+"\n}")
	if err := f.start(); err == nil {
		t.Errorf("Expected an error starting on a busy address")
	}
	f.stop()
}

// TestAnswerWrittenAfterChain checks that the chain's first answer goes out
// once the chain has returned, from fluxguard's frame rather than under
// the writing plugin's (see captureWriter): an answer read, one counted as
// a repeat before it was answered, and, with block, a flagged name's
// reply; and that a second answer goes out at once, after the first.
func TestAnswerWrittenAfterChain(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1)) // a GC may shrink, so move, the stack
	steps := []struct {
		name    string
		after   time.Duration
		set     int  // the addresses (see flux)
		twice   bool // the chain writes a second answer
		flagged bool // with block, the reply replaces the answer
	}{
		{"an answer read", 0, 0, false, false},
		{"read, a repeat", 0, 0, false, false},
		{"counted before it is answered", 0, 0, false, false},
		{"two answers", 0, 0, true, false},
		{"the next second, other addresses: flagged", time.Second, 2, false, true},
	}
	for _, action := range []string{"log", "block"} {
		t.Run(action, func(t *testing.T) {
			cfg, err := parse(caddy.NewTestController("dns", "fluxguard . {\n action "+action+"\n threshold 1\n}"))
			if err != nil {
				t.Fatal(err)
			}
			now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
			f := newSeedFluxguard(t, cfg, &now)
			var (
				set             int
				twice, returned bool
				deepest         uintptr // the stack pointer where the chain writes
			)
			f.Next = test.HandlerFunc(func(_ context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
				returned = false
				m := new(dns.Msg).SetReply(r)
				m.Answer = flux("c2.evil.tk.", dns.TypeA, set)
				writeUnderFrame(w, m, twice, &deepest)
				returned = true
				return dns.RcodeSuccess, nil
			})
			for _, s := range steps {
				now, set, twice = now.Add(s.after), s.set, s.twice
				var writes []write
				done := make(chan struct{})
				go func() {
					defer close(done)
					growStackBy64KiB() // so that it does not grow, and move, between the readings
					w := writeRecorder{&test.ResponseWriter{}, func(m *dns.Msg) {
						writes = append(writes, write{m.Rcode, returned, stackPointer() > deepest})
					}}
					f.ServeDNS(context.Background(), w, newQuery("c2.evil.tk.", dns.TypeA))
				}()
				<-done
				want := []write{{dns.RcodeSuccess, true, true}}
				switch {
				case s.twice: // the first goes out as the second comes, under the chain's frames
					want = []write{{dns.RcodeSuccess, false, false}, {dns.RcodeSuccess, false, false}}
				case s.flagged && action == "block":
					want[0].rcode = dns.RcodeNameError
				}
				if !slices.Equal(writes, want) {
					t.Errorf("%s: writes (rcode, after the chain returned, not under its frames) %v, want %v", s.name, writes, want)
				}
			}
		})
	}
}

// TestCaptureWriter checks what a captureWriter does with what the chain
// writes: it holds the first answer for take, sends it first when more is
// written before then, and lets everything written after take go out at
// once.
func TestCaptureWriter(t *testing.T) {
	first, second := &dns.Msg{MsgHdr: dns.MsgHdr{Id: 1}}, &dns.Msg{MsgHdr: dns.MsgHdr{Id: 2}}
	for _, tc := range []struct {
		name     string
		before   []string // written before take: "1" and "2" the answers, "close"
		after    []string // after take
		taken    *dns.Msg
		sent     bool
		wantSeen []string // what the client's writer saw, in order
	}{
		{"nothing written", nil, nil, nil, false, nil},
		{"one answer", []string{"1"}, nil, first, false, nil},
		{"two answers", []string{"1", "2"}, nil, first, true, []string{"1", "2"}},
		{"an answer, then close", []string{"1", "close"}, nil, first, true, []string{"1", "close"}},
		{"close, then an answer", []string{"close", "1"}, nil, nil, false, []string{"close", "1"}},
		{"an answer after take", nil, []string{"1"}, nil, false, []string{"1"}},
		{"one answer before take, one after", []string{"1"}, []string{"2"}, first, false, []string{"2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var seen []string
			client := &eventWriter{seen: &seen}
			cw := &captureWriter{ResponseWriter: client}
			do := func(events []string) {
				for _, e := range events {
					switch e {
					case "1":
						cw.WriteMsg(first)
					case "2":
						cw.WriteMsg(second)
					case "close":
						cw.Close()
					}
				}
			}
			do(tc.before)
			m, sent := cw.take()
			do(tc.after)
			if m != tc.taken || sent != tc.sent {
				t.Errorf("Expected take to return %v, sent %t, got %v, %t", tc.taken, tc.sent, m, sent)
			}
			if !slices.Equal(seen, tc.wantSeen) {
				t.Errorf("Expected the client's writer to see %v, got %v", tc.wantSeen, seen)
			}
		})
	}
}

// eventWriter notes the answers written to it, by id, and its closing.
type eventWriter struct {
	test.ResponseWriter
	seen *[]string
}

func (w *eventWriter) WriteMsg(m *dns.Msg) error {
	*w.seen = append(*w.seen, strconv.Itoa(int(m.Id)))
	return nil
}

func (w *eventWriter) Close() error {
	*w.seen = append(*w.seen, "close")
	return nil
}

// writeUnderFrame writes m to w, twice if asked, under a frame of 4 KiB
// (the cache plugin's is large), after setting deepest to the stack
// pointer there: a write made from below it runs deeper.
//
//go:noinline
func writeUnderFrame(w dns.ResponseWriter, m *dns.Msg, twice bool, deepest *uintptr) {
	var frame [4 << 10]byte
	sinkBytes(frame[:])
	*deepest = stackPointer()
	w.WriteMsg(m)
	if twice {
		w.WriteMsg(m)
	}
}

// write is what writeRecorder saw of a write.
type write struct {
	rcode             int
	afterChain, above bool
}

// writeRecorder calls wrote for every message written to it.
type writeRecorder struct {
	dns.ResponseWriter
	wrote func(*dns.Msg)
}

func (w writeRecorder) WriteMsg(m *dns.Msg) error { w.wrote(m); return w.ResponseWriter.WriteMsg(m) }
