package e2e

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestViewsKeepTheirOwnState runs two server blocks on one address, told
// apart by the view plugin: a lab view that only monitors, with a rule
// strict enough to flag one static address, and the default view that
// blocks. Each block keeps its own state: the lab's verdict must not get a
// benign name blocked for the default view's clients.
func TestViewsKeepTheirOwnState(t *testing.T) {
	sim := startSim(t)
	addr := freeAddr(t)
	core := startCoreDNS(t, fmt.Sprintf(`
%[1]s {
    bind 127.0.0.1
    view lab {
        expr incidr(client_ip(), '127.0.0.2/32')
    }
    fluxguard {
        profile seed
        threshold 1
        min_ips 1
        min_queries 1
    }
    forward . %[2]s
}
%[1]s {
    bind 127.0.0.1
    fluxguard {
        action block
    }
    forward . %[2]s
}
`, zoneAt(addr), sim.Addr()))
	for range 3 { // the lab view: monitor mode, never changes an answer
		if r := queryFrom(t, "127.0.0.2", addr, "www.stable.example.", dns.TypeA); r.Rcode != dns.RcodeSuccess {
			t.Fatalf("the lab view changed the answer:\n%s", r)
		}
	}
	core.waitLog(t, "domain=www.stable.example level=flagged")
	// The default view has never seen the name, nor would its default
	// profile flag one static address.
	if r := queryFrom(t, "127.0.0.1", addr, "www.stable.example.", dns.TypeA); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Fatalf("the default view answered, on the lab view's verdict:\n%s", r)
	}
}

// queryFrom is query over UDP from the loopback address src (all of
// 127/8 is local on Linux), for the view plugin's client_ip().
func queryFrom(t *testing.T, src, server, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	c := &dns.Client{Net: "udp", Timeout: 3 * time.Second,
		Dialer: &net.Dialer{Timeout: 3 * time.Second, LocalAddr: &net.UDPAddr{IP: net.ParseIP(src)}}}
	r, _, err := c.Exchange(m, server)
	if err != nil {
		t.Fatalf("%s from %s: %v", name, src, err)
	}
	return r
}
