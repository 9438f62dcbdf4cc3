package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestViewsKeepTheirOwnState runs two server blocks on one address, told
// apart by the view plugin: a lab view that only monitors, with a rule
// strict enough to flag one static address, and the default view that
// blocks. Each block keeps its own state: the lab's verdict must not get a
// benign name blocked for the default view's clients, neither before nor
// after a reload without the lab view, which makes the unchanged default
// view the first of its keys (the blocks are named by their place).
func TestViewsKeepTheirOwnState(t *testing.T) {
	sim := startSim(t)
	addr := freeAddr(t)
	conf := filepath.Join(t.TempDir(), "Corefile")
	lab := fmt.Sprintf(`
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
}`, zoneAt(addr), sim.Addr())
	def := fmt.Sprintf(`
%[1]s {
    bind 127.0.0.1
    fluxguard {
        action block
    }
    forward . %[2]s
}
`, zoneAt(addr), sim.Addr())
	if err := os.WriteFile(conf, []byte(lab+def), 0o644); err != nil {
		t.Fatal(err)
	}
	core := startCoreDNSBin(t, buildBinary(t), conf)
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
	// The lab view is taken out; the default view's block is unchanged.
	reloadWith(t, core, conf, def)
	if r := queryFrom(t, "127.0.0.1", addr, "www.stable.example.", dns.TypeA); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Errorf("after the lab view was removed, the unchanged default view (action block, default profile) blocks a benign name on the lab's verdict:\n%s\nlog:\n%s", r, core)
	}
}

// reloadWith writes corefile to conf and has core reload it (SIGUSR1).
func reloadWith(t *testing.T, core *coreDNS, conf, corefile string) {
	t.Helper()
	if err := os.WriteFile(conf, []byte(corefile), 0o644); err != nil {
		t.Fatal(err)
	}
	core.cmd.Process.Signal(syscall.SIGUSR1)
	core.waitLog(t, "Reloading complete")
}

// TestReloadMovesViews runs two view blocks on one address before the
// default one, each of the three holding a name it flagged (a strict rule,
// action block), then reloads with the first view removed, the two
// swapped, or a third added in front: each view keeps its own holds,
// found under its old name, and takes none of the others'.
func TestReloadMovesViews(t *testing.T) {
	sim := startSim(t)
	for _, tc := range []struct {
		name   string
		reload []string // the views, in their new order
	}{
		{"first removed", []string{"b"}},
		{"swapped", []string{"b", "a"}},
		{"one added in front", []string{"c", "a", "b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := freeAddr(t)
			clients := map[string]string{"": "127.0.0.1", "a": "127.0.0.2", "b": "127.0.0.3", "c": "127.0.0.4"}
			held := map[string]string{"": "login.fluxy.top.", "a": "www.rr-shop.example.", "b": "www.stable.example."}
			corefile := func(views ...string) string {
				var b strings.Builder
				for _, v := range append(views, "") {
					view := ""
					if v != "" {
						view = fmt.Sprintf("view %s {\n        expr incidr(client_ip(), '%s/32')\n    }", v, clients[v])
					}
					fmt.Fprintf(&b, `
%[1]s {
    bind 127.0.0.1
    %[3]s
    fluxguard {
        action block
        profile seed
        threshold 1
        min_ips 1
        min_queries 3
        query_count answers
        hold 1h
    }
    forward . %[2]s
}
`, zoneAt(addr), sim.Addr(), view)
				}
				return b.String()
			}
			conf := filepath.Join(t.TempDir(), "Corefile")
			if err := os.WriteFile(conf, []byte(corefile("a", "b")), 0o644); err != nil {
				t.Fatal(err)
			}
			core := startCoreDNSBin(t, buildBinary(t), conf)
			ask := func(view, name string) int { return queryFrom(t, clients[view], addr, name, dns.TypeA).Rcode }
			check := func(when string, views []string) {
				for _, v := range views {
					for w, name := range held {
						want := dns.RcodeSuccess // asked once: not flagged in another view
						if w == v {
							want = dns.RcodeNameError
						}
						if rc := ask(v, name); rc != want {
							t.Errorf("%s, view %s answers %s %s, want %s", when, v, name, dns.RcodeToString[rc], dns.RcodeToString[want])
						}
					}
				}
			}
			for range 4 {
				for v, name := range held {
					ask(v, name)
				}
			}
			check("before the reload", []string{"a", "b", ""})
			reloadWith(t, core, conf, corefile(tc.reload...))
			check("after the reload", append(tc.reload, ""))
			if t.Failed() {
				t.Logf("log:\n%s", core)
			}
		})
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

// TestReloadRemovesABlock runs two server blocks on one address, then
// reloads without one: its names leave the sum of the state gauges, and
// what was kept of it for reloads is dropped.
func TestReloadRemovesABlock(t *testing.T) {
	addr, metricsAddr := freeAddr(t), freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	block := func(zone string) string {
		return fmt.Sprintf(`
%[1]s:%[2]s {
    bind 127.0.0.1
    prometheus %[3]s
    fluxguard
    template IN A %[1]s {
        answer "{{ .Name }} 60 IN A 44.1.2.3"
    }
}
`, zone, port, metricsAddr)
	}
	conf := filepath.Join(t.TempDir(), "Corefile")
	if err := os.WriteFile(conf, []byte(block("a.test")+block("b.test")), 0o644); err != nil {
		t.Fatal(err)
	}
	core := startCoreDNSBin(t, buildBinary(t), conf)
	for i := range 5 {
		query(t, "udp", addr, fmt.Sprintf("n%d.a.test.", i), dns.TypeA, false)
	}
	for i := range 40 {
		query(t, "udp", addr, fmt.Sprintf("n%d.b.test.", i), dns.TypeA, false)
	}
	series := `coredns_fluxguard_tracked_names{server="dns://` + addr + `"}`
	wait := func(want float64, within time.Duration) float64 {
		var v float64
		for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
			if v = metricValue(t, metricsAddr, series); v == want {
				break
			}
		}
		return v
	}
	if v := wait(47, 25*time.Second); v != 47 { // 6 in a.test, 41 in b.test
		t.Fatalf("%s = %v before the reload, want 47", series, v)
	}
	// b.test's block is removed; a.test's is unchanged.
	reloadWith(t, core, conf, block("a.test"))
	query(t, "udp", addr, "n0.a.test.", dns.TypeA, false)
	if v := wait(6, 25*time.Second); v != 6 {
		t.Errorf("%s = %v 25 s after b.test's block was removed by a reload, want a.test's 6 names", series, v)
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
