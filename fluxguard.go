// Package fluxguard is a CoreDNS plugin that catches fast-flux domains
// (MITRE ATT&CK T1568.001) inline: it inspects the answers that pass through
// it, keeps per-name IP churn state in plugin/engine, and logs, tags, counts,
// blocks or sinkholes the names whose score crosses the threshold.
package fluxguard

import (
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/coredns/coredns/plugin"
	clog "github.com/coredns/coredns/plugin/pkg/log"
	"github.com/coredns/coredns/request"
	"github.com/miekg/dns"

	"github.com/fluxguard/fluxguard/plugin/engine"
)

var log = clog.NewWithPlugin(pluginName)

// Fluxguard is the plugin handler.
type Fluxguard struct {
	Next plugin.Handler

	cfg     config
	eng     *engine.Engine
	flagged *flaggedGauge
	report  *reportServer
	done    chan struct{}
}

func newFluxguard(cfg config) (*Fluxguard, error) {
	eng, err := engine.New(cfg.engine)
	if err != nil {
		return nil, err
	}
	return &Fluxguard{cfg: cfg, eng: eng, flagged: newFlaggedGauge(cfg.metricsDomains)}, nil
}

// Name implements plugin.Handler.
func (f *Fluxguard) Name() string { return pluginName }

// ServeDNS implements plugin.Handler.
func (f *Fluxguard) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	state := request.Request{W: w, Req: r}
	qtype := state.QType()
	if qtype != dns.TypeA && qtype != dns.TypeAAAA || plugin.Zones(f.cfg.zones).Matches(state.Name()) == "" {
		return plugin.NextOrFailure(f.Name(), f.Next, ctx, w, r)
	}
	name := engine.Normalize(state.Name())
	server := metricsServer(ctx)
	if f.cfg.action != actionLog {
		if v, held := f.eng.Held(name); held {
			setMetadata(ctx, v)
			return dns.RcodeSuccess, f.act(server, w, r, v)
		}
	}
	cw := &captureWriter{ResponseWriter: w, f: f, ctx: ctx, server: server, req: r, name: name}
	return plugin.NextOrFailure(f.Name(), f.Next, ctx, cw, r)
}

// inspect observes an answer written by the rest of the chain and returns
// the verdict, or false when the answer is not evidence.
func (f *Fluxguard) inspect(ctx context.Context, server, name string, client netip.Addr, m *dns.Msg) (engine.Verdict, bool) {
	var buf [maxAnswerAddrs]netip.Addr
	obs := engine.Observation{Name: name, Client: client}
	if !observe(m, &obs, buf[:0]) {
		return engine.Verdict{}, false
	}
	responsesInspected.WithLabelValues(server).Inc()
	v := f.eng.Observe(&obs)
	setMetadata(ctx, v)
	if v.Skip != engine.SkipNone {
		return v, false
	}
	verdicts.WithLabelValues(server, v.Level.String()).Inc()
	if v.Changed() {
		log.Infof("domain=%s level=%s previous=%s score=%d reasons=%s unique_ips=%d queries=%d clients=%d technique=T1568.001",
			name, v.Level, v.Prev, v.Score, v.Reasons, v.UniqueIPs, v.Queries, v.Clients)
		if v.Level == engine.LevelFlagged {
			f.flagged.add(server, name)
		}
	}
	return v, true
}

// act answers r for a flagged name as configured and counts the action.
func (f *Fluxguard) act(server string, w dns.ResponseWriter, r *dns.Msg, v engine.Verdict) error {
	actions.WithLabelValues(server, f.cfg.action.String()).Inc()
	return w.WriteMsg(f.reply(r))
}

// start runs the periodic housekeeping and the report listener.
func (f *Fluxguard) start() error {
	f.done = make(chan struct{})
	go f.housekeep(f.done)
	if f.cfg.report != "" {
		rs, err := acquireReport(f.cfg.report, f.eng)
		if err != nil {
			return err
		}
		f.report = rs
	}
	log.Infof("%s action=%s %s", f.cfg.zones, f.cfg.action, f.eng)
	return nil
}

func (f *Fluxguard) stop() error {
	close(f.done)
	if f.report != nil {
		releaseReport(f.report)
	}
	return nil
}

// housekeepEvery is how often expired names are swept and gauges refreshed.
const housekeepEvery = 10 * time.Second

func (f *Fluxguard) housekeep(done <-chan struct{}) {
	t := time.NewTicker(housekeepEvery)
	defer t.Stop()
	var evicted uint64
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		f.eng.Sweep()
		server := f.flagged.serverLabel()
		trackedNames.WithLabelValues(server).Set(float64(f.eng.Len()))
		if n := f.eng.Evicted(); n > evicted {
			namesEvicted.WithLabelValues(server).Add(float64(n - evicted))
			evicted = n
		}
		f.flagged.refresh(f.eng)
	}
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
