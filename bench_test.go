package fluxguard

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/cache"
	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"

	// The plugins of startCacheHitServer's Corefiles besides fluxguard,
	// cache and prometheus, which the package imports already: only
	// these, rather than every plugin, as github.com/coredns/coredns/test
	// would, for a test binary a fraction of the size to build.
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/template"

	"github.com/fluxguard/fluxguard/internal/engine"
)

func init() {
	// The Corefiles below use fluxguard: put it where the binary puts it.
	if d, err := InsertDirective(dnsserver.Directives); err == nil {
		dnsserver.Directives = d
	}
}

// benchAnswer answers A queries with 4 fixed public addresses.
var benchAnswer = plugin.HandlerFunc(func(_ context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	m := new(dns.Msg)
	m.SetReply(r)
	for i := range 4 {
		m.Answer = append(m.Answer, test.A(fmt.Sprintf("%s 60 IN A 45.0.0.%d", r.Question[0].Name, i+1)))
	}
	w.WriteMsg(m)
	return dns.RcodeSuccess, nil
})

const benchNames = 1024

// BenchmarkServeDNS is fluxguard's handler on tracked names' 4-address
// answers, each the same as the name's last: counted before it is
// answered, as a repeat (engine.Precheck), in monitor mode and with
// block; read, each the first of its second, as over many names; with
// the metadata plugin, captured, observed and scored every time; and on
// held names' EDNS0 queries, answered from memory with NXDOMAIN and EDE
// 15.
func BenchmarkServeDNS(b *testing.B) {
	b.Run("repeat", func(b *testing.B) { benchmarkServeDNS(b, actionLog, false, false, false) })
	b.Run("block", func(b *testing.B) { benchmarkServeDNS(b, actionBlock, false, false, false) })
	b.Run("read", func(b *testing.B) { benchmarkServeDNS(b, actionLog, false, false, true) })
	b.Run("metadata", func(b *testing.B) { benchmarkServeDNS(b, actionLog, true, false, false) })
	b.Run("held", func(b *testing.B) { benchmarkServeDNS(b, actionBlock, false, true, false) })
}

// benchmarkServeDNS runs fluxguard over benchNames names; with
// eachSecond, its clock moves a second on every pass over them, so that
// each query is a name's first of its second, whose answer is read.
func benchmarkServeDNS(b *testing.B, action action, metadata, held, eachSecond bool) {
	var i int
	cfg := defaultConfig()
	if eachSecond {
		start := time.Now()
		cfg.engine.Now = func() time.Time { return start.Add(time.Duration(i/benchNames) * time.Second) }
	}
	f, err := newFluxguard(cfg, "")
	if err != nil {
		b.Fatal(err)
	}
	f.cfg.zones, f.cfg.rootZone, f.cfg.action = []string{"."}, true, action
	f.labelsWanted.Store(metadata)
	// Answers are precomputed so that only fluxguard's work is measured.
	reqs, answers := make([]*dns.Msg, benchNames), make([]*dns.Msg, benchNames)
	for i := range reqs {
		reqs[i] = new(dns.Msg).SetQuestion(fmt.Sprintf("h%d.example.com.", i), dns.TypeA)
		if held {
			reqs[i].SetEdns0(1232, false)
			flagFlux(b, f.eng, fmt.Sprintf("h%d.example.com", i))
		}
		rec := &test.ResponseWriter{}
		benchAnswer.ServeDNS(context.Background(), recorder{rec, &answers[i]}, reqs[i])
	}
	f.Next = plugin.HandlerFunc(func(_ context.Context, w dns.ResponseWriter, _ *dns.Msg) (int, error) {
		return dns.RcodeSuccess, w.WriteMsg(answers[i&(benchNames-1)])
	})
	w := &test.ResponseWriter{}
	// A server's context: its key, then the loop count.
	ctx := context.WithValue(context.Background(), dnsserver.Key{}, &dnsserver.Server{Addr: "dns://:53"})
	ctx = context.WithValue(ctx, dnsserver.LoopKey{}, 0)
	b.ReportAllocs()
	for i = 0; b.Loop(); i++ {
		f.ServeDNS(ctx, w, reqs[i&(benchNames-1)])
	}
}

// BenchmarkReadQueued is what a batch does with a queued answer in
// monitor mode (readQueued, then observeLater when it is to be read), on
// tracked names' 4-address answers, each the same as the name's last:
// each the first of its second, as over many names, or all in one second,
// as over a few hot names.
func BenchmarkReadQueued(b *testing.B) {
	b.Run("each second", func(b *testing.B) { benchmarkReadQueued(b, true) })
	b.Run("same second", func(b *testing.B) { benchmarkReadQueued(b, false) })
}

func benchmarkReadQueued(b *testing.B, eachSecond bool) {
	var i int
	cfg := defaultConfig()
	start := time.Now()
	cfg.engine.Now = func() time.Time {
		if !eachSecond {
			return start
		}
		return start.Add(time.Duration(i/benchNames) * time.Second)
	}
	f, err := newFluxguard(cfg, "")
	if err != nil {
		b.Fatal(err)
	}
	answers := make([]*dns.Msg, benchNames)
	for i := range answers {
		r := new(dns.Msg).SetQuestion(fmt.Sprintf("h%d.example.com.", i), dns.TypeA)
		benchAnswer.ServeDNS(context.Background(), recorder{&test.ResponseWriter{}, &answers[i]}, r)
	}
	remote := &net.UDPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 53}
	ctx := context.WithValue(context.Background(), dnsserver.Key{}, &dnsserver.Server{Addr: "dns://:53"})
	b.ReportAllocs()
	for i = 0; b.Loop(); i++ {
		m := answers[i&(benchNames-1)]
		q := query{name: engine.Normalize(m.Question[0].Name)}
		if later := f.readQueued(ctx, &q, remote, m, answerPrint(m)); later != nil {
			f.observeLater(ctx, q.metrics, later)
		}
	}
}

// flagFlux has eng observe three fast-flux answers for name, of four
// addresses each in networks of their own, which flag it.
func flagFlux(t testing.TB, eng *engine.Engine, name string) {
	obs := engine.Observation{Name: name, Client: netip.MustParseAddr("10.0.0.1"), MinTTL: 30}
	for i := range 3 {
		obs.Addrs = obs.Addrs[:0]
		for j := range 4 {
			obs.Addrs = append(obs.Addrs, netip.AddrFrom4([4]byte{45, byte(4*i + j), 0, 1}))
		}
		eng.Observe(&obs)
	}
	if _, held := eng.Held(name); !held {
		t.Fatalf("%s not flagged", name)
	}
}

// BenchmarkHeld compares what answering a held name costs fluxguard with
// action block (the names of a flagged registered domain, a storm's) with
// what a cache hit costs CoreDNS's cache plugin (4 addresses), both
// written to a test writer: a held name must cost less.
func BenchmarkHeld(b *testing.B) {
	names := make([]string, benchNames)
	reqs := make([]*dns.Msg, benchNames)
	for i := range names {
		names[i] = fmt.Sprintf("s%d.storm.top.", i)
		reqs[i] = new(dns.Msg).SetQuestion(names[i], dns.TypeA)
	}
	w, ctx := &test.ResponseWriter{}, context.Background()
	b.Run("held", func(b *testing.B) {
		f, err := newFluxguard(defaultConfig(), "")
		if err != nil {
			b.Fatal(err)
		}
		f.cfg.zones, f.cfg.rootZone, f.cfg.action = []string{"."}, true, actionBlock
		f.Next = plugin.HandlerFunc(func(context.Context, dns.ResponseWriter, *dns.Msg) (int, error) {
			b.Fatal("a held name went down the chain")
			return dns.RcodeServerFailure, nil
		})
		// The storm: every name's answer 2 addresses of its own, over many
		// networks, until its registered domain is flagged.
		obs := engine.Observation{Client: netip.MustParseAddr("10.0.0.1"), MinTTL: 300}
		for i, name := range names {
			obs.Name = engine.Normalize(name)
			obs.Addrs = []netip.Addr{netip.AddrFrom4([4]byte{byte(128 + i%96), 1, byte(i / 96), 1}), netip.AddrFrom4([4]byte{byte(128 + i%96), 2, byte(i / 96), 2})}
			f.eng.Observe(&obs)
		}
		if _, held := f.eng.Held(engine.Normalize(names[0])); !held {
			b.Fatal("the storm's names are not held")
		}
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			f.ServeDNS(ctx, w, reqs[i&(benchNames-1)])
		}
	})
	b.Run("cache-hit", func(b *testing.B) {
		c := cache.New()
		c.Next = benchAnswer
		for _, r := range reqs {
			c.ServeDNS(ctx, w, r) // cached
		}
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			c.ServeDNS(ctx, w, reqs[i&(benchNames-1)])
		}
	})
}

// recorder keeps the message a handler writes.
type recorder struct {
	dns.ResponseWriter
	msg **dns.Msg
}

func (r recorder) WriteMsg(m *dns.Msg) error { *r.msg = m; return nil }

// BenchmarkCacheHit is a complete query answered from cache by a real
// CoreDNS server over loopback UDP, without and with fluxguard, on the
// shortest chain and with errors and prometheus before it.
func BenchmarkCacheHit(b *testing.B) {
	const full = "errors\n    prometheus 127.0.0.1:0\n    "
	for _, tc := range []struct{ name, plugins string }{
		{"coredns", ""}, {"fluxguard", "fluxguard"},
		{"full/coredns", full}, {"full/fluxguard", full + "fluxguard"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			exchange := startCacheHitServer(b, tc.plugins)
			for i := 0; b.Loop(); i++ {
				exchange(i)
			}
		})
	}
}

// BenchmarkCacheHitLatency times each cache hit's round trip through two
// real CoreDNS servers in one process, one without and one with fluxguard,
// alternating between them query by query (and which goes first) so that
// GC cycles and scheduling fall on both alike, and reports the percentiles
// of each and their ratios. One query is in flight at a time: no queueing
// amplifies the difference, as it does at a fixed rate under load. The
// chains: cache alone, the shortest there is, and with errors and
// prometheus, as most Corefiles have them.
func BenchmarkCacheHitLatency(b *testing.B) {
	for _, chain := range []struct{ name, plugins string }{
		{"cache", ""},
		{"errors+prometheus+cache", "errors\n    prometheus 127.0.0.1:0"},
	} {
		b.Run(chain.name, func(b *testing.B) {
			exchanges := [2]func(int){startCacheHitServer(b, chain.plugins), startCacheHitServer(b, chain.plugins+"\n    fluxguard")}
			var lat [2][]time.Duration
			for i := 0; b.Loop(); i++ {
				for k := range 2 {
					k ^= i & 1
					t0 := time.Now()
					exchanges[k](i)
					lat[k] = append(lat[k], time.Since(t0))
				}
			}
			for _, q := range []struct {
				name string
				p    float64
			}{{"p50", 0.5}, {"p99", 0.99}, {"p99.9", 0.999}} {
				base, fg := percentile(lat[0], q.p), percentile(lat[1], q.p)
				b.ReportMetric(float64(base.Nanoseconds()), "coredns-"+q.name+"-ns")
				b.ReportMetric(float64(fg.Nanoseconds()), "fluxguard-"+q.name+"-ns")
				b.ReportMetric(float64(fg)/float64(base), q.name+"-ratio")
			}
		})
	}
}

// percentile returns the p-quantile of d, which it sorts.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[min(int(float64(len(d))*p), len(d)-1)]
}

// BenchmarkEngineShareOfCacheHit reports the engine's hot path (observe and
// score a tracked name's 4-address answer) as a percentage of CoreDNS's own
// cost for a cache hit (a query answered from cache by a real server, as in
// BenchmarkCacheHit/coredns), both timed in the same loop.
func BenchmarkEngineShareOfCacheHit(b *testing.B) {
	const batch = 16 // engine calls timed together, to keep clock reads out
	exchange := startCacheHitServer(b, "")
	observe := engineObserver()
	var hit, eng time.Duration
	for i := 0; b.Loop(); i++ {
		t0 := time.Now()
		exchange(i)
		t1 := time.Now()
		for j := range batch {
			observe(i*batch + j)
		}
		hit += t1.Sub(t0)
		eng += time.Since(t1)
	}
	n := float64(b.N)
	b.ReportMetric(float64(hit.Nanoseconds())/n, "cachehit-ns/op")
	b.ReportMetric(float64(eng.Nanoseconds())/n/batch, "engine-ns/op")
	b.ReportMetric(100*float64(eng)/batch/float64(hit), "engine-%")
}

// engineObserver returns a function observing the i-th of benchNames
// tracked names' 4-address answer, as the handler does.
func engineObserver() func(i int) {
	eng, _ := engine.New(engine.DefaultConfig())
	obs := engine.Observation{Client: netip.MustParseAddr("10.0.0.1"), MinTTL: 60}
	for i := range 4 {
		obs.Addrs = append(obs.Addrs, netip.AddrFrom4([4]byte{45, 0, 0, byte(i + 1)}))
	}
	names := make([]string, benchNames)
	for i := range names {
		names[i] = fmt.Sprintf("h%d.example.com", i)
		obs.Name = names[i]
		eng.Observe(&obs)
	}
	return func(i int) {
		obs.Name = names[i&(benchNames-1)]
		eng.Observe(&obs)
	}
}

// startCacheHitServer starts CoreDNS with plugins, then cache, then a
// template answering every A query with 4 addresses, warms the cache, and
// returns a function making the i-th query from one UDP client.
func startCacheHitServer(b *testing.B, plugins string) (exchange func(i int)) {
	corefile := fmt.Sprintf(`.:0 {
    bind 127.0.0.1
    %s
    cache
    template IN A {
        answer "{{ .Name }} 60 IN A 45.0.0.1"
        answer "{{ .Name }} 60 IN A 45.0.0.2"
        answer "{{ .Name }} 60 IN A 45.0.0.3"
        answer "{{ .Name }} 60 IN A 45.0.0.4"
    }
}`, plugins)
	caddy.Quiet, dnsserver.Quiet = true, true
	inst, err := caddy.Start(caddy.CaddyfileInput{Contents: []byte(corefile), Filepath: "Corefile", ServerTypeName: "dns"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stopServer(inst) })
	conn, err := net.DialUDP("udp", nil, inst.Servers()[0].LocalAddr().(*net.UDPAddr))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	queries := make([][]byte, benchNames)
	for i := range queries {
		queries[i], _ = new(dns.Msg).SetQuestion(fmt.Sprintf("h%d.example.com.", i), dns.TypeA).Pack()
	}
	buf := make([]byte, 1500)
	read := func(i int) int {
		conn.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := conn.Write(queries[i&(benchNames-1)]); err != nil {
			b.Fatal(err)
		}
		n, err := conn.Read(buf)
		if err != nil {
			b.Fatal(err)
		}
		return n
	}
	for i := range queries { // warm the cache and check the answers
		m := new(dns.Msg)
		if err := m.Unpack(buf[:read(i)]); err != nil || m.Rcode != dns.RcodeSuccess || len(m.Answer) != 4 {
			b.Fatalf("bad answer: %v\n%s", err, m)
		}
	}
	return func(i int) { read(i) }
}

func stopServer(i *caddy.Instance) {
	i.Stop()
	i.ShutdownCallbacks()
}
