package fluxguard

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/pkg/proxyproto"
	"github.com/coredns/coredns/plugin/test"
	"github.com/coredns/coredns/request"
	"github.com/miekg/dns"
)

func TestNameServers(t *testing.T) {
	m := new(dns.Msg).SetQuestion("www.kwik.tk.", dns.TypeA)
	m.Answer = []dns.RR{test.A("www.kwik.tk. 10 IN A 45.0.0.1")}
	m.Ns = []dns.RR{
		test.NS("kwik.tk. 10 IN NS NS3.kwik.tk."),
		test.NS("kwik.tk. 10 IN NS ns7.kwik.tk."),
		test.NS("victim.example. 10 IN NS ns.victim.example."), // not the name's zone
		test.NS(". 10 IN NS a.root-servers.net."),
	}
	if got := nameServers(m, new([maxNS]string)); !slices.Equal(got, []string{"ns3.kwik.tk", "ns7.kwik.tk"}) {
		t.Errorf("nameServers = %v", got)
	}
	if got := nameServers(nil, new([maxNS]string)); got != nil {
		t.Errorf("nameServers(nil) = %v", got)
	}
}

// TestAnswerPrint checks that answers of the same print read the same,
// TTLs aside, and that what changes the reading changes the print.
func TestAnswerPrint(t *testing.T) {
	base := func() *dns.Msg {
		m := new(dns.Msg).SetQuestion("x.example.com.", dns.TypeA)
		m.Response = true
		m.Answer = []dns.RR{
			test.CNAME("x.example.com. 300 IN CNAME y.example.net."),
			test.A("y.example.net. 60 IN A 45.0.0.1"),
			test.A("y.example.net. 60 IN A 45.0.0.2"),
		}
		return m
	}
	for _, tc := range []struct {
		name   string
		change func(m *dns.Msg)
		same   bool // the same print as base's
		none   bool // no print
	}{
		{"the same records", func(*dns.Msg) {}, true, false},
		{"TTLs counted down", func(m *dns.Msg) { m.Answer[1].Header().Ttl, m.Answer[2].Header().Ttl = 3, 3 }, true, false},
		{"a signature after its records", func(m *dns.Msg) {
			m.Answer = append(m.Answer, test.RRSIG("y.example.net. 60 IN RRSIG A 8 3 60 20261231000000 20261201000000 1 example.net. AAAA"))
		}, true, false},
		{"an address changed", func(m *dns.Msg) { m.Answer[2] = test.A("y.example.net. 60 IN A 45.0.0.3") }, false, false},
		{"an address added", func(m *dns.Msg) { m.Answer = append(m.Answer, test.A("y.example.net. 60 IN A 45.0.0.3")) }, false, false},
		{"addresses in another order", func(m *dns.Msg) { m.Answer[1], m.Answer[2] = m.Answer[2], m.Answer[1] }, false, false},
		{"another owner", func(m *dns.Msg) { m.Answer[2] = test.A("z.example.net. 60 IN A 45.0.0.2") }, false, false},
		{"another CNAME target", func(m *dns.Msg) { m.Answer[0] = test.CNAME("x.example.com. 300 IN CNAME z.example.net.") }, false, false},
		{"an AAAA record of the address", func(m *dns.Msg) { m.Answer[2] = test.AAAA("y.example.net. 60 IN AAAA ::ffff:45.0.0.2") }, false, false},
		{"name servers", func(m *dns.Msg) { m.Ns = []dns.RR{test.NS("example.com. 60 IN NS ns1.example.com.")} }, false, true},
		{"name servers in the answer", func(m *dns.Msg) { m.Answer = append(m.Answer, test.NS("x.example.com. 60 IN NS ns1.example.com.")) }, false, true},
		{"NXDOMAIN", func(m *dns.Msg) { m.Rcode = dns.RcodeNameError }, false, true},
		{"truncated", func(m *dns.Msg) { m.Truncated = true }, false, true},
		{"a query", func(m *dns.Msg) { m.Response = false }, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := base()
			tc.change(m)
			want, got := answerPrint(base()), answerPrint(m)
			if want == 0 || (got == want) != tc.same || (got == 0) != tc.none {
				t.Fatalf("print %#x, base's %#x: want the same %t, none %t", got, want, tc.same, tc.none)
			}
			if !tc.same {
				return
			}
			a, b := readAnswer(base(), "x.example.com", netip.Addr{}), readAnswer(m, "x.example.com", netip.Addr{})
			if !slices.Equal(a.obs.Addrs, b.obs.Addrs) || !slices.Equal(a.obs.Chain, b.obs.Chain) || !slices.Equal(a.obs.NS, b.obs.NS) {
				t.Errorf("the same print, read otherwise: %+v, base %+v", b.obs, a.obs)
			}
		})
	}
	if answerPrint(nil) != 0 {
		t.Error("a print of nil")
	}
}

// TestTruncatedForTheClient checks that an answer the server is to
// truncate for its UDP client counts for nothing, and the client's retry
// over TCP counts once: each lookup of a large answer is one query.
func TestTruncatedForTheClient(t *testing.T) {
	for _, tc := range []struct {
		name  string
		addrs int
		edns  uint16 // the client's buffer; 0 for none (512 bytes)
		tcp   bool
		want  int // answers inspected for one lookup
	}{
		{"fits 512 bytes", 4, 0, false, 1},
		{"truncated for 512 bytes", 40, 0, false, 0},
		{"fits the EDNS buffer", 40, 1232, false, 1},
		{"truncated for the EDNS buffer", 90, 1232, false, 0},
		{"over TCP", 90, 0, true, 1},
	} {
		// Monitor mode judges the answer once written, by what the
		// server's writer did to it; block mode before writing it.
		for _, action := range []string{"log", "block"} {
			t.Run(tc.name+"/"+action, func(t *testing.T) {
				f, _ := newTestFluxguard(t, "fluxguard . {\n profile default\n action "+action+"\n}")
				f.Next = plugin.HandlerFunc(func(_ context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
					m := new(dns.Msg).SetReply(r)
					for i := range tc.addrs {
						m.Answer = append(m.Answer, test.A(fmt.Sprintf("%s 60 IN A %d.1.2.3", r.Question[0].Name, 11+i)))
					}
					return dns.RcodeSuccess, w.WriteMsg(m)
				})
				r := newQuery("big.example.com.", dns.TypeA)
				if tc.edns != 0 {
					r = newQueryEDNS("big.example.com.", dns.TypeA, tc.edns, false)
				}
				server := serverLabel(t)
				// As the server does (dnsserver.Server.ServeDNS).
				w := request.NewScrubWriter(r, dnstest.NewRecorder(&test.ResponseWriter{TCP: tc.tcp}))
				if _, err := f.ServeDNS(newContext(server), w, r); err != nil {
					t.Fatal(err)
				}
				if got := int(toFloat64(responsesInspected.WithLabelValues(server))); got != tc.want {
					t.Errorf("%d addresses, buffer %d, tcp %v: %d answers inspected, want %d", tc.addrs, tc.edns, tc.tcp, got, tc.want)
				}
			})
		}
	}
}

// scrubbed reports whether CoreDNS's ScrubWriter (request.ScrubWriter:
// SizeAndDo, then Scrub) truncates m, the answer to r, on its way to w's
// client: the outcome truncates must predict.
func scrubbed(w dns.ResponseWriter, r, m *dns.Msg) bool {
	c := m.Copy()
	rc := r.Copy()
	state := request.Request{Req: rc, W: w}
	state.SizeAndDo(c)
	state.Scrub(c)
	return c.Truncated && !m.Truncated
}

// TestTruncatesPredictsScrub compares truncates with what the server's
// ScrubWriter does, for 1 to 120 addresses an answer: clients without
// EDNS0 and with it (a cookie, which CoreDNS does not copy), over UDP, TCP
// and the PROXY protocol. Signed answers are the tsig plugin's, in
// TestTruncatedForTheClient (test/e2e).
func TestTruncatesPredictsScrub(t *testing.T) {
	udp := &test.ResponseWriter{}
	cookie := &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0123456789abcdef"} // dig's client cookie
	for _, tc := range []struct {
		what string
		w    dns.ResponseWriter
		req  func() *dns.Msg
	}{
		{"EDNS 1232, no options, answer without OPT", udp, func() *dns.Msg { return newQueryEDNS("x.big.top.", dns.TypeA, 1232, false) }},
		{"EDNS 1232 with a client cookie (dig), answer without OPT", udp, func() *dns.Msg {
			r := newQueryEDNS("x.big.top.", dns.TypeA, 1232, false)
			o := r.IsEdns0()
			o.Option = append(o.Option, cookie)
			return r
		}},
		{"PROXY protocol v2 over UDP (proxyproto Addr)", &addrWriter{addr: proxyproto.NewAddr(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}, &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 5353}, nil)},
			func() *dns.Msg { return newQuery("x.big.top.", dns.TypeA) }},
		{"TCP", &test.ResponseWriter{TCP: true}, func() *dns.Msg { return newQuery("x.big.top.", dns.TypeA) }},
		{"EDNS 512", udp, func() *dns.Msg { return newQueryEDNS("x.big.top.", dns.TypeA, 512, false) }},
		{"EDNS 100 (read as 512)", udp, func() *dns.Msg { return newQueryEDNS("x.big.top.", dns.TypeA, 100, false) }},
	} {
		t.Run(tc.what, func(t *testing.T) {
			var wrong []string
			for n := 1; n <= 120; n++ {
				r := tc.req()
				m := new(dns.Msg).SetReply(r)
				m.Extra = nil
				for i := range n {
					m.Answer = append(m.Answer, test.A(fmt.Sprintf("x.big.top. 60 IN A %d.%d.2.3", 11+i%200, i/200)))
				}
				got := truncates(context.Background(), tc.w, r, m)
				if want := scrubbed(tc.w, r, m); got != want {
					wrong = append(wrong, fmt.Sprintf("%d A (%d bytes uncompressed): truncates=%v, server truncates=%v", n, m.Len(), got, want))
				}
			}
			if len(wrong) > 0 {
				t.Errorf("%d of 120 answer sizes mispredicted, e.g.:\n%s", len(wrong), wrong[0])
				if len(wrong) > 1 {
					t.Errorf("%s", wrong[len(wrong)-1])
				}
			}
		})
	}
}

// BenchmarkAnswerPrint is answerPrint on a cache hit's answer of 4
// addresses.
func BenchmarkAnswerPrint(b *testing.B) {
	m := new(dns.Msg).SetQuestion("h1.example.com.", dns.TypeA)
	m.Response = true
	for i := range 4 {
		m.Answer = append(m.Answer, test.A(fmt.Sprintf("h1.example.com. 60 IN A 45.0.0.%d", i+1)))
	}
	for b.Loop() {
		answerPrint(m)
	}
}
