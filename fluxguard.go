// Package fluxguard is a CoreDNS plugin that catches fast-flux domains
// (MITRE ATT&CK T1568.001) inline: it inspects the answers that pass through
// it, keeps per-name IP churn state in internal/engine, and logs, tags,
// counts, blocks or sinkholes the names whose score crosses the threshold.
package fluxguard

import (
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coredns/coredns/plugin"
	clog "github.com/coredns/coredns/plugin/pkg/log"
	"github.com/coredns/coredns/plugin/transfer"
	"github.com/miekg/dns"
	ot "github.com/opentracing/opentracing-go"

	"github.com/fluxguard/fluxguard/internal/engine"
)

var log = clog.NewWithPlugin(pluginName)

// Fluxguard is the plugin handler.
type Fluxguard struct {
	Next plugin.Handler

	cfg          config
	key          string // server block, for state kept across reloads
	eng          *engine.Engine
	flagged      *flaggedGauge
	detections   *detectionLog
	resolver     *nsResolver // resolve_ns, or nil
	report       *reportServer
	fleet        *fleetLink         // the shared option's, or nil
	texts        textCache          // the EDE texts of recent verdicts
	rpz          *rpzZone           // the rpz option's zone, or nil
	rpzMetrics   *rpzMetrics        // its series, with it
	xfer         *transfer.Transfer // the server block's transfer plugin, for NOTIFY, or nil
	done         chan struct{}
	metrics      atomic.Pointer[[]*serverMetrics] // of each server met so far, the first first
	adding       sync.Mutex                       // serializes additions to metrics
	labelsWanted atomic.Bool                      // the metadata plugin asks for fluxguard's labels
}

// newFluxguard returns the handler for cfg; key names its server block for
// keeping state across reloads ("" for none).
func newFluxguard(cfg config, key string) (*Fluxguard, error) {
	eng, err := engineFor(key, cfg)
	if err != nil {
		return nil, err
	}
	eng.SetPolicy(cfg.policy())
	f := &Fluxguard{cfg: cfg, key: key, eng: eng, flagged: newFlaggedGauge(cfg.metricsDomains), detections: newDetectionLog()}
	if cfg.resolveNS > 0 {
		f.resolver = newNSResolver(f, cfg.resolveNS)
	}
	if cfg.rpz != nil {
		f.rpz = newRPZZone(*cfg.rpz, cfg.sinkholeTTL, time.Now())
		f.rpzMetrics = newRPZMetrics(cfg.rpz.server, f.rpz.origin)
	}
	return f, nil
}

// Name implements plugin.Handler.
func (f *Fluxguard) Name() string { return pluginName }

// ServeDNS implements plugin.Handler. An A or AAAA query in fluxguard's
// zones is answered at once when its name is held (block, sinkhole);
// otherwise the rest of the chain answers it through a captureWriter,
// which shows the answer to the engine, unless the query was counted as a
// repeat of the name's last answer.
func (f *Fluxguard) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	cw, answered, upstream := f.capture(ctx, w, r)
	if answered {
		return dns.RcodeSuccess, nil
	}
	// The stack grows here, if it must, rather than in capture: a frame
	// fewer to copy.
	reserveStack(upstream)
	out := w
	if cw != nil {
		out = cw
	}
	var rc int
	var err error
	if f.tracked(ctx, out) {
		rc, err = plugin.NextOrFailure(f.Name(), f.Next, ctx, out, r)
	} else {
		// What NextOrFailure does, less the writer it wraps w in for
		// plugins that track the writer: a frame and an allocation fewer.
		rc, err = f.Next.ServeDNS(ctx, out, r)
	}
	if cw != nil {
		cw.finish()
	}
	return rc, err
}

// capture decides what becomes of r before the chain answers it: it
// answers r itself when r is for the RPZ zone or its name is held
// (answered), or returns the captureWriter the chain is to write the
// answer to, nil when the answer is not to be read (not inspected, or
// counted as a repeat), and whether the answer most likely comes from
// upstream (see reserveStack).
func (f *Fluxguard) capture(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (cw *captureWriter, answered, upstream bool) {
	if f.rpz != nil && f.rpz.answer(w, r) {
		return nil, true, false
	}
	name, ok := f.inspectedName(r)
	if !ok {
		return nil, false, false
	}
	sm := f.metricsFor(ctx)
	if f.cfg.action != actionLog && f.answerHeld(ctx, sm, w, r, name) {
		return nil, true, false
	}
	client := clientAddr(w)
	repeat, upstream := f.precheck(sm, r, name, client)
	if repeat {
		return nil, false, upstream
	}
	return &captureWriter{ResponseWriter: w, f: f, ctx: ctx, metrics: sm, req: r, name: name, client: client,
		// In monitor mode the verdict changes nothing the client gets, so
		// it is reached after the answer is sent, unless labels are wanted.
		deferred: f.cfg.action == actionLog && !f.labelsWanted.Load()}, false, upstream
}

// precheck looks name up before the chain answers r. It reports a query
// counted as a repeat of the name's last answer to this client in this
// second (cache hits, typically), whose answer is not to be read, and a
// name not seen before, whose answer most likely comes from upstream.
// With the labels wanted, every answer is read.
func (f *Fluxguard) precheck(sm *serverMetrics, r *dns.Msg, name string, client netip.Addr) (repeat, upstream bool) {
	if f.labelsWanted.Load() {
		return false, false
	}
	pc := f.eng.Precheck(name, r.Question[0].Qtype == dns.TypeAAAA, client)
	if pc.Repeat {
		sm.inspected.Inc()
		sm.verdicts[pc.Level].Inc()
	}
	return pc.Repeat, pc.New
}

// tracked reports whether calling the rest of the chain needs
// plugin.NextOrFailure: a tracing span, a writer that tracks the plugin
// that writes (see plugin.PluginTracker), or no next plugin.
func (f *Fluxguard) tracked(ctx context.Context, w dns.ResponseWriter) bool {
	_, tracks := w.(plugin.PluginTracker)
	return tracks || f.Next == nil || ot.SpanFromContext(ctx) != nil
}

// inspectedName returns the normalized question name of an A or AAAA
// query in fluxguard's zones, or false for queries it lets pass
// uninspected.
func (f *Fluxguard) inspectedName(r *dns.Msg) (string, bool) {
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

// answerHeld answers r without going upstream when name is held.
func (f *Fluxguard) answerHeld(ctx context.Context, sm *serverMetrics, w dns.ResponseWriter, r *dns.Msg, name string) bool {
	v, held := f.eng.Held(name)
	if !held {
		return false
	}
	reserveStack(false) // for the reply's write, as deep as a cache hit's
	f.setMetadata(ctx, v)
	if err := f.act(sm, w, r, v); err != nil {
		log.Debugf("writing the reply for %s: %v", name, err)
	}
	return true
}

// act answers r for a name flagged with verdict v as configured and
// counts the action.
func (f *Fluxguard) act(sm *serverMetrics, w dns.ResponseWriter, r *dns.Msg, v engine.Verdict) error {
	sm.action.Inc()
	return w.WriteMsg(f.reply(r, v))
}

// observeAnswer has the engine observe m, the answer for name to client,
// and returns the verdict, or false when m is not evidence.
func (f *Fluxguard) observeAnswer(ctx context.Context, sm *serverMetrics, name string, client netip.Addr, m *dns.Msg) (engine.Verdict, bool) {
	b := readAnswer(m, name, client)
	if b == nil {
		return engine.Verdict{}, false
	}
	defer buffers.Put(b)
	return f.observe(ctx, sm, &b.obs)
}

// observe has the engine observe obs and returns the verdict, counted,
// logged and set as metadata, or false for a name the engine skips.
func (f *Fluxguard) observe(ctx context.Context, sm *serverMetrics, obs *engine.Observation) (engine.Verdict, bool) {
	sm.inspected.Inc()
	// The labels are all that reads the details of a verdict whose level
	// stays the same.
	obs.LevelOnly = !f.labelsWanted.Load()
	v := f.eng.Observe(obs)
	f.setMetadata(ctx, v)
	if v.Skip != engine.SkipNone {
		return v, false
	}
	sm.verdicts[v.Level].Inc()
	if v.Changed() {
		f.detections.levelChanged(obs.Name, v)
		if v.Level == engine.LevelSuspicious && f.resolver != nil {
			f.resolver.enqueue(ctx, obs.Name)
		}
		if v.Level == engine.LevelFlagged {
			f.flagged.add(sm.server, obs.Name)
		}
	}
	return v, true
}

// captureWriter sees the answer the rest of the chain writes, has the
// engine observe it, and writes either it, untouched, or the action's
// reply. When deferred, it reads the evidence as the answer is written
// and leaves the engine's work to finish, once the answer has gone out.
type captureWriter struct {
	dns.ResponseWriter
	f        *Fluxguard
	ctx      context.Context
	metrics  *serverMetrics
	req      *dns.Msg
	name     string
	client   netip.Addr // the querying client's address, invalid when unknown
	deferred bool
	state    atomic.Uint32  // answerNone, then answerTaken, answerPending, answerDone
	pending  *answerBuffers // the evidence read, with answerPending
}

// The states of a captureWriter. Only the first answer is evidence; the
// handler's finish moves to answerDone, observing a pending answer, and
// an answer read as it does so is observed by its writer.
const (
	answerNone    uint32 = iota // nothing written yet
	answerTaken                 // the first answer is being inspected
	answerPending               // its evidence waits for finish
	answerDone                  // finish ran: whatever comes next is not evidence
)

// WriteMsg implements dns.ResponseWriter.
func (c *captureWriter) WriteMsg(m *dns.Msg) error {
	if c.state.CompareAndSwap(answerNone, answerTaken) {
		if c.deferred {
			c.keep(m)
		} else if v, flagged := c.flagged(m); flagged && c.f.cfg.action != actionLog {
			return c.f.act(c.metrics, c.ResponseWriter, c.req, v)
		}
	}
	return c.ResponseWriter.WriteMsg(m)
}

// flagged observes m and reports whether it flags the name, with the
// verdict. A level-only verdict that repeats the last one knows neither
// hold (see engine.Verdict.HoldLeft) nor evidence: the held verdict is
// looked up then, for the reply's TTL and EDE text.
func (c *captureWriter) flagged(m *dns.Msg) (engine.Verdict, bool) {
	v, ok := c.f.observeAnswer(c.ctx, c.metrics, c.name, c.client, m)
	if !ok || v.Level != engine.LevelFlagged {
		return v, false
	}
	if v.HoldLeft == 0 && v.Reasons&(engine.ReasonDenied|engine.ReasonIntel) == 0 {
		if held, ok := c.f.eng.Held(c.name); ok {
			v = held
		}
	}
	return v, true
}

// keep keeps m's evidence for finish, or observes it itself when finish
// has run meanwhile.
func (c *captureWriter) keep(m *dns.Msg) {
	b := readAnswer(m, c.name, c.client)
	if b == nil {
		return
	}
	c.pending = b
	if !c.state.CompareAndSwap(answerTaken, answerPending) {
		c.observePending()
	}
}

// finish observes the evidence kept from the answer, after the rest of
// the chain has returned; an answer written later is no evidence.
func (c *captureWriter) finish() {
	if c.state.Swap(answerDone) == answerPending {
		c.observePending()
	}
}

// observePending has the engine observe the kept evidence and returns its
// buffers to the pool.
func (c *captureWriter) observePending() {
	c.f.observe(c.ctx, c.metrics, &c.pending.obs)
	buffers.Put(c.pending)
	c.pending = nil
}
