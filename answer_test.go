package fluxguard

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
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
		t.Run(tc.name, func(t *testing.T) {
			f, _ := newTestFluxguard(t, "fluxguard . {\n profile default\n}")
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
			rec := dnstest.NewRecorder(&test.ResponseWriter{TCP: tc.tcp})
			if _, err := f.ServeDNS(newContext(server), rec, r); err != nil {
				t.Fatal(err)
			}
			if got := int(toFloat64(responsesInspected.WithLabelValues(server))); got != tc.want {
				t.Errorf("%d addresses, buffer %d, tcp %v: %d answers inspected, want %d", tc.addrs, tc.edns, tc.tcp, got, tc.want)
			}
		})
	}
}
