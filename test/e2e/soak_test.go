package e2e

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/fluxguard/fluxguard/internal/fluxsim"
)

// Soak parameters. The duration comes from FLUXGUARD_SOAK (a Go duration or
// seconds; default 20s). Each client waits for its reply before it sends the
// next query, so the load adapts to the machine and a reply that takes more
// than soakTimeout means something went wrong, not that the client outran
// the server.
const (
	soakUDPClients     = 12
	soakTCPClients     = 4
	soakTimeout        = 2 * time.Second // no reply within this: lost
	soakDrain          = time.Second     // after the run: listen for late or duplicate replies
	soakMaxNames       = 2000
	soakGoroutineSlack = 20
	soakSettle         = 10 * time.Second // goroutines must be back near the baseline within this
)

// TestSoak runs the race-enabled binary at a sustained load and checks that
// every query gets exactly one matching reply, that goroutines return to
// their baseline afterwards, that the state stays under its cap, and that
// the race detector found nothing.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak: skipped in -short mode (builds CoreDNS with -race and runs for FLUXGUARD_SOAK, default 20s)")
	}
	dur := soakDuration(t)
	bin := coreDNSBinary(t, true, dur+soakSettle)

	// Demo names plus wildcards, so that random names get answers (and
	// fill the capped store, so that eviction runs): a benign static one
	// and a flux one under a suspicious TLD (its domain aggregate flags).
	sim := startSim(t,
		fluxsim.Name{Name: "rnd.soak.example.", Kind: fluxsim.Static, IPs: []string{"93.184.216.34"}, TTL: 300, Wildcard: true},
		fluxsim.Name{Name: "w.soakflux.top.", Kind: fluxsim.Flux, Pool: 200, PerAnswer: 4, IPv6: true, Wildcard: true},
	)

	addr, pprofAddr, promAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	conf := filepath.Join(t.TempDir(), "Corefile")
	if err := os.WriteFile(conf, fmt.Appendf(nil, `%s {
    bind 127.0.0.1
    errors
    pprof %s
    prometheus %s
    fluxguard {
        action block
        max_names %d
    }
    cache
    forward . %s
}
`, zoneAt(addr), pprofAddr, promAddr, soakMaxNames, sim.Addr()), 0o644); err != nil {
		t.Fatal(err)
	}
	core := startCoreDNSBin(t, bin, conf)
	pid := core.cmd.Process.Pid

	// Baseline after one query over each transport (listeners, forward's
	// connection manager and the pprof/prometheus servers are up by then).
	query(t, "udp", addr, "www.stable.example.", dns.TypeA, true)
	query(t, "tcp", addr, "www.stable.example.", dns.TypeA, true)
	time.Sleep(500 * time.Millisecond)
	gBefore, rssBefore := goroutines(t, pprofAddr), rssKB(t, pid)

	// Sample goroutines, RSS and tracked names during the run.
	var gMax, rssMax, trackedMax atomic.Int64
	gMax.Store(int64(gBefore))
	rssMax.Store(int64(rssBefore))
	stopSampling := make(chan struct{})
	var sampling sync.WaitGroup
	sampling.Add(1)
	go func() {
		defer sampling.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
			if g, err := goroutinesErr(pprofAddr); err == nil {
				storeMax(&gMax, int64(g))
			}
			if r, err := rssKBErr(pid); err == nil {
				storeMax(&rssMax, int64(r))
			}
			if v, err := metricSum(promAddr, "coredns_fluxguard_tracked_names"); err == nil {
				storeMax(&trackedMax, int64(v))
			}
		}
	}()

	start := time.Now()
	end := start.Add(dur)
	stats := make([]*soakStats, soakUDPClients+soakTCPClients)
	var wg sync.WaitGroup
	for i := range stats {
		netw := "udp"
		if i >= soakUDPClients {
			netw = "tcp"
		}
		stats[i] = &soakStats{netw: netw}
		wg.Add(1)
		go func() {
			defer wg.Done()
			soakClient(netw, addr, uint64(i), end, stats[i])
		}()
	}
	wg.Wait()
	elapsed := time.Since(start) - soakDrain
	close(stopSampling)
	sampling.Wait()

	var tot soakStats
	for _, s := range stats {
		tot.add(s)
	}
	for i, s := range stats {
		if s.sent == 0 {
			t.Errorf("client %d (%s) sent no queries", i, s.netw)
		}
	}
	rssAfterLoad := rssKB(t, pid)
	storeMax(&rssMax, int64(rssAfterLoad))

	// Goroutines back to the baseline (TCP connections closed, forward's
	// and the servers' per-query goroutines gone).
	gAfter := goroutines(t, pprofAddr)
	for deadline := time.Now().Add(soakSettle); gAfter > gBefore+soakGoroutineSlack && time.Now().Before(deadline); {
		time.Sleep(250 * time.Millisecond)
		gAfter = goroutines(t, pprofAddr)
	}
	rssAfter := rssKB(t, pid)
	tracked, _ := metricSum(promAddr, "coredns_fluxguard_tracked_names")
	storeMax(&trackedMax, int64(tracked))
	evicted, _ := metricSum(promAddr, "coredns_fluxguard_names_evicted_total")

	lat := tot.latencies
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(float64(len(lat))*p))]
	}
	t.Logf("soak %v: %d clients (%d UDP, %d TCP), each waiting for its reply; upstream fluxsim answered %d queries",
		dur, len(stats), soakUDPClients, soakTCPClients, sim.Queries())
	t.Logf("queries sent %d (UDP %d, TCP %d), answered %d, %.0f qps; latency p50 %v p99 %v max %v",
		tot.sent, tot.sentBy("udp", stats), tot.sentBy("tcp", stats), tot.answered, float64(tot.answered)/elapsed.Seconds(),
		pct(0.5), pct(0.99), pct(1))
	t.Logf("lost %d (late %d), duplicates %d, mismatched %d, stray %d, malformed %d, transport errors %d",
		tot.lost, tot.late, tot.dups, tot.mismatch, tot.stray, tot.malformed, tot.errs)
	t.Logf("rcodes: %s", rcodeString(tot.rcodes))
	t.Logf("goroutines before %d, max %d, after %d; RSS before %s, max %s, at end of load %s, after settling %s",
		gBefore, gMax.Load(), gAfter, mibKB(rssBefore), mibKB(int(rssMax.Load())), mibKB(rssAfterLoad), mibKB(rssAfter))
	t.Logf("tracked names max %d (max_names %d), names evicted %.0f", trackedMax.Load(), soakMaxNames, evicted)
	for _, e := range tot.examples {
		t.Log(e)
	}

	if tot.lost != 0 || tot.dups != 0 || tot.mismatch != 0 || tot.stray != 0 || tot.malformed != 0 || tot.errs != 0 {
		t.Errorf("want exactly one matching reply per query: lost %d, duplicates %d, mismatched %d, stray %d, malformed %d, transport errors %d",
			tot.lost, tot.dups, tot.mismatch, tot.stray, tot.malformed, tot.errs)
	}
	if gAfter > gBefore+soakGoroutineSlack {
		t.Errorf("goroutines did not return to the baseline within %v: before %d, after %d\n%s",
			soakSettle, gBefore, gAfter, httpGetErr("http://"+pprofAddr+"/debug/pprof/goroutine?debug=1"))
	}
	if limit := soakMaxNames + soakMaxNames/4; trackedMax.Load() > int64(limit) {
		t.Errorf("tracked names %d above the cap (max_names %d + %d for domain aggregates)", trackedMax.Load(), soakMaxNames, soakMaxNames/4)
	}

	core.terminate(t)
	out := core.String()
	if strings.Contains(out, "WARNING: DATA RACE") {
		t.Errorf("the race detector fired in CoreDNS:\n%s", out)
	}
	if strings.Contains(strings.ToLower(out), "panic") {
		t.Errorf("CoreDNS output mentions a panic:\n%s", out)
	}
	if n := strings.Count(out, "[ERROR]"); n > 0 {
		t.Logf("CoreDNS logged %d [ERROR] lines, first: %s", n, firstLine(out, "[ERROR]"))
	}
}

// soakDuration is FLUXGUARD_SOAK as a duration ("90s", "2m") or seconds.
func soakDuration(t *testing.T) time.Duration {
	v := os.Getenv("FLUXGUARD_SOAK")
	if v == "" {
		return 20 * time.Second
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return d
	}
	if s, err := strconv.Atoi(v); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	t.Fatalf("FLUXGUARD_SOAK=%q: want a duration such as 20s or a number of seconds", v)
	return 0
}

// soakStats are one client's counts.
type soakStats struct {
	netw                             string
	sent, answered, lost, late, dups int
	mismatch, stray, malformed, errs int
	rcodes                           map[int]int
	latencies                        []time.Duration
	examples                         []string // the first few problems, for the log
}

func (s *soakStats) problem(format string, args ...any) {
	if len(s.examples) < 5 {
		s.examples = append(s.examples, fmt.Sprintf("%s client: ", s.netw)+fmt.Sprintf(format, args...))
	}
}

func (s *soakStats) add(o *soakStats) {
	s.sent += o.sent
	s.answered += o.answered
	s.lost += o.lost
	s.late += o.late
	s.dups += o.dups
	s.mismatch += o.mismatch
	s.stray += o.stray
	s.malformed += o.malformed
	s.errs += o.errs
	if s.rcodes == nil {
		s.rcodes = map[int]int{}
	}
	for k, v := range o.rcodes {
		s.rcodes[k] += v
	}
	s.latencies = append(s.latencies, o.latencies...)
	for _, e := range o.examples {
		if len(s.examples) < 10 {
			s.examples = append(s.examples, e)
		}
	}
}

func (s *soakStats) sentBy(netw string, all []*soakStats) int {
	n := 0
	for _, o := range all {
		if o.netw == netw {
			n += o.sent
		}
	}
	return n
}

// soakQuery is one query a client sent, by message ID.
type soakQuery struct {
	q       dns.Question
	sent    time.Time
	replies int
	lost    bool // no reply within soakTimeout
}

// soakConn sends and receives raw DNS messages; over TCP with the 2-byte
// length prefix. recv returns every message that arrives, so that a
// duplicate or late reply is seen.
type soakConn struct {
	netw string
	addr string
	c    net.Conn
	r    *bufio.Reader
	buf  []byte
}

func dialSoak(netw, addr string) (*soakConn, error) {
	c, err := net.DialTimeout(netw, addr, soakTimeout)
	if err != nil {
		return nil, err
	}
	return &soakConn{netw: netw, addr: addr, c: c, r: bufio.NewReader(c), buf: make([]byte, 65536)}, nil
}

func (c *soakConn) send(msg []byte) error {
	c.c.SetWriteDeadline(time.Now().Add(soakTimeout))
	if c.netw == "udp" {
		_, err := c.c.Write(msg)
		return err
	}
	b := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(msg)), uint16(len(msg)))
	_, err := c.c.Write(append(b, msg...))
	return err
}

func (c *soakConn) recv(deadline time.Time) ([]byte, error) {
	c.c.SetReadDeadline(deadline)
	if c.netw == "udp" {
		n, err := c.c.Read(c.buf)
		return c.buf[:n], err
	}
	if _, err := io.ReadFull(c.r, c.buf[:2]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(c.buf[:2]))
	_, err := io.ReadFull(c.r, c.buf[:n])
	return c.buf[:n], err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// soakClient sends queries until end, one at a time, each with the next
// message ID, and accounts for every reply that arrives until soakDrain
// after end.
func soakClient(netw, addr string, seed uint64, end time.Time, s *soakStats) {
	s.rcodes = map[int]int{}
	rng := rand.New(rand.NewPCG(seed, uint64(time.Now().UnixNano())))
	c, err := dialSoak(netw, addr)
	if err != nil {
		s.errs++
		s.problem("dial: %v", err)
		return
	}
	defer func() { c.c.Close() }()
	byID := map[uint16]*soakQuery{}
	id := uint16(rng.Uint32())

	// handle accounts for one received message; it reports whether it
	// answered want.
	handle := func(b []byte, want *soakQuery) bool {
		m := new(dns.Msg)
		if err := m.Unpack(b); err != nil {
			s.malformed++
			s.problem("malformed reply: %v", err)
			return false
		}
		q := byID[m.Id]
		if q == nil {
			s.stray++
			s.problem("reply with unknown ID %d", m.Id)
			return false
		}
		q.replies++
		switch {
		case q.replies > 1:
			s.dups++
			s.problem("duplicate reply to ID %d %s", m.Id, q.q.String())
		case q.lost:
			s.late++
		default:
			s.answered++
			s.rcodes[m.Rcode]++
		}
		if !m.Response || len(m.Question) != 1 || !strings.EqualFold(m.Question[0].Name, q.q.Name) ||
			m.Question[0].Qtype != q.q.Qtype || m.Question[0].Qclass != q.q.Qclass {
			s.mismatch++
			s.problem("reply to ID %d %s does not match: %v", m.Id, q.q.String(), m.Question)
		}
		if q == want && q.replies == 1 {
			s.latencies = append(s.latencies, time.Since(q.sent))
			return true
		}
		return false
	}

	for time.Now().Before(end) {
		id++
		m := new(dns.Msg)
		m.SetQuestion(soakName(rng))
		m.Id = id
		if rng.IntN(2) == 0 {
			m.SetEdns0(1232, false)
		}
		msg, err := m.Pack()
		if err != nil {
			s.malformed++
			s.problem("pack %s: %v", m.Question[0].String(), err)
			continue
		}
		q := &soakQuery{q: m.Question[0], sent: time.Now()}
		byID[id] = q // a reused ID (after 65536 queries) replaces a long-finished query
		s.sent++
		if err := c.send(msg); err != nil {
			s.errs++
			s.lost++
			q.lost = true
			s.problem("send: %v", err)
			if c, err = redial(c); err != nil {
				return
			}
			continue
		}
		deadline := q.sent.Add(soakTimeout)
		for {
			b, err := c.recv(deadline)
			if err != nil {
				s.lost++
				q.lost = true
				if !isTimeout(err) {
					s.errs++
				}
				s.problem("no reply to ID %d %s within %v: %v", id, q.q.String(), soakTimeout, err)
				if netw == "tcp" || !isTimeout(err) { // a TCP stream may be mid-message: start afresh
					if c, err = redial(c); err != nil {
						s.errs++
						return
					}
				}
				break
			}
			if handle(b, q) {
				break
			}
		}
	}
	// Drain: a duplicate or late reply would arrive now.
	deadline := time.Now().Add(soakDrain)
	for {
		b, err := c.recv(deadline)
		if err != nil {
			if !isTimeout(err) && !errors.Is(err, io.EOF) {
				s.errs++
				s.problem("drain: %v", err)
			}
			return
		}
		handle(b, nil)
	}
}

func redial(c *soakConn) (*soakConn, error) {
	c.c.Close()
	return dialSoak(c.netw, c.addr)
}

// soakName picks the next question: random names under several zones
// (benign wildcard, flux wildcard, NXDOMAIN zones), and the demo names,
// the flux ones included; A or AAAA.
func soakName(rng *rand.Rand) (string, uint16) {
	qtype := dns.TypeA
	if rng.IntN(2) == 0 {
		qtype = dns.TypeAAAA
	}
	switch p := rng.IntN(100); {
	case p < 30:
		return fmt.Sprintf("%x.rnd.soak.example.", rng.Uint64()), qtype
	case p < 40:
		return fmt.Sprintf("%x.w.soakflux.top.", rng.Uint64()), qtype
	case p < 50:
		return fmt.Sprintf("%x.nx%d.example.", rng.Uint64(), rng.IntN(4)), qtype
	}
	demo := [...]string{
		"login.fluxy.top.", "cdn.kwik.tk.", "www.stable.example.", "www.rr-shop.example.",
		"img.shop.cloudfront.net.", "www.alias.example.", "intranet.corp.",
	}
	return demo[rng.IntN(len(demo))], qtype
}

func storeMax(v *atomic.Int64, n int64) {
	for {
		old := v.Load()
		if n <= old || v.CompareAndSwap(old, n) {
			return
		}
	}
}

func goroutines(t *testing.T, pprofAddr string) int {
	t.Helper()
	n, err := goroutinesErr(pprofAddr)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// goroutinesErr reads "goroutine profile: total N" from the pprof endpoint.
func goroutinesErr(pprofAddr string) (int, error) {
	body := httpGetErr("http://" + pprofAddr + "/debug/pprof/goroutine?debug=1")
	line, _, _ := strings.Cut(body, "\n")
	n, err := strconv.Atoi(strings.TrimPrefix(line, "goroutine profile: total "))
	if err != nil {
		return 0, fmt.Errorf("goroutine profile: %q", line)
	}
	return n, nil
}

func rssKB(t *testing.T, pid int) int {
	t.Helper()
	n, err := rssKBErr(pid)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// rssKBErr is VmRSS in KiB from /proc/PID/status.
func rssKBErr(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return 0, errors.New("no VmRSS")
}

func mibKB(kb int) string { return fmt.Sprintf("%.1f MiB", float64(kb)/1024) }

// metricSum sums every series of a Prometheus metric.
func metricSum(promAddr, name string) (float64, error) {
	body := httpGetErr("http://" + promAddr + "/metrics")
	if body == "" {
		return 0, errors.New("no metrics")
	}
	var sum float64
	for line := range strings.Lines(body) {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, err
		}
		sum += v
	}
	return sum, nil
}

// httpGetErr returns the body, or "" on any error.
func httpGetErr(url string) string {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func rcodeString(m map[int]int) string {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%d ", dns.RcodeToString[k], m[k])
	}
	return strings.TrimSpace(b.String())
}

func firstLine(out, sub string) string {
	for line := range strings.Lines(out) {
		if strings.Contains(line, sub) {
			return strings.TrimSpace(line)
		}
	}
	return ""
}
