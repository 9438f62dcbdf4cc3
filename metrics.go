package fluxguard

import (
	"context"
	"net"
	"sync"

	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/fluxguard/fluxguard/internal/engine"
	"github.com/fluxguard/fluxguard/internal/fleet"
)

var (
	responsesInspected = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: pluginName,
		Name:      "responses_inspected_total",
		Help:      "Counter of A/AAAA answers inspected, or counted as repeats of the name's last one.",
	}, []string{"server"})
	verdicts = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: pluginName,
		Name:      "verdicts_total",
		Help:      "Counter of verdicts on tracked names, by level.",
	}, []string{"server", "level"})
	actions = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: pluginName,
		Name:      "actions_total",
		Help:      "Counter of answers replaced for flagged names, by action.",
	}, []string{"server", "action"})
	trackedNames = newBlockSums(prometheus.GaugeOpts{
		Namespace: plugin.Namespace,
		Subsystem: pluginName,
		Name:      "tracked_names",
		Help:      "Number of names whose state is kept.",
	})
	trackedNamesMax = newBlockSums(prometheus.GaugeOpts{
		Namespace: plugin.Namespace,
		Subsystem: pluginName,
		Name:      "tracked_names_max",
		Help:      "Most names (and registered domains) whose state is kept: max_names, plus a quarter with the default profile.",
	})
	namesEvicted = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: pluginName,
		Name:      "names_evicted_total",
		Help:      "Counter of names evicted to keep under the max_names cap.",
	}, []string{"server"})
	flaggedDomains = newBlockSums(prometheus.GaugeOpts{
		Namespace: plugin.Namespace,
		Subsystem: pluginName,
		Name:      "flagged_domains",
		Help:      "Number of currently flagged domains.",
	})
	stateSaveFailures = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: pluginName,
		Name:      "state_save_failures_total",
		Help:      "Counter of failed saves of the state file; the previous file is kept.",
	}, []string{"server"})
	stateSaved = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: plugin.Namespace,
		Subsystem: pluginName,
		Name:      "state_saved_timestamp_seconds",
		Help:      "Unix time of the last successful save of the state file.",
	}, []string{"server"})
	flaggedDomain = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: plugin.Namespace,
		Subsystem: pluginName,
		Name:      "flagged",
		Help:      "1 for each currently flagged domain, for at most metrics_domains domains per server.",
	}, []string{"server", "domain"})
	rpzSerial = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: plugin.Namespace,
		Subsystem: pluginName,
		Name:      "rpz_serial",
		Help:      "Serial of the rpz zone's SOA.",
	}, []string{"server", "zone"})
	rpzRecords = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: plugin.Namespace,
		Subsystem: pluginName,
		Name:      "rpz_records",
		Help:      "Number of triggers in the rpz zone, its SOA and NS not counted.",
	}, []string{"server", "zone"})
	rpzLeftOut = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: plugin.Namespace,
		Subsystem: pluginName,
		Name:      "rpz_entries_left_out",
		Help:      "Number of held names and addresses left out of the rpz zone by its max.",
	}, []string{"server", "zone"})
	rpzTransfers = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: pluginName,
		Name:      "rpz_transfers_total",
		Help:      "Counter of transfers of the rpz zone, by the type secondaries asked for (axfr, ixfr).",
	}, []string{"server", "zone", "type"})
)

// serverMetrics holds the per-query counters of one server, so that the
// query path does not look up label values.
type serverMetrics struct {
	server    string
	inspected prometheus.Counter
	verdicts  [engine.LevelFlagged + 1]prometheus.Counter
	action    prometheus.Counter // nil in monitor mode, which replaces nothing
}

func newServerMetrics(server string, a action) *serverMetrics {
	sm := &serverMetrics{server: server, inspected: responsesInspected.WithLabelValues(server)}
	if a != actionLog {
		sm.action = actions.WithLabelValues(server, a.String())
	}
	for l := range sm.verdicts {
		sm.verdicts[l] = verdicts.WithLabelValues(server, engine.Level(l).String())
	}
	return sm
}

// blockSums is a gauge by server whose value is the sum of what each
// server block listening there sets: the blocks of one address (zones,
// views) each keep a state of their own.
type blockSums struct {
	*prometheus.GaugeVec
	mu     sync.Mutex
	values map[string]map[string]float64 // by server, by block (stateKey)
}

func newBlockSums(opts prometheus.GaugeOpts) *blockSums {
	return &blockSums{GaugeVec: promauto.NewGaugeVec(opts, []string{"server"}), values: map[string]map[string]float64{}}
}

// set makes v block's value, under server only, and the gauge of each
// server it changes the sum of its blocks' values.
func (s *blockSums) set(server, block string, v float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drop(block, server)
	if s.values[server] == nil {
		s.values[server] = map[string]float64{}
	}
	s.values[server][block] = v
	s.publish(server)
}

// forget drops block's values, when it shuts down for good.
func (s *blockSums) forget(block string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drop(block, "")
}

// drop removes block's values but under server keep.
func (s *blockSums) drop(block, keep string) {
	for server, blocks := range s.values {
		if _, ok := blocks[block]; ok && server != keep {
			delete(blocks, block)
			s.publish(server)
		}
	}
}

// publish sets server's gauge to the sum of its blocks' values, or
// deletes it when none is left.
func (s *blockSums) publish(server string) {
	if len(s.values[server]) == 0 {
		delete(s.values, server)
		s.DeleteLabelValues(server)
		return
	}
	sum := 0.0
	for _, v := range s.values[server] {
		sum += v
	}
	s.WithLabelValues(server).Set(sum)
}

// flaggedGauge keeps the flagged{domain} series in step with the engine,
// never with more than max domains. They carry the block's first server,
// as its other gauges do.
type flaggedGauge struct {
	block string // the server block's stateKey, for flagged_domains
	max   int
	mu    sync.Mutex
	shown map[string]string // domains with a series, and its server label
}

func newFlaggedGauge(block string, max int) *flaggedGauge {
	return &flaggedGauge{block: block, max: max, shown: map[string]string{}}
}

// add shows a newly flagged domain at once, if there is room.
func (g *flaggedGauge) add(server, name string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.shown[name]; ok || len(g.shown) >= g.max {
		return
	}
	g.show(server, name)
}

// show sets name's series under server, dropping one it had under another.
func (g *flaggedGauge) show(server, name string) {
	switch old, ok := g.shown[name]; {
	case ok && old == server:
		return
	case ok:
		hideFlagged(old, name)
	}
	g.shown[name] = server
	showFlagged(server, name)
}

// flaggedShown counts the gauges that show each flagged{server, domain}
// series: blocks on one address (views) may flag the same domain, and one
// that no longer does must not take the series from another, nor a
// reload's old instance from its new one.
var (
	flaggedShownMu sync.Mutex
	flaggedShown   = map[[2]string]int{}
)

// showFlagged counts one more gauge showing name's series under server.
func showFlagged(server, name string) {
	flaggedShownMu.Lock()
	defer flaggedShownMu.Unlock()
	flaggedShown[[2]string{server, name}]++
	flaggedDomain.WithLabelValues(server, name).Set(1)
}

// hideFlagged counts one gauge fewer showing name's series under server,
// and deletes the series with the last.
func hideFlagged(server, name string) {
	flaggedShownMu.Lock()
	defer flaggedShownMu.Unlock()
	k := [2]string{server, name}
	if flaggedShown[k]--; flaggedShown[k] <= 0 {
		delete(flaggedShown, k)
		flaggedDomain.DeleteLabelValues(server, name)
	}
}

// refresh drops the series of domains no longer flagged, (re)sets those
// of the flagged ones up to max, and sets the total.
func (g *flaggedGauge) refresh(server string, eng *engine.Engine) {
	names, total := eng.Flagged(g.max)
	g.mu.Lock()
	defer g.mu.Unlock()
	flaggedDomains.set(server, g.block, float64(total))
	current := make(map[string]struct{}, len(names))
	for _, n := range names {
		current[n] = struct{}{}
	}
	for n, label := range g.shown {
		if _, ok := current[n]; !ok {
			hideFlagged(label, n)
			delete(g.shown, n)
		}
	}
	for _, n := range names {
		if _, ok := g.shown[n]; !ok && len(g.shown) >= g.max {
			continue
		}
		g.show(server, n)
	}
}

// clear removes every series this gauge made, at shutdown.
func (g *flaggedGauge) clear() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for n, label := range g.shown {
		hideFlagged(label, n)
	}
	g.shown = map[string]string{}
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

// rpzMetrics are the series of one rpz zone. A transfer carries no
// server, so they carry the label of the block's first server.
type rpzMetrics struct {
	server, zone             string
	serial, records, leftOut prometheus.Gauge
	axfr, ixfr               prometheus.Counter
}

// newRPZMetrics makes the zone's series, the transfer counters at 0, so
// that an alert sees a zone that was never transferred.
func newRPZMetrics(server, zone string) *rpzMetrics {
	return &rpzMetrics{server: server, zone: zone,
		serial:  rpzSerial.WithLabelValues(server, zone),
		records: rpzRecords.WithLabelValues(server, zone),
		leftOut: rpzLeftOut.WithLabelValues(server, zone),
		axfr:    rpzTransfers.WithLabelValues(server, zone, "axfr"),
		ixfr:    rpzTransfers.WithLabelValues(server, zone, "ixfr"),
	}
}

// clear removes the zone's gauges, at shutdown; the counters stay, as
// CoreDNS's own do. On a reload the new instance sets the gauges again
// within rpzUpdate.
func (m *rpzMetrics) clear() {
	rpzSerial.DeleteLabelValues(m.server, m.zone)
	rpzRecords.DeleteLabelValues(m.server, m.zone)
	rpzLeftOut.DeleteLabelValues(m.server, m.zone)
}

// blockServer returns the server label that CoreDNS's metrics give the
// first server of the block cfg (metrics.WithServer): its transport, then
// its first listen address and port, as dnsserver names its servers.
func blockServer(cfg *dnsserver.Config) string {
	host := ""
	if len(cfg.ListenHosts) > 0 {
		host = cfg.ListenHosts[0]
	}
	addr := net.JoinHostPort(host, cfg.Port)
	if a, err := net.ResolveTCPAddr("tcp", addr); err == nil {
		addr = a.String()
	}
	return cfg.Transport + "://" + addr
}

// server is the label of the gauges that describe the engine, shared by
// the servers of the block: the first server that served a query, else
// the block's first (a state saved before any query is labelled as the
// ones after).
func (f *Fluxguard) server() string {
	if all := f.metrics.Load(); all != nil {
		return (*all)[0].server
	}
	return f.cfg.server
}

// fleetCollector exports the counters of the links to fleets (the shared
// option), read when scraped.
type fleetCollector struct{}

var (
	sharedUp      = sharedDesc("shared_up", "Whether the last call to the fleet's Redis succeeded (1) or not (0).")
	sharedErrors  = sharedDesc("shared_errors_total", "Failed calls to the fleet's Redis.")
	sharedBatches = sharedDesc("shared_batches_total", "Batches sent to the fleet and received from its other replicas.", "direction")
	sharedNames   = sharedDesc("shared_names_total", "Names sent to the fleet, and merged from its other replicas.", "direction")
	sharedDropped = sharedDesc("shared_dropped_total", "Names not sent because the queue to Redis was full.")
	sharedInvalid = sharedDesc("shared_invalid_total", "Values read from Redis that were refused.")
	sharedLag     = sharedDesc("shared_sync_lag_seconds", "Age of the last batch from another replica when it was merged.")
)

// sharedDesc describes a metric of the links to fleets, by server and labels.
func sharedDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(plugin.Namespace, pluginName, name), help, append([]string{"server"}, labels...), nil)
}

func init() { prometheus.MustRegister(fleetCollector{}) }

func (fleetCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{sharedUp, sharedErrors, sharedBatches, sharedNames, sharedDropped, sharedInvalid, sharedLag} {
		ch <- d
	}
}

// Collect exports the links' counters by server. Server blocks that share
// a server (several zones on one address) have a link each: theirs add
// up, up only if all are, with the oldest lag; a series twice in a scrape
// would fail it whole.
func (fleetCollector) Collect(ch chan<- prometheus.Metric) {
	byServer := map[string]*fleet.Stats{}
	fleetsMu.Lock()
	for _, fl := range fleets {
		server := fl.owner.server()
		if server == "" {
			continue // no query yet: the server label is not known
		}
		st := fl.link.Stats()
		if sum, ok := byServer[server]; ok {
			sum.Add(st)
		} else {
			byServer[server] = &st
		}
	}
	fleetsMu.Unlock()
	for server, st := range byServer {
		up := 0.0
		if st.Up {
			up = 1
		}
		counter := func(d *prometheus.Desc, v uint64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), append([]string{server}, labels...)...)
		}
		ch <- prometheus.MustNewConstMetric(sharedUp, prometheus.GaugeValue, up, server)
		counter(sharedErrors, st.Errors)
		counter(sharedBatches, st.BatchesSent, "sent")
		counter(sharedBatches, st.BatchesRead, "received")
		counter(sharedNames, st.NamesSent, "sent")
		counter(sharedNames, st.NamesMerged, "merged")
		counter(sharedDropped, st.Dropped)
		counter(sharedInvalid, st.Invalid)
		ch <- prometheus.MustNewConstMetric(sharedLag, prometheus.GaugeValue, st.Lag.Seconds(), server)
	}
}
