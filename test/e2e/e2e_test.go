// Package e2e runs the real CoreDNS binary with fluxguard (cmd/coredns-fluxguard)
// in front of real DNS servers on loopback, and queries it as clients do.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/fluxguard/fluxguard/internal/engine"
	"github.com/fluxguard/fluxguard/internal/fluxsim"
	"github.com/fluxguard/fluxguard/internal/testenv"
)

// TestEndToEnd builds the real CoreDNS binary with fluxguard, starts it in
// front of fluxsim (a real authoritative DNS server on loopback) and queries
// it over UDP and TCP as a client would.
func TestEndToEnd(t *testing.T) {
	sim := startSim(t)

	blockAddr, sinkAddr := freeAddr(t), freeAddr(t)
	metricsAddr, reportAddr := freeAddr(t), freeAddr(t)
	core := startCoreDNS(t, fmt.Sprintf(`
%[1]s {
    bind 127.0.0.1
    metadata
    log . "{type} {name} {rcode} fluxguard={/fluxguard/level} score={/fluxguard/score} reasons={/fluxguard/reasons}"
    prometheus %[3]s
    fluxguard {
        action block
        allow alias.example
        report %[4]s
    }
    cache 30
    forward . %[5]s
}
%[2]s {
    bind 127.0.0.1
    fluxguard {
        action sinkhole
        allow alias.example
    }
    forward . %[5]s
}
`, zoneAt(blockAddr), zoneAt(sinkAddr), metricsAddr, reportAddr, sim.Addr()))

	t.Run("flux domain flagged then blocked", func(t *testing.T) {
		// A gives 4 IPv4, AAAA 4 IPv6 addresses, and the cache repeats
		// them for 5 s: the name is suspicious, not flagged, until its
		// answers have rotated. block_rcode is the default: NXDOMAIN.
		start := time.Now()
		r := askUntil(t, "udp", blockAddr, "login.fluxy.top.", blockedAnswer)
		if took := time.Since(start); took < 4*time.Second {
			t.Fatalf("blocked after %s, before the cached answers rotated", took)
		}
		if r.Rcode != dns.RcodeNameError {
			t.Fatalf("want NXDOMAIN:\n%s", r)
		}
		if len(r.Ns) != 1 {
			t.Fatalf("want one SOA in the authority section:\n%s", r)
		}
		if soa, ok := r.Ns[0].(*dns.SOA); !ok || soa.Hdr.Name != "fluxy.top." || soa.Hdr.Ttl != 10 || soa.Minttl != 10 {
			t.Fatalf("want the SOA of fluxy.top. with TTL and MINIMUM 10 (sinkhole_ttl):\n%s", r)
		}
		checkEDE(t, r, true, `fluxguard: flagged fast-flux \(T1568\.001\), score [0-9.]+: [0-9]+ IPs in [0-9.]+ networks, TTL [0-5]s; prefix_diversity,rotating,short_ttl,suspicious_tld`)
		// Held: blocked over TCP too, and without EDNS no OPT is added.
		r = query(t, "tcp", blockAddr, "LOGIN.fluxy.top.", dns.TypeA, false)
		if r.Rcode != dns.RcodeNameError {
			t.Fatalf("TCP query not blocked:\n%s", r)
		}
		checkEDE(t, r, false, "")
		core.waitLog(t, "domain=login.fluxy.top level=suspicious previous=none score=5 reasons=suspicious_tld,prefix_diversity,short_ttl unique_ips=8")
		core.waitLog(t, "domain=login.fluxy.top level=flagged previous=suspicious")
		core.waitLog(t, "technique=T1568.001")
	})

	t.Run("stable and allowlisted names untouched", func(t *testing.T) {
		names := []string{"www.stable.example.", "www.rr-shop.example.", "www.alias.example.", "img.shop.cloudfront.net."}
		for i := range 12 {
			for _, name := range names {
				for _, server := range []string{blockAddr, sinkAddr} {
					netw := []string{"udp", "tcp"}[i%2]
					r := query(t, netw, server, name, dns.TypeA, true)
					if r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 || r.IsEdns0() == nil || len(r.IsEdns0().Option) != 0 {
						t.Fatalf("%s over %s to %s, round %d: touched:\n%s", name, netw, server, i, r)
					}
					if a, ok := r.Answer[len(r.Answer)-1].(*dns.A); !ok || a.A.IsUnspecified() {
						t.Fatalf("%s sinkholed:\n%s", name, r)
					}
				}
			}
		}
	})

	t.Run("flux domain sinkholed", func(t *testing.T) {
		// No cache in this server block: each query reaches fluxsim, which
		// rotates 3 of 40 IPs per answer.
		var r *dns.Msg
		for range 4 {
			r = query(t, "udp", sinkAddr, "cdn.kwik.tk.", dns.TypeA, true)
			if a, ok := firstA(r); ok && a.A.Equal(net.IPv4zero) {
				break
			}
		}
		a, ok := firstA(r)
		if !ok || !a.A.Equal(net.IPv4zero) || len(r.Answer) != 1 || a.Hdr.Ttl != 10 {
			t.Fatalf("not sinkholed to 0.0.0.0 with TTL 10:\n%s", r)
		}
		checkEDE(t, r, true, edeEvidence)
		r = query(t, "tcp", sinkAddr, "cdn.kwik.tk.", dns.TypeAAAA, true)
		if len(r.Answer) != 1 || r.Answer[0].(*dns.AAAA).AAAA.String() != "::" {
			t.Fatalf("AAAA not sinkholed to :::\n%s", r)
		}
	})

	t.Run("metadata reaches the log plugin", func(t *testing.T) {
		core.waitLog(t, "A login.fluxy.top. NOERROR fluxguard=suspicious score=5 reasons=suspicious_tld,prefix_diversity,short_ttl")
		core.waitLog(t, "login.fluxy.top. NXDOMAIN fluxguard=flagged score=")
		core.waitLog(t, "A www.stable.example. NOERROR fluxguard=none score=0 reasons=-")
		core.waitLog(t, "A www.alias.example. NOERROR fluxguard=allowed score=- reasons=-")
	})

	t.Run("metrics", func(t *testing.T) {
		body := httpGet(t, "http://"+metricsAddr+"/metrics")
		for _, want := range []string{
			fmt.Sprintf(`coredns_fluxguard_actions_total{action="block",server="dns://%s"}`, blockAddr),
			fmt.Sprintf(`coredns_fluxguard_actions_total{action="sinkhole",server="dns://%s"}`, sinkAddr),
			fmt.Sprintf(`coredns_fluxguard_flagged{domain="login.fluxy.top",server="dns://%s"} 1`, blockAddr),
			fmt.Sprintf(`coredns_fluxguard_flagged{domain="cdn.kwik.tk",server="dns://%s"} 1`, sinkAddr),
			`coredns_fluxguard_responses_inspected_total{server="dns://` + blockAddr,
			`coredns_fluxguard_verdicts_total{level="flagged",server="dns://` + blockAddr,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("metrics lack %s", want)
			}
		}
		for _, name := range []string{"www.stable.example", "img.shop.cloudfront.net", "www.alias.example"} {
			if strings.Contains(body, `domain="`+name+`"`) {
				t.Errorf("metrics flag %s", name)
			}
		}
	})

	t.Run("report", func(t *testing.T) {
		var rows []engine.Row
		if err := json.Unmarshal([]byte(httpGet(t, "http://"+reportAddr+"/report")), &rows); err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 || rows[0].DomainName != "login.fluxy.top" || rows[0].UniqueIPCount <= 8 || rows[0].SuspicionScore < 8 || rows[0].QueryCount < 3 {
			t.Fatalf("report rows: %+v", rows)
		}
		// The indicators: one JSON object a line, the flagged name held.
		lines := strings.Split(strings.TrimSpace(httpGet(t, "http://"+reportAddr+"/indicators")), "\n")
		var in struct {
			Name      string    `json:"name"`
			Reasons   []string  `json:"reasons"`
			Addresses []string  `json:"addresses"`
			HoldUntil time.Time `json:"hold_until"`
		}
		if len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &in) != nil || in.Name != "login.fluxy.top" ||
			len(in.Addresses) <= 8 || len(in.Reasons) == 0 || !in.HoldUntil.After(time.Now()) {
			t.Fatalf("indicators: %q", lines)
		}
	})
}

// startSim starts fluxsim with the demo names, and extra, on loopback until
// the test ends.
func startSim(t *testing.T, extra ...fluxsim.Name) *fluxsim.Server {
	t.Helper()
	sim, err := fluxsim.New(append(fluxsim.Demo(), extra...))
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	return sim
}

// zoneAt is the server block key for the root zone on addr's port.
func zoneAt(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return ".:" + port
}

// fluxPace paces the queries that wait for a flux name to be flagged. The
// demo's login.fluxy.top answers with a TTL of 5 s, the cache's least:
// behind a cache its answers rotate every 5 s, and a name is flagged once
// they have, never on its first answers.
const fluxPace = 250 * time.Millisecond

// askUntil asks server for name over netw, A and AAAA in turn, every
// fluxPace until done holds for an answer, and returns that answer. It
// fails the test after 30 s.
func askUntil(t *testing.T, netw, server, name string, done func(*dns.Msg) bool) *dns.Msg {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; ; i++ {
		r := query(t, netw, server, name, []uint16{dns.TypeA, dns.TypeAAAA}[i%2], true)
		if done(r) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: waited 30 s; last answer from %s:\n%s", name, server, r)
		}
		time.Sleep(fluxPace)
	}
}

// flag asks server for name until it is blocked (see blockedAnswer), and
// returns when.
func flag(t *testing.T, server, name string) time.Time {
	t.Helper()
	askUntil(t, "udp", server, name, blockedAnswer)
	return time.Now()
}

// flagged returns a condition for askUntil: core has logged name flagged
// (monitor mode), every answer until then unchanged.
func flagged(t *testing.T, core *coreDNS, name string) func(*dns.Msg) bool {
	return func(r *dns.Msg) bool {
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
			t.Fatalf("monitor mode changed the answer:\n%s", r)
		}
		return strings.Contains(core.String(), "domain="+strings.TrimSuffix(name, ".")+" level=flagged")
	}
}

func query(t *testing.T, netw, server, name string, qtype uint16, edns bool) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	if edns {
		m.SetEdns0(1232, false)
	}
	c := &dns.Client{Net: netw, Timeout: 3 * time.Second}
	r, _, err := c.Exchange(m, server)
	if err != nil {
		t.Fatalf("%s %s over %s: %v", name, dns.TypeToString[qtype], netw, err)
	}
	return r
}

func firstA(r *dns.Msg) (*dns.A, bool) {
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			return a, true
		}
	}
	return nil, false
}

// edeEvidence matches the EDE text of a name flagged on its evidence: its
// level, score, figures and reasons.
const edeEvidence = `fluxguard: flagged fast-flux \(T1568\.001\), score [0-9.]+: [0-9]+ IPs in [0-9]+ networks, TTL [0-9]+s; [a-z_]+(,[a-z_]+)*`

// checkEDE checks for EDE 15 with the client's buffer size and no DO bit
// when the query had EDNS0, its text matching the regular expression text
// whole, and for no OPT at all when the query had no EDNS0.
func checkEDE(t *testing.T, r *dns.Msg, edns bool, text string) {
	t.Helper()
	opt := r.IsEdns0()
	if !edns {
		if opt != nil {
			t.Fatalf("OPT added to a reply to a query without EDNS0:\n%s", r)
		}
		return
	}
	if opt == nil || opt.UDPSize() != 1232 || opt.Do() || len(opt.Option) != 1 {
		t.Fatalf("want OPT with size 1232, no DO, one option:\n%s", r)
	}
	ede, ok := opt.Option[0].(*dns.EDNS0_EDE)
	if !ok || ede.InfoCode != dns.ExtendedErrorCodeBlocked {
		t.Fatalf("want EDE 15:\n%s", r)
	}
	if !regexp.MustCompile("^(?:" + text + ")$").MatchString(ede.ExtraText) {
		t.Fatalf("want EDE text matching %s, got %q", text, ede.ExtraText)
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return string(b)
}

// freeAddr returns a loopback address whose port is free for UDP and TCP
// (see testenv.FreeAddr).
func freeAddr(t *testing.T) string { return testenv.FreeAddr(t) }

// coreDNS is a running fluxguard binary and its output.
type coreDNS struct {
	mu     sync.Mutex
	out    bytes.Buffer
	cmd    *exec.Cmd
	exited chan error
}

// terminate stops CoreDNS as an init system does, with SIGTERM, and waits
// for it to exit.
func (c *coreDNS) terminate(t *testing.T) {
	t.Helper()
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(15 * time.Second):
		t.Fatalf("CoreDNS did not exit on SIGTERM:\n%s", c)
	}
}

func (c *coreDNS) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.Write(p)
}

func (c *coreDNS) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.String()
}

// waitLog waits up to 5s for want in CoreDNS's output.
func (c *coreDNS) waitLog(t *testing.T, want string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if strings.Contains(c.String(), want) {
			return
		}
	}
	t.Fatalf("log lacks %q; log:\n%s", want, c)
}

// binaryBuild is one build of cmd/coredns-fluxguard, made once per test
// run.
type binaryBuild struct {
	once sync.Once
	path string
	err  error
}

// builds are the plain build and the -race one.
var builds [2]binaryBuild

// buildBinary builds cmd/coredns-fluxguard once per test run, with -race
// when the test itself runs with it: the end-to-end tests then check
// CoreDNS and fluxguard for races too, and since the packages are in the
// build cache from compiling this test, the build is mostly a link.
func buildBinary(t *testing.T) string { return coreDNSBinary(t, raceEnabled, 0) }

// coreDNSBinary builds cmd/coredns-fluxguard, with -race if race, once per
// test run. The build gets its own timeout: 15 minutes (a cold race build
// of CoreDNS takes minutes), or less, so as to leave after (the time the
// caller needs once it is built) and 30 seconds before the test deadline.
func coreDNSBinary(t *testing.T, race bool, after time.Duration) string {
	t.Helper()
	b := &builds[0]
	args := []string{"build"}
	if race {
		b, args = &builds[1], append(args, "-race")
	}
	b.once.Do(func() {
		timeout := 15 * time.Minute
		if d, ok := t.Deadline(); ok {
			timeout = min(timeout, time.Until(d)-after-30*time.Second)
		}
		if timeout < 30*time.Second {
			b.err = fmt.Errorf("not enough time left before the test deadline to build CoreDNS and use it for %v (raise -timeout)", after)
			return
		}
		dir, err := os.MkdirTemp("", "fluxguard-e2e")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, "coredns-fluxguard")
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
		cmd, start := "go "+strings.Join(args, " "), time.Now()
		out, err := exec.CommandContext(ctx, goBin, append(args, "-o", b.path, "../../cmd/coredns-fluxguard")...).CombinedOutput()
		switch {
		case ctx.Err() != nil:
			b.err = fmt.Errorf("%s: timed out after %v\n%s", cmd, timeout, out)
		case err != nil:
			b.err = fmt.Errorf("%s: %v\n%s", cmd, err, out)
		default:
			t.Logf("%s: %v", cmd, time.Since(start).Round(100*time.Millisecond))
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// startCoreDNS runs the binary with corefile until the test ends, and
// waits until it answers.
func startCoreDNS(t *testing.T, corefile string) *coreDNS {
	t.Helper()
	conf := filepath.Join(t.TempDir(), "Corefile")
	if err := os.WriteFile(conf, []byte(corefile), 0o644); err != nil {
		t.Fatal(err)
	}
	return startCoreDNSFile(t, conf)
}

// startCoreDNSFile is startCoreDNS with a Corefile already on disk.
func startCoreDNSFile(t *testing.T, conf string) *coreDNS {
	t.Helper()
	return startCoreDNSBin(t, buildBinary(t), conf)
}

// startCoreDNSBin runs bin with the Corefile conf until the test ends, and
// waits until it has started.
func startCoreDNSBin(t *testing.T, bin, conf string) *coreDNS {
	t.Helper()
	return startCoreDNSCommand(t, exec.Command(bin, "-conf", conf))
}

// startCoreDNSCommand runs cmd, a command that execs the binary, as
// startCoreDNS does.
func startCoreDNSCommand(t *testing.T, cmd *exec.Cmd) *coreDNS {
	t.Helper()
	c, err := launchCoreDNS(t, cmd)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// startCoreDNSOnFreePorts runs the Corefile that corefile writes, on
// ports it picks (with freeAddr): when one of them was taken between the
// pick and CoreDNS's bind (by another test package running meanwhile),
// it asks for a Corefile on other ports, up to three times.
func startCoreDNSOnFreePorts(t *testing.T, corefile func() string) *coreDNS {
	t.Helper()
	for try := 1; ; try++ {
		conf := filepath.Join(t.TempDir(), "Corefile")
		if err := os.WriteFile(conf, []byte(corefile()), 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := launchCoreDNS(t, exec.Command(buildBinary(t), "-conf", conf))
		if err == nil {
			return c
		}
		if try == 3 || !strings.Contains(err.Error(), "address already in use") {
			t.Fatal(err)
		}
		t.Logf("a port was taken meanwhile, trying others: %v", err)
	}
}

// launchCoreDNS starts cmd and waits until CoreDNS serves, or returns
// why it did not. It is stopped when the test ends.
func launchCoreDNS(t *testing.T, cmd *exec.Cmd) (*coreDNS, error) {
	t.Helper()
	c := &coreDNS{cmd: cmd, exited: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = c, c
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := c.exited
	go func() {
		err := cmd.Wait()
		exited <- err
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			out := c.String()
			if len(out) > 20000 {
				out = out[:10000] + "\n...\n" + out[len(out)-10000:]
			}
			t.Logf("CoreDNS output:\n%s", out)
		}
	})
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		select {
		case err := <-exited:
			return nil, fmt.Errorf("CoreDNS exited: %v\n%s", err, c)
		default:
		}
		if strings.Contains(c.String(), "CoreDNS-") {
			return c, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("CoreDNS did not start:\n%s", c)
		}
	}
}

// TestStateSurvivesReloadAndRestart flags a domain, then checks that it
// stays blocked across a Corefile reload (the reload plugin), across a
// restart through the state file, and that a corrupt state file is
// reported and ignored.
func TestStateSurvivesReloadAndRestart(t *testing.T) {
	sim := startSim(t)

	dir := t.TempDir()
	addr, state := freeAddr(t), filepath.Join(dir, "fluxguard.state")
	conf := filepath.Join(dir, "Corefile")
	corefile := func(hold string) []byte {
		return fmt.Appendf(nil, `%s {
    bind 127.0.0.1
    reload 2s 1s
    fluxguard {
        action block
        block_rcode REFUSED
        hold %s
        state_file %s
    }
    cache 30
    forward . %s
}
`, zoneAt(addr), hold, state, sim.Addr())
	}
	if err := os.WriteFile(conf, corefile("1h"), 0o644); err != nil {
		t.Fatal(err)
	}
	blocked := func() bool {
		return query(t, "udp", addr, "login.fluxy.top.", dns.TypeA, true).Rcode == dns.RcodeRefused
	}

	core := startCoreDNSFile(t, conf)
	flag(t, addr, "login.fluxy.top.")

	// Reload: a changed Corefile is picked up by the reload plugin.
	if err := os.WriteFile(conf, corefile("2h"), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(core.String(), "Reloading complete") {
		if time.Now().After(deadline) {
			t.Fatalf("no reload:\n%s", core)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !blocked() {
		t.Fatal("flux domain no longer blocked after reload")
	}

	// Restart: SIGTERM saves the state file, the next process loads it.
	core.terminate(t)
	if _, err := os.Stat(state); err != nil {
		t.Fatalf("no state file after SIGTERM: %v\n%s", err, core)
	}
	core = startCoreDNSFile(t, conf)
	core.waitLog(t, " names from "+state)
	if !blocked() {
		t.Fatal("flux domain not blocked after restart")
	}
	core.terminate(t)

	// A corrupt state file is reported once and ignored.
	if err := os.WriteFile(state, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	core = startCoreDNSFile(t, conf)
	core.waitLog(t, "state file "+state+" ignored")
	if blocked() {
		t.Fatal("blocked from a corrupt state file")
	}
	if r := query(t, "tcp", addr, "www.stable.example.", dns.TypeA, true); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Fatalf("stable name after corrupt state:\n%s", r)
	}
}

// TestUpstreamDiesAndComesBack checks that fluxguard passes upstream
// failures through (SERVFAIL, counted as no evidence) and serves again when
// the upstream returns.
func TestUpstreamDiesAndComesBack(t *testing.T) {
	sim := startSim(t)
	upstream := sim.Addr()
	addr := freeAddr(t)
	core := startCoreDNS(t, fmt.Sprintf(`%s {
    bind 127.0.0.1
    fluxguard {
        action block
        block_rcode REFUSED
    }
    forward . %s {
        max_fails 1
        health_check 200ms
    }
}
`, zoneAt(addr), upstream))
	if r := query(t, "udp", addr, "www.stable.example.", dns.TypeA, true); r.Rcode != dns.RcodeSuccess {
		t.Fatalf("before the failure:\n%s", r)
	}
	sim.Close()
	for range 3 {
		r := query(t, "tcp", addr, "login.fluxy.top.", dns.TypeA, true)
		if r.Rcode != dns.RcodeServerFailure {
			t.Fatalf("with the upstream down: %s", dns.RcodeToString[r.Rcode])
		}
	}
	back, err := fluxsim.New(fluxsim.Demo())
	if err != nil {
		t.Fatal(err)
	}
	if err := back.Start(upstream); err != nil {
		t.Fatalf("restarting the upstream on %s: %v", upstream, err)
	}
	t.Cleanup(func() { back.Close() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := query(t, "udp", addr, "www.stable.example.", dns.TypeA, true)
		if r.Rcode == dns.RcodeSuccess && len(r.Answer) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer after the upstream came back:\n%s\n%s", r, core)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The failures were no evidence: with the three SERVFAILs counted as
	// queries, the first two answers (8 addresses) would make the name a
	// candidate (level suspicious); without, it needs a third.
	for i, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
		if r := query(t, "udp", addr, "login.fluxy.top.", qtype, true); r.Rcode != dns.RcodeSuccess {
			t.Fatalf("answer %d after recovery: %s", i, dns.RcodeToString[r.Rcode])
		}
	}
	time.Sleep(time.Second) // for a log line that must not come
	if strings.Contains(core.String(), "domain=login.fluxy.top level=suspicious") {
		t.Fatalf("the failures counted as queries:\n%s", core)
	}
	flag(t, addr, "login.fluxy.top.")
	if strings.Contains(core.String(), "panic") {
		t.Fatalf("panic in CoreDNS:\n%s", core)
	}
}
