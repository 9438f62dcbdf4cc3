package fluxguard

import (
	"slices"
	"testing"

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
