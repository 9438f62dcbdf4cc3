package e2e

import (
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/fluxguard/fluxguard/internal/testenv"
)

// downstreamHold is fluxguard's hold in TestDownstream. sinkhole_ttl is
// set to a day there, so that the TTLs the downstreams see are the hold's.
const downstreamHold = 10 * time.Minute

// fluxName is the flux name TestDownstream has fluxguard flag.
const fluxName = "login.fluxy.top."

// downstreamMode is one way of answering a flagged name.
type downstreamMode struct {
	name    string
	options string
	action  string   // the actions_total label
	qtypes  []uint16 // asked of the downstreams
	passes  int      // the rcode every downstream's client must get, -1 if not checked
}

var downstreamModes = []downstreamMode{
	{"block REFUSED", "action block\n        block_rcode REFUSED", "block", []uint16{dns.TypeA}, -1},
	{"block NXDOMAIN", "action block\n        block_rcode NXDOMAIN", "block", []uint16{dns.TypeA}, dns.RcodeNameError},
	// One IPv4 address: AAAA queries get NODATA.
	{"sinkhole", "action sinkhole\n        sinkhole 0.0.0.0", "sinkhole", []uint16{dns.TypeA, dns.TypeAAAA}, dns.RcodeSuccess},
}

// downstream is a resolver that forwards to fluxguard: start runs it
// with its config in dir, listening on listen and forwarding to upstream.
type downstream struct {
	name  string
	start func(t *testing.T, bin, dir, listen, upstream string) []string // the command line
}

var downstreams = []downstream{
	{"unbound", unboundArgs},
	{"named", namedArgs},
	{"dnsmasq", dnsmasqArgs},
}

// matrixRow is what a client of a downstream got for a flagged name.
type matrixRow struct {
	resolver, mode, qtype string
	rcode                 string
	ede                   string // the EDE codes, "-" for none
	soa                   bool   // an SOA in the authority section
	ttl                   string // of the answer or the SOA, first and second query
	cached                string // whether the second query reached fluxguard
	sent                  int    // queries fluxguard answered for the first
	benign                bool   // benign names resolved after the blocks
}

// TestDownstream runs real resolvers from Debian (Unbound, BIND 9 and
// dnsmasq), each forwarding everything to the real binary, in front of
// fluxsim, and asks them, as a client would, for a name fluxguard has
// flagged: blocked with REFUSED, blocked with NXDOMAIN, and sinkholed. It
// records the matrix of what clients get (logged as a table, see
// docs/resolvers.md) and checks what fluxguard is responsible for: its own
// answers carry the SOA of negative caching where RFC 2308 expects one,
// no answer that a downstream caches outlives the hold, and benign names
// keep resolving through every downstream after the blocks. What the
// downstreams make of the blocks (rcode, EDE) is their choice: recorded,
// not checked.
func TestDownstream(t *testing.T) {
	bins := map[string]string{}
	for _, d := range downstreams {
		bins[d.name] = testenv.Tool(t, d.name)
	}
	sim := startSim(t)

	metricsAddr := freeAddr(t)
	addrs := make([]string, len(downstreamModes))
	var corefile strings.Builder
	for i, m := range downstreamModes {
		addrs[i] = freeAddr(t)
		fmt.Fprintf(&corefile, `
%s {
    bind 127.0.0.1
    prometheus %s
    fluxguard {
        %s
        hold %s
        sinkhole_ttl 24h
    }
    forward . %s
}
`, zoneAt(addrs[i]), metricsAddr, m.options, downstreamHold, sim.Addr())
	}
	startCoreDNS(t, corefile.String())

	// Flag the name in every server block, asking fluxguard directly, A
	// and AAAA, until its answers have rotated.
	holdEnds := make([]time.Time, len(downstreamModes))
	var rows []matrixRow
	for i, m := range downstreamModes {
		holdEnds[i] = flag(t, addrs[i], fluxName).Add(downstreamHold)
		for _, qtype := range m.qtypes {
			sent := time.Now()
			r := query(t, "udp", addrs[i], fluxName, qtype, true)
			checkDirect(t, m, qtype, r, holdEnds[i].Sub(sent))
			ttl, _ := replyTTL(r)
			rows = append(rows, matrixRow{resolver: "(fluxguard direct)", mode: m.name, qtype: dns.TypeToString[qtype],
				rcode: dns.RcodeToString[r.Rcode], ede: edeCodes(r), soa: hasSOA(r), ttl: ttl, cached: "n/a", sent: 1, benign: true})
		}
	}

	for _, d := range downstreams {
		for i, m := range downstreamModes {
			t.Run(d.name+"/"+m.name, func(t *testing.T) {
				addr := startDownstream(t, d, bins[d.name], addrs[i])
				series := fmt.Sprintf(`coredns_fluxguard_actions_total{action=%q,server="dns://%s"}`, m.action, addrs[i])
				for _, qtype := range m.qtypes {
					row := matrixRow{resolver: d.name, mode: m.name, qtype: dns.TypeToString[qtype]}
					before := metricValue(t, metricsAddr, series)
					sent := time.Now()
					r, err := exchange(addr, fluxName, qtype)
					m.checkPassed(t, d.name, qtype, r, err)
					if err != nil {
						row.rcode = "no answer: " + err.Error()
						rows = append(rows, row)
						continue
					}
					first := metricValue(t, metricsAddr, series)
					row.sent = int(first - before)
					row.rcode, row.ede, row.soa = dns.RcodeToString[r.Rcode], edeCodes(r), hasSOA(r)
					ttl1, n1 := replyTTL(r)
					checkHold(t, r, n1, holdEnds[i].Sub(sent))

					time.Sleep(2 * time.Second)
					sent = time.Now()
					r2, err := exchange(addr, fluxName, qtype)
					m.checkPassed(t, d.name, qtype, r2, err)
					if err != nil {
						row.ttl, row.cached = ttl1, "no second answer: "+err.Error()
						rows = append(rows, row)
						continue
					}
					ttl2, n2 := replyTTL(r2)
					checkHold(t, r2, n2, holdEnds[i].Sub(sent))
					row.ttl = ttl1 + " → " + ttl2
					row.cached = "no"
					if metricValue(t, metricsAddr, series) == first {
						row.cached = "yes"
					}
					if r2.Rcode != r.Rcode {
						row.rcode += " → " + dns.RcodeToString[r2.Rcode]
					}
					if e := edeCodes(r2); e != row.ede {
						row.ede += " → " + e
					}
					rows = append(rows, row)
				}
				// More blocked queries, then benign names the downstream
				// has not cached: a downstream that took fluxguard for a
				// failing server would fail them.
				for range 3 {
					for _, qtype := range m.qtypes {
						exchange(addr, fluxName, qtype)
					}
				}
				benign := true
				for _, name := range []string{"www.rr-shop.example.", "img.shop.cloudfront.net.", "www.alias.example.", "www.stable.example."} {
					r, err := exchange(addr, name, dns.TypeA)
					if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
						benign = false
						t.Errorf("%s through %s after the blocks: %v\n%v", name, d.name, err, r)
					}
				}
				for j := len(rows) - len(m.qtypes); j < len(rows); j++ {
					rows[j].benign = benign
				}
			})
		}
	}

	var b strings.Builder
	b.WriteString("\n| resolver | fluxguard answers | query | client gets | EDE | SOA | TTL (1st → 2nd, 2s later) | cached | queries to fluxguard (1st) | benign names after |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %d | %s |\n",
			r.resolver, r.mode, r.qtype, r.rcode, r.ede, yesNo(r.soa), r.ttl, r.cached, r.sent, map[bool]string{true: "resolve", false: "FAIL"}[r.benign])
	}
	t.Logf("hold %s, sinkhole_ttl 24h; the matrix:%s", downstreamHold, b.String())
}

// checkPassed checks that the answer r (or err) a client of the resolver
// named got for a qtype query for the flagged name is the one m passes to
// every downstream's clients (README: NXDOMAIN and sinkhole answers pass
// all three), when m says which.
func (m downstreamMode) checkPassed(t *testing.T, resolver string, qtype uint16, r *dns.Msg, err error) {
	t.Helper()
	switch {
	case m.passes < 0:
	case err != nil:
		t.Errorf("%s, %s %s: no answer: %v", resolver, m.name, dns.TypeToString[qtype], err)
	case r.Rcode != m.passes:
		t.Errorf("%s, %s %s: the client got %s, want %s", resolver, m.name, dns.TypeToString[qtype], dns.RcodeToString[r.Rcode], dns.RcodeToString[m.passes])
	}
}

// blockedAnswer reports whether r is one of fluxguard's answers for a
// flagged name: EDE 15.
func blockedAnswer(r *dns.Msg) bool {
	return strings.Contains(edeCodes(r), "15")
}

// checkDirect checks fluxguard's own answer r to a qtype query for the
// flagged name, holdLeft before the hold ends.
func checkDirect(t *testing.T, m downstreamMode, qtype uint16, r *dns.Msg, holdLeft time.Duration) {
	t.Helper()
	checkEDE(t, r, true, edeEvidence)
	wantRcode, wantSOA, wantAnswer := dns.RcodeSuccess, false, 0
	switch {
	case m.action == "sinkhole" && qtype == dns.TypeA:
		wantAnswer = 1
	case m.action == "sinkhole": // NODATA
		wantSOA = true
	case strings.Contains(m.name, "NXDOMAIN"):
		wantRcode, wantSOA = dns.RcodeNameError, true
	default:
		wantRcode = dns.RcodeRefused
	}
	wantNs := 0
	if wantSOA {
		wantNs = 1
	}
	if r.Rcode != wantRcode || len(r.Answer) != wantAnswer || hasSOA(r) != wantSOA || len(r.Ns) != wantNs {
		t.Fatalf("%s, %s: want %s with %d answers and SOA %v:\n%s", m.name, dns.TypeToString[qtype], dns.RcodeToString[wantRcode], wantAnswer, wantSOA, r)
	}
	if wantSOA {
		soa := r.Ns[0].(*dns.SOA)
		if soa.Hdr.Name != "fluxy.top." || soa.Minttl != soa.Hdr.Ttl {
			t.Errorf("%s: want the SOA of fluxy.top. with MINIMUM its TTL, got %s", m.name, soa)
		}
	}
	_, n := replyTTL(r)
	if n < 0 && (wantSOA || wantAnswer > 0) {
		t.Errorf("%s: no TTL in a cacheable answer:\n%s", m.name, r)
	}
	checkHold(t, r, n, holdLeft)
}

// checkHold checks that ttl, r's, ends with the hold, holdLeft away when
// r was asked for, in the whole seconds of TTLs.
func checkHold(t *testing.T, r *dns.Msg, ttl int, holdLeft time.Duration) {
	t.Helper()
	if ttl > int(math.Ceil(holdLeft.Seconds())) {
		t.Errorf("TTL %d outlives the hold, which ends in %s:\n%s", ttl, holdLeft.Round(time.Second), r)
	}
}

// replyTTL returns the lowest TTL of r's answer records or, without
// them, of its SOA, as text and number; "-" and -1 for none.
func replyTTL(r *dns.Msg) (string, int) {
	n := -1
	for _, rr := range r.Answer {
		if ttl := int(rr.Header().Ttl); n < 0 || ttl < n {
			n = ttl
		}
	}
	if n < 0 {
		for _, rr := range r.Ns {
			if soa, ok := rr.(*dns.SOA); ok {
				n = int(min(soa.Hdr.Ttl, soa.Minttl))
			}
		}
	}
	if n < 0 {
		return "-", -1
	}
	return strconv.Itoa(n), n
}

func hasSOA(r *dns.Msg) bool {
	for _, rr := range r.Ns {
		if _, ok := rr.(*dns.SOA); ok {
			return true
		}
	}
	return false
}

// edeCodes lists r's EDE options, "-" for none.
func edeCodes(r *dns.Msg) string {
	var codes []string
	if opt := r.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if ede, ok := o.(*dns.EDNS0_EDE); ok {
				s := strconv.Itoa(int(ede.InfoCode))
				if ede.InfoCode != dns.ExtendedErrorCodeBlocked && ede.ExtraText != "" {
					s += fmt.Sprintf(" (%s)", ede.ExtraText)
				}
				codes = append(codes, s)
			}
		}
	}
	if len(codes) == 0 {
		return "-"
	}
	return strings.Join(codes, ", ")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// exchange asks server for name over UDP with EDNS0, as a stub resolver
// does, retrying once on a timeout.
func exchange(server, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.SetEdns0(1232, false)
	c := &dns.Client{Net: "udp", Timeout: 5 * time.Second}
	r, _, err := c.Exchange(m, server)
	if err != nil {
		r, _, err = c.Exchange(m, server)
	}
	return r, err
}

// metricValue returns the value of series on promAddr's /metrics, 0 when
// it is not there yet.
func metricValue(t *testing.T, promAddr, series string) float64 {
	t.Helper()
	for line := range strings.Lines(httpGet(t, "http://"+promAddr+"/metrics")) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	return 0
}

// startDownstream runs d, forwarding to upstream, until the test ends, and
// returns its address once it resolves a benign name.
func startDownstream(t *testing.T, d downstream, bin, upstream string) string {
	t.Helper()
	dir, listen := t.TempDir(), freeAddr(t)
	runResolver(t, d.name, d.start(t, bin, dir, listen, upstream), dir, listen)
	return listen
}

// runResolver runs the command line args of the resolver name in dir
// until the test ends, and waits until it resolves a benign name on
// listen.
func runResolver(t *testing.T, name string, args []string, dir, listen string) {
	t.Helper()
	d := downstream{name: name}
	cmd := exec.Command(args[0], args[1:]...)
	c := &coreDNS{cmd: cmd, exited: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr, cmd.Dir = c, c, dir
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-c.exited
		if t.Failed() {
			t.Logf("%s's output:\n%s", d.name, c)
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		select {
		case err := <-c.exited:
			t.Fatalf("%s exited: %v\n%s", d.name, err, c)
		default:
		}
		m := new(dns.Msg)
		m.SetQuestion("www.stable.example.", dns.TypeA)
		r, _, err := (&dns.Client{Timeout: time.Second}).Exchange(m, listen)
		if err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not resolve through fluxguard: %v %v\n%s", d.name, err, r, c)
		}
	}
}

// hostPort splits a loopback address.
func hostPort(t *testing.T, addr string) (string, string) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return host, port
}

// writeConf writes a config file into dir and returns its path.
func writeConf(t *testing.T, dir, name, text string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// unboundArgs runs Unbound in the foreground, iterator only (no DNSSEC
// validation: fluxsim's zones are unsigned), with EDE, forwarding the
// root to fluxguard.
func unboundArgs(t *testing.T, bin, dir, listen, upstream string) []string {
	conf := writeConf(t, dir, "unbound.conf", unboundConf(t, dir, listen, upstream, "iterator", "    ede: yes\n", ""))
	return []string{bin, "-d", "-c", conf}
}

// unboundConf is the configuration of an Unbound listening on listen,
// with its files in dir, running modules and forwarding the root to
// upstream, plus server options and clauses.
func unboundConf(t *testing.T, dir, listen, upstream, modules, options, clauses string) string {
	host, port := hostPort(t, listen)
	uhost, uport := hostPort(t, upstream)
	return fmt.Sprintf(`server:
    interface: %s
    port: %s
    do-ip6: no
    do-daemonize: no
    username: ""
    chroot: ""
    directory: %q
    pidfile: %q
    use-syslog: no
    logfile: ""
    verbosity: 1
    num-threads: 1
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    module-config: %q
%sremote-control:
    control-enable: no
%sforward-zone:
    name: "."
    forward-addr: %s@%s
`, host, port, dir, filepath.Join(dir, "unbound.pid"), modules, options, clauses, uhost, uport)
}

// namedArgs runs BIND 9 in the foreground, forwarding only, without DNSSEC
// validation, its files in dir.
func namedArgs(t *testing.T, bin, dir, listen, upstream string) []string {
	conf := writeConf(t, dir, "named.conf", namedConf(t, dir, listen, upstream, "", ""))
	return []string{bin, "-g", "-n", "1", "-c", conf}
}

// namedConf is the configuration of a forwarding-only BIND 9 listening on
// listen, with its files in dir, plus options and the rest of the file.
func namedConf(t *testing.T, dir, listen, upstream, options, rest string) string {
	host, port := hostPort(t, listen)
	uhost, uport := hostPort(t, upstream)
	return fmt.Sprintf(`options {
    directory %[1]q;
    pid-file none;
    session-keyfile none;
    managed-keys-directory %[1]q;
    listen-on port %[3]s { %[2]s; };
    listen-on-v6 { none; };
    forwarders { %[4]s port %[5]s; };
    forward only;
    recursion yes;
    dnssec-validation no;
    allow-query { any; };
    allow-recursion { any; };
%[6]s};
controls { };
%[7]s`, dir, host, port, uhost, uport, options, rest)
}

// dnsmasqArgs runs dnsmasq in the foreground with no config file, no
// hosts file and no resolv.conf, forwarding to fluxguard.
func dnsmasqArgs(t *testing.T, bin, dir, listen, upstream string) []string {
	host, port := hostPort(t, listen)
	uhost, uport := hostPort(t, upstream)
	return []string{bin, "-k", "-C", "/dev/null", "--port=" + port, "--listen-address=" + host, "--bind-interfaces",
		"--no-resolv", "--no-hosts", "--server=" + uhost + "#" + uport, "--user=root", "--group=root",
		"--pid-file=" + filepath.Join(dir, "dnsmasq.pid"), "--log-facility=-", "--log-queries"}
}
