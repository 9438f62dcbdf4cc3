package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/fluxguard/fluxguard/internal/testenv"
)

// TestFailedReload reloads the Corefile three times with a server block
// on a port the test holds, so that each reload fails after fluxguard's
// new instance has started, then once with the Corefile as it was. caddy
// drops a failed instance without its shutdown callbacks: after every
// reload exactly one instance of fluxguard must run (its goroutines, in
// the pprof plugin's dump), the held name stay blocked, the report stay
// served and the fleet's link stay exported under the serving instance's
// server (real Redis).
func TestFailedReload(t *testing.T) {
	sim := startSim(t)
	redis := testenv.StartRedis(t)
	dir := t.TempDir()
	addr, pprofAddr, reportAddr, metricsAddr := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	busy := holdPort(t)
	conf := filepath.Join(dir, "Corefile")
	writeCorefile := func(extra string) {
		t.Helper()
		if err := os.WriteFile(conf, fmt.Appendf(nil, `%s {
    bind 127.0.0.1
    pprof %s
    prometheus %s
    fluxguard {
        action block
        block_rcode REFUSED
        report %s
        state_file %s
        state_interval 1s
        shared redis://%s prefix failed-reload
    }
    cache 30
    forward . %s
}
%s`, zoneAt(addr), pprofAddr, metricsAddr, reportAddr, filepath.Join(dir, "state"), redis.Addr, sim.Addr(), extra), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeCorefile("")
	core := startCoreDNSFile(t, conf)
	flagFlux(t, addr)

	check := func(when string) {
		t.Helper()
		// A stopped instance's goroutines return once they are scheduled.
		var counts string
		one := func() bool {
			dump := httpGet(t, "http://"+pprofAddr+"/debug/pprof/goroutine?debug=2")
			housekeep := strings.Count(dump, "fluxguard.(*Fluxguard).housekeep(")
			persist := strings.Count(dump, "fluxguard.(*Fluxguard).persist(")
			counts = fmt.Sprintf("%d in housekeep, %d in persist", housekeep, persist)
			return housekeep == 1 && persist == 1
		}
		for deadline := time.Now().Add(5 * time.Second); !one() && time.Now().Before(deadline); {
			time.Sleep(100 * time.Millisecond)
		}
		if !one() {
			t.Errorf("%s: %s goroutines, want one instance's", when, counts)
		}
		if r := query(t, "udp", addr, "login.fluxy.top.", dns.TypeA, true); r.Rcode != dns.RcodeRefused {
			t.Errorf("%s: the held name answered\n%s", when, r)
		}
		if report := httpGet(t, "http://"+reportAddr+"/report"); !strings.Contains(report, "login.fluxy.top") {
			t.Errorf("%s: the report lacks the held name: %s", when, report)
		}
		if up, err := metricSum(metricsAddr, "coredns_fluxguard_shared_up"); err != nil || up != 1 {
			t.Errorf("%s: shared_up %v, %v; want the link exported, up", when, up, err)
		}
	}
	reload := func(done string) {
		t.Helper()
		before := strings.Count(core.String(), done)
		core.cmd.Process.Signal(syscall.SIGUSR1)
		waitFor(t, 15*time.Second, done, func() bool { return strings.Count(core.String(), done) > before })
	}

	writeCorefile(fmt.Sprintf("dns://%s {\n    whoami\n}\n", busy))
	for i := range 3 {
		reload("Restart failed")
		check(fmt.Sprintf("failed reload %d", i+1))
	}
	writeCorefile("")
	reload("Reloading complete")
	check("the reload after them")
}

// holdPort returns a loopback address whose UDP and TCP port the test
// holds until it ends, without SO_REUSEPORT: CoreDNS cannot bind it.
func holdPort(t *testing.T) string {
	t.Helper()
	addr := freeAddr(t)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close(); pc.Close() })
	return addr
}

// TestReportAddressTaken checks that two server blocks cannot serve their
// reports on one address: CoreDNS refuses the Corefile, naming the line.
func TestReportAddressTaken(t *testing.T) {
	report := freeAddr(t)
	conf := filepath.Join(t.TempDir(), "Corefile")
	block := "%s {\n    fluxguard {\n        report %s\n    }\n    forward . 127.0.0.1:1\n}\n"
	corefile := fmt.Sprintf(block, zoneAt(freeAddr(t)), report) + fmt.Sprintf(block, zoneAt(freeAddr(t)), report)
	if err := os.WriteFile(conf, []byte(corefile), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := launchCoreDNS(t, exec.Command(buildBinary(t), "-conf", conf))
	if err == nil {
		t.Fatal("CoreDNS started with one report address in two server blocks")
	}
	for _, want := range []string{conf + ":9", "plugin/fluxguard", "report: " + report + " is already the report address"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}
