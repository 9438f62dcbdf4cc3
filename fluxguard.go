// Package fluxguard is a CoreDNS plugin that catches fast-flux domains
// (MITRE ATT&CK T1568.001) inline: it inspects the answers that pass through
// it, keeps per-name IP churn state in internal/engine, and logs, tags,
// counts, blocks or sinkholes the names whose score crosses the threshold.
package fluxguard

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/pkg/edns"
	clog "github.com/coredns/coredns/plugin/pkg/log"
	"github.com/coredns/coredns/plugin/transfer"
	"github.com/coredns/coredns/plugin/tsig"
	"github.com/coredns/coredns/request"
	"github.com/miekg/dns"
	ot "github.com/opentracing/opentracing-go"

	"github.com/fluxguard/fluxguard/internal/engine"
)

var log = clog.NewWithPlugin(pluginName)

// Fluxguard is the plugin handler.
type Fluxguard struct {
	Next plugin.Handler

	cfg          config
	key          string                // server block, for state kept across reloads
	view         string                // the server block's view, "" for none; known at start
	before       map[string]blockState // the states kept before this instance's setup, by stateKey
	eng          *engine.Engine
	adopt        bool      // eng is a reload's, to take the shared state over at start (see engine.Adopt)
	stateSaved   time.Time // when the state eng restored was saved; zero for none
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
	background   sync.WaitGroup                   // the goroutines that save state or set gauges, for stop
	metrics      atomic.Pointer[[]*serverMetrics] // of each server met so far, the first first
	adding       sync.Mutex                       // serializes additions to metrics
	labelsWanted atomic.Bool                      // the metadata plugin asks for fluxguard's labels
	queue        *observeQueue                    // monitor mode's, from start; nil otherwise
	onWorkers    bool                             // other plugins come first: serve on stack workers (see handOff)
}

// newFluxguard returns the handler for cfg; key names its server block for
// keeping state across reloads ("" for none).
func newFluxguard(cfg config, key string) (*Fluxguard, error) {
	eng, saved, reloaded, err := engineFor(key, cfg)
	if err != nil {
		return nil, err
	}
	if !reloaded {
		eng.SetPolicy(cfg.policy())
	}
	f := &Fluxguard{cfg: cfg, key: key, eng: eng, adopt: reloaded, stateSaved: saved, flagged: newFlaggedGauge(key, cfg.metricsDomains), detections: newDetectionLog()}
	if cfg.resolveNS > 0 {
		f.resolver = newNSResolver(f, cfg.resolveNS)
	}
	if cfg.rpz != nil {
		f.rpz = rpzZoneFor(key, *cfg.rpz, cfg.sinkholeTTL, time.Now())
		f.rpzMetrics = newRPZMetrics(cfg.server, f.rpz.origin)
	}
	return f, nil
}

// Name implements plugin.Handler.
func (f *Fluxguard) Name() string { return pluginName }

// ServeDNS implements plugin.Handler. An A or AAAA query in fluxguard's
// zones is answered at once when its name is held (block, sinkhole);
// otherwise the rest of the chain answers it through a captureWriter,
// which holds the answer until the chain has returned. fluxguard then
// shows it to the engine, unless the query was counted as a repeat of the
// name's last answer, and writes it, or the action's reply in its place;
// in monitor mode it writes it first and queues it for the engine.
// With other plugins before it, it does so on a stack worker when one is
// free (see handOff).
func (f *Fluxguard) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	if f.onWorkers {
		if c := f.handOff(ctx, w, r); c != nil {
			return c.wait()
		}
	}
	return f.serveQuery(ctx, w, r)
}

// serveQuery is ServeDNS on the goroutine it runs on.
func (f *Fluxguard) serveQuery(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	var q query
	cw, answered, upstream := f.capture(ctx, w, r, &q)
	if answered {
		return dns.RcodeSuccess, nil
	}
	if upstream {
		// Here rather than in capture: a frame fewer to copy.
		growStack()
	}
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
		// Observed here, not in answer: a frame less under the engine.
		if later := f.answer(ctx, r, cw, &q); later != nil {
			f.observeLater(ctx, q.metrics, later)
		}
	}
	return rc, err
}

// capture decides what becomes of r before the chain answers it: it
// answers r itself when r is for the RPZ zone or its name is held
// (answered), or returns the captureWriter the chain is to write the
// answer to, nil when r is not inspected, and whether the answer most
// likely comes from upstream (see growStack). It fills in q for an
// inspected query, but for what readQueued adds when the answer is queued,
// field by field: q is zero, and a struct stored whole through a pointer
// goes through the runtime's bulk write barrier while the GC runs.
func (f *Fluxguard) capture(ctx context.Context, w dns.ResponseWriter, r *dns.Msg, q *query) (cw *captureWriter, answered, upstream bool) {
	if f.rpz != nil && f.rpz.answer(w, r) {
		return nil, true, false
	}
	name, inspected, ok := f.zoneName(r)
	if !ok {
		return nil, false, false
	}
	v6 := r.Question[0].Qtype == dns.TypeAAAA
	if inspected && f.queue != nil && !f.labelsWanted.Load() {
		// Its answer is queued, to be observed in a batch: the name's
		// lookup here would wait on the miss that the batch overlaps
		// with others (see observeQueue), which finds the server's
		// counters and the client's address too (see readQueued).
		q.name, q.v6 = name, v6
		return &captureWriter{ResponseWriter: w, queued: true}, false, false
	}
	sm := f.metricsFor(ctx)
	if f.cfg.action != actionLog && f.replyHeld(ctx, sm, w, r, name) {
		return nil, true, false
	}
	if !inspected {
		return nil, false, false
	}
	q.metrics, q.name, q.client, q.v6 = sm, name, clientAddr(w.RemoteAddr()), v6
	repeat, upstream := f.precheck(q, 0)
	return &captureWriter{ResponseWriter: w, read: !repeat}, false, upstream
}

// answer writes the chain's answer to r, which cw holds, unless flush
// sent it already, or the action's reply in its place, and has the engine
// observe it for q, unless the query was counted as a repeat; in monitor
// mode, it queues the answer once written, or returns the evidence for
// observeLater when there is no queue or it is full. The write runs
// deepest of all (see captureWriter): it is made from this small frame,
// the answer read in a frame of its own (inspect).
func (f *Fluxguard) answer(ctx context.Context, r *dns.Msg, cw *captureWriter, q *query) (later *answerBuffers) {
	m, sent := cw.take()
	if m == nil {
		return nil
	}
	if cw.read {
		m, later = f.inspect(ctx, cw.ResponseWriter, r, q, m, sent)
	}
	var pr uint32 // m's print, for the queue
	if cw.queued {
		// Now, while its records are in the CPU's caches: the chain has
		// just made them, and a batch comes a millisecond later.
		pr = answerPrint(m)
	}
	if !sent {
		if err := cw.ResponseWriter.WriteMsg(m); err != nil {
			log.Debugf("writing the answer to %s: %v", r.Question[0].Name, err)
		}
	}
	switch {
	case m.Truncated:
		// The server's writer truncated m for its client: no evidence
		// (see truncates).
		if later != nil {
			buffers.Put(later)
		}
		return nil
	case cw.queued:
		if f.queue.push(ctx, q, cw, pr) {
			return nil
		}
		// Observed on the query's path, as a batch would.
		return f.readQueued(ctx, q, cw.RemoteAddr(), m, pr)
	}
	return later
}

// truncates reports whether the server is to truncate m, the answer to r,
// to fit its UDP client's buffer: an answer the client does not get whole
// is no evidence, as one truncated upstream is not; the client's retry
// over TCP is. It serves the verdicts made before the write (block,
// sinkhole, labels); monitor mode looks at m once written (see answer).
// It predicts the server's writer (request.ScrubWriter),
// which adds r's OPT record to an answer without one, then truncates
// (dns.Msg.Truncate) what is over the buffer once compressed, unless the
// answer is signed: the tsig plugin, which takes the TSIG record off the
// request before the rest of the chain, signs the answers to the requests
// it validated.
func truncates(ctx context.Context, w dns.ResponseWriter, r, m *dns.Msg) bool {
	opt := optAdded(r, m)
	n := m.Len() + opt
	if n <= dns.MinMsgSize {
		return false // fits any client's buffer
	}
	state := request.Request{W: w, Req: r}
	if _, signed := tsig.ValidatedKeyName(ctx); signed || state.Proto() != "udp" {
		return false
	}
	size := state.Size()
	if n <= size || m.Compress {
		return n > size
	}
	compressed := *m
	compressed.Compress = true
	return compressed.Len()+opt > size
}

// optAdded is the length of the OPT record the server's writer adds to m,
// the answer to r, when r has one and m not (request.Request.SizeAndDo):
// r's, with the options CoreDNS may copy only.
func optAdded(r, m *dns.Msg) int {
	o := r.IsEdns0()
	if o == nil || m.IsEdns0() != nil {
		return 0
	}
	var copied []dns.EDNS0
	for _, e := range o.Option {
		if edns.SupportedOption(e.Option()) {
			copied = append(copied, e)
		}
	}
	return dns.Len(&dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}, Option: copied})
}

// observeLater has the engine observe the evidence inspect read from an
// answer that has gone out, and returns its buffers to the pool.
func (f *Fluxguard) observeLater(ctx context.Context, sm *serverMetrics, b *answerBuffers) {
	f.observe(ctx, sm, &b.obs)
	buffers.Put(b)
}

// query is what fluxguard knows of a query it inspects, from capture.
type query struct {
	metrics *serverMetrics
	name    string
	client  netip.Addr // the querying client's address, invalid when unknown
	v6      bool       // an AAAA query; A otherwise
}

// readQueued starts observing m, the answer to q, a query from remote
// whose answer was to be queued, in a batch or on the query's path: it
// completes q with what capture leaves out, the server's counters, from
// ctx, and the client's address, from remote (done in a batch, these run
// on cached code and lines); counts the answer if it repeats the name's
// last, as pr, m's print (see answerPrint), can tell; and returns the
// evidence to observe, with its print, nil for none.
func (f *Fluxguard) readQueued(ctx context.Context, q *query, remote net.Addr, m *dns.Msg, pr uint32) *answerBuffers {
	q.metrics, q.client = f.metricsFor(ctx), clientAddr(remote)
	if repeat, _ := f.precheck(q, pr); repeat {
		return nil
	}
	b := readAnswer(m, q.name, q.client)
	if b != nil {
		b.obs.Print = pr
	}
	return b
}

// inspect has the engine observe m, the chain's answer to r, for q,
// and returns what to write in its place: the action's reply when m flags
// the name, m otherwise. In monitor mode the verdict changes nothing the
// client gets: unless labels are wanted, inspect returns the evidence
// for ServeDNS to observe once m has gone out (later), read first, since
// writing may truncate m, and kept only if it did not (see answer). An
// answer sent already (see flush) is observed; one the server is to
// truncate for w's client is not (see truncates).
func (f *Fluxguard) inspect(ctx context.Context, w dns.ResponseWriter, r *dns.Msg, q *query, m *dns.Msg, sent bool) (out *dns.Msg, later *answerBuffers) {
	switch {
	case sent:
		f.observeAnswer(ctx, q, m)
	case f.cfg.action == actionLog && !f.labelsWanted.Load():
		return m, readAnswer(m, q.name, q.client)
	case truncates(ctx, w, r, m):
		// No evidence: the client's retry over TCP is.
	default:
		if v, flagged := f.flagging(ctx, q, m); flagged && f.cfg.action != actionLog {
			q.metrics.action.Inc()
			return f.reply(r, v), nil
		}
	}
	return m, nil
}

// flagging observes m, the answer for q, and reports whether it flags the
// name, with the verdict. A level-only verdict that repeats the last one
// knows neither hold (see engine.Verdict.HoldLeft) nor evidence: the held
// verdict is looked up then, for the reply's TTL and EDE text.
func (f *Fluxguard) flagging(ctx context.Context, q *query, m *dns.Msg) (engine.Verdict, bool) {
	v, ok := f.observeAnswer(ctx, q, m)
	if !ok || v.Level != engine.LevelFlagged {
		return v, false
	}
	if v.HoldLeft == 0 && v.Reasons&(engine.ReasonDenied|engine.ReasonIntel) == 0 {
		if held, ok := f.eng.Held(q.name); ok {
			v = held
		}
	}
	return v, true
}

// precheck looks q's name up before its answer is read: before the chain
// answers (pr 0), or, with the answer's print pr, in the batch it is
// queued in. It reports a query counted as a repeat of the name's last
// answer to this client (cache hits, typically), whose answer is not to
// be read, and a name not seen before, whose answer most likely comes from
// upstream (see engine.Precheck). With the labels wanted, every answer is
// read.
func (f *Fluxguard) precheck(q *query, pr uint32) (repeat, upstream bool) {
	if f.labelsWanted.Load() {
		return false, false
	}
	pc := f.eng.Precheck(q.name, q.v6, q.client, pr)
	if pc.Repeat {
		q.metrics.inspected.Inc()
		q.metrics.verdicts[pc.Level].Inc()
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

// zoneName returns the normalized question name of a query in
// fluxguard's zones, and whether its answer is inspected: that of an A or
// AAAA query. Other opcodes (NOTIFY, UPDATE) are not fluxguard's. A held
// name is answered for every type, as NXDOMAIN means (RFC 8020) and as the
// rpz zone has resolvers do: an HTTPS record's address hints, say, must
// not reach the flux hosts either.
func (f *Fluxguard) zoneName(r *dns.Msg) (name string, inspected, ok bool) {
	if len(r.Question) != 1 || r.Opcode != dns.OpcodeQuery {
		return "", false, false
	}
	q := r.Question[0]
	inspected = q.Qtype == dns.TypeA || q.Qtype == dns.TypeAAAA
	if !inspected && f.cfg.action == actionLog {
		return "", false, false
	}
	// Zones match case-insensitively; Normalize lower-cases.
	if !f.cfg.rootZone && plugin.Zones(f.cfg.zones).Matches(q.Name) == "" {
		return "", false, false
	}
	return engine.Normalize(q.Name), inspected, true
}

// replyHeld answers r without going upstream when name is held.
func (f *Fluxguard) replyHeld(ctx context.Context, sm *serverMetrics, w dns.ResponseWriter, r *dns.Msg, name string) bool {
	v, held := f.eng.HeldAsked(name)
	if !held {
		return false
	}
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

// observeAnswer has the engine observe m, the answer for q, and returns
// the verdict, or false when m is not evidence.
func (f *Fluxguard) observeAnswer(ctx context.Context, q *query, m *dns.Msg) (engine.Verdict, bool) {
	b := readAnswer(m, q.name, q.client)
	if b == nil {
		return engine.Verdict{}, false
	}
	defer buffers.Put(b)
	return f.observe(ctx, q.metrics, &b.obs)
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
	if v.Level == engine.LevelSuspicious && f.resolver != nil {
		f.resolver.enqueue(ctx, obs.Name)
	}
	if v.Changed() {
		f.detections.levelChanged(obs.Name, v)
		if v.Level == engine.LevelFlagged {
			f.flagged.add(f.server(), obs.Name)
		}
	}
	return v, true
}

// captureWriter holds the first answer the rest of the chain writes until
// the chain has returned, for ServeDNS to read and write from its own
// frame (see answer). A cache hit's write runs deepest of all it does:
// under the cache plugin's large frame and fluxguard's, it would
// outgrow the stack the query started with, which the runtime would then
// copy whole; from fluxguard's frame it runs no deeper than without
// fluxguard (docs/performance.md). A second answer before then, or
// anything else written, sends the held one first, to be read once the
// chain has returned, and ends the capture: what comes next, and what
// comes after take, goes out at once and is no evidence.
type captureWriter struct {
	dns.ResponseWriter
	state  atomic.Uint32 // answerNone, then answerTaken, answerHeld, answerSent, answerDone
	read   bool          // the answer is evidence: the query was not counted as a repeat
	queued bool          // the answer is to be queued once written (see observeQueue)
	held   *dns.Msg      // the first answer, with answerHeld and answerSent
}

// The states of a captureWriter. Only the first answer is held, and is
// evidence; take moves to answerDone, and an answer being held as it does
// goes out at once, unread.
const (
	answerNone  uint32 = iota // nothing written yet
	answerTaken               // the first answer is being held
	answerHeld                // it waits for take
	answerSent                // it went out before the chain returned (flush)
	answerDone                // the capture ended: whatever comes next goes out at once
)

// WriteMsg implements dns.ResponseWriter.
func (c *captureWriter) WriteMsg(m *dns.Msg) error {
	if !c.state.CompareAndSwap(answerNone, answerTaken) {
		c.flush()
		return c.ResponseWriter.WriteMsg(m)
	}
	c.held = m
	if c.state.CompareAndSwap(answerTaken, answerHeld) {
		return nil
	}
	// take ran meanwhile: the answer goes out now.
	return c.ResponseWriter.WriteMsg(m)
}

// Write implements dns.ResponseWriter: the held answer goes first.
func (c *captureWriter) Write(b []byte) (int, error) {
	c.flush()
	return c.ResponseWriter.Write(b)
}

// Close implements dns.ResponseWriter: the held answer goes first.
func (c *captureWriter) Close() error {
	c.flush()
	return c.ResponseWriter.Close()
}

// Hijack implements dns.ResponseWriter: the held answer goes first.
func (c *captureWriter) Hijack() {
	c.flush()
	c.ResponseWriter.Hijack()
}

// flush sends the held answer, if any, and ends the capture: what the
// chain writes next goes out at once.
func (c *captureWriter) flush() {
	for {
		switch s := c.state.Load(); s {
		case answerHeld:
			if c.state.CompareAndSwap(s, answerSent) {
				if err := c.ResponseWriter.WriteMsg(c.held); err != nil {
					log.Debugf("writing a held answer: %v", err)
				}
				return
			}
		case answerNone:
			if c.state.CompareAndSwap(s, answerDone) {
				return
			}
		default: // answerTaken: its writer sends it; else nothing is held
			return
		}
	}
}

// take ends the capture once the chain has returned: it returns the held
// answer, nil for none, and whether it was sent already (see flush).
func (c *captureWriter) take() (m *dns.Msg, sent bool) {
	switch c.state.Swap(answerDone) {
	case answerHeld:
		return c.held, false
	case answerSent:
		return c.held, true
	}
	return nil, false
}
