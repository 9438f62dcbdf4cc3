package e2e

import (
	"fmt"
	"net"
	"regexp"
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

// TestGaugesOfBlocksOnOneAddress runs two server blocks for different
// zones on one address, each with its own fluxguard: the state gauges of
// that server show the sum of both blocks' values, not one or the other.
func TestGaugesOfBlocksOnOneAddress(t *testing.T) {
	addr, metricsAddr := freeAddr(t), freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	startCoreDNS(t, fmt.Sprintf(`
a.test:%[1]s {
    bind 127.0.0.1
    prometheus %[2]s
    fluxguard
    template IN A a.test {
        answer "{{ .Name }} 60 IN A 44.1.2.3"
    }
}
b.test:%[1]s {
    bind 127.0.0.1
    prometheus %[2]s
    fluxguard
    template IN A b.test {
        answer "{{ .Name }} 60 IN A 44.1.2.3"
    }
}
`, port, metricsAddr))
	for i := range 40 {
		query(t, "udp", addr, fmt.Sprintf("n%d.a.test.", i), dns.TypeA, false)
	}
	for i := range 5 {
		query(t, "udp", addr, fmt.Sprintf("n%d.b.test.", i), dns.TypeA, false)
	}
	// 41 in a.test (its names and *.a.test), 6 in b.test, set by each
	// block's housekeeping every 10 s.
	series := `coredns_fluxguard_tracked_names{server="dns://` + addr + `"}`
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`)
	var seen []string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		m := re.FindStringSubmatch(httpGet(t, "http://"+metricsAddr+"/metrics"))
		if m == nil {
			continue
		}
		if len(seen) == 0 || seen[len(seen)-1] != m[1] {
			seen = append(seen, m[1])
		}
		if m[1] == "47" {
			return
		}
	}
	t.Errorf("%s never showed the 47 names of both blocks; it showed %v", series, seen)
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
