// Package fluxguard is a CoreDNS plugin that catches fast-flux domains
// (MITRE ATT&CK T1568.001) inline: it inspects the answers that pass through
// it, keeps per-name IP churn state in internal/engine, and logs, tags, counts,
// blocks or sinkholes the names whose score crosses the threshold.
package fluxguard

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/metrics"
	clog "github.com/coredns/coredns/plugin/pkg/log"
	"github.com/miekg/dns"
	ot "github.com/opentracing/opentracing-go"

	"github.com/fluxguard/fluxguard/internal/engine"
)

var log = clog.NewWithPlugin(pluginName)

// Fluxguard is the plugin handler.
type Fluxguard struct {
	Next plugin.Handler

	cfg      config
	key      string // server block, for state kept across reloads
	eng      *engine.Engine
	flagged  *flaggedGauge
	log      *detectionLog
	resolver *nsResolver // resolve_ns, or nil
	report   *reportServer
	done     chan struct{}
	metrics  atomic.Pointer[[]*serverMetrics] // of each server met so far, the first first
	adding   sync.Mutex                       // serializes additions to metrics
	metadata atomic.Bool                      // the metadata plugin asks for fluxguard's labels
}

// newFluxguard returns the handler for cfg; key names its server block for
// keeping state across reloads ("" for none).
func newFluxguard(cfg config, key string) (*Fluxguard, error) {
	eng, err := engineFor(key, cfg)
	if err != nil {
		return nil, err
	}
	eng.SetPolicy(cfg.policy())
	f := &Fluxguard{cfg: cfg, key: key, eng: eng, flagged: newFlaggedGauge(cfg.metricsDomains), log: newDetectionLog()}
	if cfg.resolveNS > 0 {
		f.resolver = newNSResolver(f, cfg.resolveNS)
	}
	return f, nil
}

// Name implements plugin.Handler.
func (f *Fluxguard) Name() string { return pluginName }

// ServeDNS implements plugin.Handler. It calls the rest of the chain itself
// rather than from a helper, one frame fewer on the stack under it.
//
// A query's goroutine starts with a small stack, which the runtime doubles
// by copying it when a call does not fit, at a cost of about 0.15 µs per
// frame on the stack. With the plugins most Corefiles have before cache
// (errors, prometheus), a cache hit's stack grows from 4 to 8 KiB as cache
// is entered; growStack makes it grow as fluxguard calls the chain instead,
// with no more frames to copy than without fluxguard. Where cache alone
// runs in 4 KiB, the stack grows once more for fluxguard, early, in
// growStack (BenchmarkCacheHitLatency).
//
// plugin.NextOrFailure starts a tracing span and wraps w in a writer that
// names the writing plugin to w when w is a plugin.PluginTracker; with
// neither to do, it would only cost an allocation and two stack frames on
// every query, so Next is called directly. A captureWriter is no
// PluginTracker.
func (f *Fluxguard) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	c, answered, upstream := f.capture(ctx, w, r)
	if answered {
		return dns.RcodeSuccess, nil
	}
	if c != nil {
		w = c
	}
	if upstream {
		growStackUpstream()
	} else {
		growStack()
	}
	var rc int
	var err error
	if _, tracker := w.(plugin.PluginTracker); tracker || f.Next == nil || ot.SpanFromContext(ctx) != nil {
		rc, err = plugin.NextOrFailure(f.Name(), f.Next, ctx, w, r)
	} else {
		rc, err = f.Next.ServeDNS(ctx, w, r)
	}
	if c != nil {
		c.finish()
	}
	return rc, err
}

// stackReserve is the stack growStack makes sure is free: room for cache's
// frame (1,080 bytes in CoreDNS 1.15) and a cache hit's write under it, so
// that where a cache hit's stack must grow it grows as fluxguard calls the
// chain, with few frames to copy, rather than deep in the write
// (BenchmarkCacheHitLatency/cache, p50 ratio: 1.10 with 2,560 bytes, 1.19
// with 1,280).
//
// upstreamStackReserve is growStackUpstream's, for a query whose answer
// most likely comes from upstream (a name fluxguard has not seen): a
// forwarded query's stack can outgrow the size the runtime starts it with
// in the unpacking of the reply, 40 frames deep, and copying them all costs
// more than the rest of fluxguard's work on the query; 8 KiB free make the
// stack grow, to 16 KiB, as fluxguard calls the chain instead. A cache
// hit, which fits 8 KiB, would only grow further for nothing, so known
// names get stackReserve.
const (
	stackReserve         = 2560
	upstreamStackReserve = 8192
)

// growStack grows the goroutine's stack now, in its prologue, if less than
// stackReserve bytes are free, and gives them back as it returns. Unlike a
// reserve held on ServeDNS's frame, it adds nothing to the depth of the
// rest of the chain: a stack that fits the chain without fluxguard (a
// forwarded query's, which the runtime starts at 8 KiB once many are in
// flight) does not grow for fluxguard either. The reserve is declared in
// a branch never taken, so that it is on the frame without being zeroed
// on every query.
//
//go:noinline
func growStack() {
	if reserveUsed {
		var reserve [stackReserve]byte
		reserved(reserve[:])
	}
}

// growStackUpstream is growStack with upstreamStackReserve.
//
//go:noinline
func growStackUpstream() {
	if reserveUsed {
		var reserve [upstreamStackReserve]byte
		reserved(reserve[:])
	}
}

// reserveUsed is never set; the compiler cannot tell, so the reserves stay
// on their frames.
var reserveUsed bool

// reserved keeps a reserve on its frame.
//
//go:noinline
func reserved([]byte) {}

// capture returns the captureWriter the rest of the chain is to write r's
// answer to, or nil when fluxguard lets r pass uninspected. It reports
// instead that it answered r when r's name is held, and whether r's
// answer most likely comes from upstream.
//
//go:noinline
func (f *Fluxguard) capture(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (c *captureWriter, answered, upstream bool) {
	name, ok := f.inspected(r)
	if !ok {
		return nil, false, false
	}
	sm := f.metricsFor(ctx)
	if f.cfg.action != actionLog && f.answerHeld(ctx, sm, w, r, name) {
		return nil, true, false
	}
	// Unless the metadata plugin is there, whose labels writers above
	// fluxguard (dnstap's, say) may read, only the level is wanted, and a
	// query whose name's answer was already seen to repeat in this second,
	// to this client (cache hits, typically), is counted without its
	// answer being read (see engine.Recall).
	labels, client := f.metadata.Load(), clientAddr(w)
	if !labels {
		rc := f.eng.Recall(name, r.Question[0].Qtype == dns.TypeAAAA, client)
		if rc.Repeat {
			sm.inspected.Inc()
			sm.verdicts[rc.Level].Inc()
			return nil, false, false
		}
		upstream = rc.New
	}
	// In monitor mode the verdict changes nothing the client gets, so it
	// is reached after the answer is sent, unless the labels are wanted.
	after := f.cfg.action == actionLog && !labels
	return &captureWriter{ResponseWriter: w, f: f, ctx: ctx, metrics: sm, req: r, name: name, client: client, after: after}, false, upstream
}

// answerHeld answers r without going upstream when name is held.
//
//go:noinline
func (f *Fluxguard) answerHeld(ctx context.Context, sm *serverMetrics, w dns.ResponseWriter, r *dns.Msg, name string) bool {
	v, held := f.eng.Held(name)
	if !held {
		return false
	}
	f.setMetadata(ctx, v)
	if err := f.act(sm, w, r, v); err != nil {
		log.Debugf("writing the reply for %s: %v", name, err)
	}
	return true
}

// inspected returns the normalized question name of an A or AAAA query in
// fluxguard's zones, or false for queries it lets pass uninspected.
func (f *Fluxguard) inspected(r *dns.Msg) (string, bool) {
	if len(r.Question) != 1 {
		return "", false
	}
	q := r.Question[0]
	if q.Qtype != dns.TypeA && q.Qtype != dns.TypeAAAA {
		return "", false
	}
	// Zones match case-insensitively; Normalize lower-cases.
	if plugin.Zones(f.cfg.zones).Matches(q.Name) == "" {
		return "", false
	}
	return engine.Normalize(q.Name), true
}

// answerBuffers hold what observe reads from an answer. They are pooled
// rather than put on the stack, which would make every query's goroutine
// grow its stack.
type answerBuffers struct {
	obs   engine.Observation
	addrs [maxAnswerAddrs]netip.Addr
	chain [maxChain]string
	ns    [maxNS]string
}

var buffers = sync.Pool{New: func() any { return new(answerBuffers) }}

// inspect observes an answer written by the rest of the chain and returns
// the verdict, or false when the answer is not evidence.
func (f *Fluxguard) inspect(ctx context.Context, sm *serverMetrics, name string, client netip.Addr, m *dns.Msg) (engine.Verdict, bool) {
	b := readAnswer(m, name, client)
	if b == nil {
		return engine.Verdict{}, false
	}
	defer buffers.Put(b)
	return f.judge(ctx, sm, &b.obs)
}

// readAnswer reads the evidence in m, an answer for name to client, into
// pooled buffers, or returns nil when there is none.
func readAnswer(m *dns.Msg, name string, client netip.Addr) *answerBuffers {
	b := buffers.Get().(*answerBuffers)
	b.obs = engine.Observation{Name: name, Client: client}
	if b.obs.Addrs, b.obs.MinTTL, b.obs.Chain = observe(m, &b.addrs, &b.chain); len(b.obs.Addrs) == 0 {
		buffers.Put(b)
		return nil
	}
	b.obs.NS = nameServers(m, &b.ns)
	return b
}

// judge has the engine observe obs and returns the verdict, counted,
// logged and set as metadata, or false for a name the engine skips.
func (f *Fluxguard) judge(ctx context.Context, sm *serverMetrics, obs *engine.Observation) (engine.Verdict, bool) {
	sm.inspected.Inc()
	obs.Brief = !f.metadata.Load() // the labels are all that reads the details of a verdict whose level stays
	v := f.eng.Observe(obs)
	f.setMetadata(ctx, v)
	if v.Skip != engine.SkipNone {
		return v, false
	}
	sm.verdicts[v.Level].Inc()
	if v.Changed() {
		f.log.levelChanged(obs.Name, v)
		if v.Level == engine.LevelSuspicious && f.resolver != nil {
			f.resolver.enqueue(ctx, obs.Name)
		}
		if v.Level == engine.LevelFlagged {
			f.flagged.add(sm.server, obs.Name)
		}
	}
	return v, true
}

// act answers r for a name flagged with verdict v as configured and
// counts the action.
func (f *Fluxguard) act(sm *serverMetrics, w dns.ResponseWriter, r *dns.Msg, v engine.Verdict) error {
	sm.action.Inc()
	return w.WriteMsg(f.reply(r, v))
}

// start runs the report listener and the periodic housekeeping.
func (f *Fluxguard) start() error {
	if f.cfg.report != "" {
		rs, err := acquireReport(f.cfg.report, f.eng)
		if err != nil {
			return err
		}
		f.report = rs
	}
	f.done = make(chan struct{})
	go f.housekeep(f.done)
	if f.resolver != nil {
		go f.resolver.run(f.done)
	}
	log.Infof("%s action=%s %s", f.cfg.zones, f.cfg.action, f.eng)
	return nil
}

// stop ends what start began; on a reload the new instance has already
// started, and its housekeeping restores any flagged series cleared here.
func (f *Fluxguard) stop() error {
	if f.done != nil {
		close(f.done)
		f.done = nil
	}
	if f.report != nil {
		releaseReport(f.report)
		f.report = nil
	}
	f.flagged.clear()
	return nil
}

// finalShutdown saves the state, if configured, when CoreDNS exits.
func (f *Fluxguard) finalShutdown() error {
	f.saveState()
	forgetEngine(f.key)
	if f.cfg.closeASN != nil {
		f.cfg.closeASN()
	}
	return nil
}

func (f *Fluxguard) saveState() {
	if f.cfg.stateFile == "" {
		return
	}
	if err := saveState(f.eng, f.cfg.stateFile); err != nil {
		log.Errorf("saving state to %s: %v", f.cfg.stateFile, err)
	}
}

// restartFailed points a shared report back at this instance's engine when
// a reload that would have replaced it fails.
func (f *Fluxguard) restartFailed() error {
	if f.report != nil {
		f.report.eng.Store(f.eng)
	}
	return nil
}

// housekeepEvery is how often expired names are swept and gauges refreshed.
const housekeepEvery = 10 * time.Second

func (f *Fluxguard) housekeep(done <-chan struct{}) {
	t := time.NewTicker(housekeepEvery)
	defer t.Stop()
	var evicted uint64
	lastSave := time.Now()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		f.eng.Sweep()
		f.reloadPolicy()
		if time.Since(lastSave) >= f.cfg.stateInterval {
			f.saveState()
			lastSave = time.Now()
		}
		all := f.metrics.Load()
		if all == nil {
			continue // no query yet: the server label is not known
		}
		sm := (*all)[0] // the engine is shared: its gauges go to the first server
		trackedNames.WithLabelValues(sm.server).Set(float64(f.eng.Len()))
		trackedNamesMax.WithLabelValues(sm.server).Set(float64(f.eng.Capacity()))
		if n := f.eng.Evicted(); n > evicted {
			namesEvicted.WithLabelValues(sm.server).Add(float64(n - evicted))
			evicted = n
		}
		f.flagged.refresh(sm.server, f.eng)
	}
}

// metricsFor returns the counters of the server serving ctx, made once per
// server rather than once per query. A server block that listens on
// several addresses (bind) is as many servers sharing this handler.
func (f *Fluxguard) metricsFor(ctx context.Context) *serverMetrics {
	server := metrics.WithServer(ctx)
	if sm := serverIn(f.metrics.Load(), server); sm != nil {
		return sm
	}
	f.adding.Lock()
	defer f.adding.Unlock()
	old := f.metrics.Load()
	if sm := serverIn(old, server); sm != nil { // added meanwhile
		return sm
	}
	var all []*serverMetrics
	if old != nil {
		all = append(all, *old...)
	}
	sm := newServerMetrics(server, f.cfg.action)
	all = append(all, sm)
	f.metrics.Store(&all)
	return sm
}

// serverIn returns the counters of server in all, or nil.
func serverIn(all *[]*serverMetrics, server string) *serverMetrics {
	if all == nil {
		return nil
	}
	for _, sm := range *all {
		if sm.server == server {
			return sm
		}
	}
	return nil
}

// clientAddr returns the client's address, invalid when there is none
// (for example a request made by a plugin rather than a client).
func clientAddr(w dns.ResponseWriter) netip.Addr {
	switch a := w.RemoteAddr().(type) {
	case *net.UDPAddr:
		return a.AddrPort().Addr().Unmap()
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}
