package fluxguard

import (
	"context"
	"net/netip"
	"testing"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"

	"github.com/fluxguard/fluxguard/internal/engine"
)

// FuzzObserve feeds arbitrary wire-format answers through the
// answer-to-observation path and the engine: nothing may panic, and every
// address taken must be one of the answer's A/AAAA records for the question.
func FuzzObserve(f *testing.F) {
	for _, m := range fuzzSeeds() {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	fg, err := newFluxguard(defaultConfig(), "")
	if err != nil {
		f.Fatal(err)
	}
	sm := newServerMetrics("fuzz", actionLog)
	f.Fuzz(func(t *testing.T, wire []byte) {
		m := new(dns.Msg)
		if m.Unpack(wire) != nil {
			return
		}
		var buf [maxAnswerAddrs]netip.Addr
		addrs, _, _, _ := answerAddrs(m, &buf, new([maxChain]string))
		if len(addrs) > maxAnswerAddrs {
			t.Fatalf("%d addresses", len(addrs))
		}
		for _, a := range addrs {
			if !inAnswer(m, a) {
				t.Fatalf("address %s is not in the answer", a)
			}
		}
		if len(m.Question) == 1 { // as the handler names it
			fg.observeAnswer(context.Background(), &query{metrics: sm, name: engine.Normalize(m.Question[0].Name), client: netip.MustParseAddr("10.0.0.1")}, m)
		}
	})
}

func inAnswer(m *dns.Msg, a netip.Addr) bool {
	for _, rr := range m.Answer {
		if ip := rrAddr(rr); ip.IsValid() && ip == a {
			return true
		}
	}
	return false
}

func fuzzSeeds() []*dns.Msg {
	reply := func(name string, qtype uint16, rrs ...dns.RR) *dns.Msg {
		m := new(dns.Msg).SetQuestion(name, qtype)
		m.Response = true
		m.Answer = rrs
		return m
	}
	return []*dns.Msg{
		reply("c2.evil.tk.", dns.TypeA, test.A("c2.evil.tk. 30 IN A 45.0.0.1"), test.A("c2.evil.tk. 30 IN A 45.0.0.2")),
		reply("www.a.example.", dns.TypeA, test.CNAME("www.a.example. 300 IN CNAME b.cdn.example."), test.A("b.cdn.example. 60 IN A 45.0.0.3")),
		reply("loop.example.", dns.TypeA, test.CNAME("loop.example. 300 IN CNAME loop.example.")),
		reply("v6.example.", dns.TypeAAAA, test.AAAA("v6.example. 30 IN AAAA ::ffff:45.0.0.1"), test.AAAA("v6.example. 30 IN AAAA 2a00::1")),
		reply("victim.example.", dns.TypeA, test.A("other.example. 30 IN A 45.0.0.9")),
		reply(".", dns.TypeA, test.A(". 30 IN A 45.0.0.10")),
	}
}

// FuzzParse feeds arbitrary Corefile blocks to the parser: it must return
// a config or an error, never panic.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"fluxguard",
		"fluxguard example.org {\n action block\n block_rcode NXDOMAIN\n}",
		"fluxguard {\n window 30m\n min_ips 3\n allow a.example b.example\n ignore_nets 10.0.0.0/8 2001:db8::/32\n}",
		"fluxguard {\n action sinkhole\n sinkhole 10.0.0.1 ::1\n sinkhole_ttl 30s\n report 127.0.0.1:9154\n}",
		"fluxguard {\n max_names 1000\n metrics_domains 5\n suspicious_tlds tk top\n}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, corefile string) {
		cfg, err := parse(caddy.NewTestController("dns", corefile))
		if err == nil {
			if verr := cfg.engine.Validate(); verr != nil {
				t.Fatalf("parse accepted an invalid config: %v", verr)
			}
		}
	})
}
