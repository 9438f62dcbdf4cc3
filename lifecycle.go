package fluxguard

import (
	"fmt"
	"sync"
	"time"

	"github.com/coredns/coredns/plugin"
)

// start runs the report listener, the link to the fleet, the periodic
// housekeeping and the rpz zone's updates. After a reload, the engine
// takes the state over first, every plugin's setup having succeeded: its
// view's (see ownState).
func (f *Fluxguard) start() error {
	var err error
	switch previous := keepView(f); {
	case f.adopt && previous != f.view: // another view's state under its name
		err = f.ownState(previous)
	case !f.adopt: // a block at a place no block of its keys had: a view block moved?
		_, err = f.viewState()
	}
	if err != nil {
		return plugin.Error(pluginName, err)
	}
	f.before = nil // the old states, whose memory is theirs
	if f.adopt {
		f.adoptState()
	}
	if f.cfg.shared != nil {
		fl, err := acquireFleet(f)
		if err != nil {
			return plugin.Error(pluginName, err)
		}
		f.fleet = fl
	}
	if f.cfg.report != "" {
		rs, err := acquireReport(f.cfg.report, f.source())
		if err != nil {
			f.stop() // lets go of the fleet
			return plugin.Error(pluginName, fmt.Errorf("report: %w", err))
		}
		f.report = rs
	}
	done := make(chan struct{})
	f.done = done
	f.inBackground(func() { f.housekeep(done) })
	if f.cfg.action == actionLog {
		f.queue = newObserveQueue()
		f.inBackground(func() { f.queue.run(f, done) })
	}
	if f.cfg.stateFile != "" {
		f.inBackground(func() { f.persist(done) })
	}
	if f.resolver != nil {
		go f.resolver.run(done)
	}
	if f.rpz != nil {
		if f.xfer == nil {
			log.Warningf("rpz %s: no transfer plugin in the server block: the zone is not transferred, nor NOTIFY sent", f.rpz.origin)
		}
		f.inBackground(func() { f.runRPZ(done) })
	}
	setRunning(f.key, f)
	log.Infof("%s action=%s %s", f.cfg.zones, f.cfg.action, f.eng)
	return nil
}

// adoptState makes the state kept across reloads this instance's
// configuration's: caps, exclusions and allows (see engine.Adopt), and
// the rpz zone's timers.
func (f *Fluxguard) adoptState() {
	f.eng.Adopt()
	f.eng.SetPolicy(f.cfg.policy())
	if f.rpz != nil {
		f.rpz.configure(*f.cfg.rpz, f.cfg.sinkholeTTL)
	}
}

// inBackground runs fn in a goroutine that stop waits for, below a
// reserve (see parkDeep).
func (f *Fluxguard) inBackground(fn func()) {
	f.background.Add(1)
	go func() {
		defer f.background.Done()
		parkDeep(fn)
	}()
}

// stop ends what start began; on a reload the new instance has already
// started, and its housekeeping restores any flagged series cleared here.
// It waits for the goroutines that save the state or set gauges, so that
// none saves over the final state or sets a series after it is cleared.
func (f *Fluxguard) stop() error {
	if f.done != nil {
		close(f.done)
		f.done = nil
	}
	f.background.Wait()
	if f.queue != nil {
		f.queue.close(f)
	}
	if stillRunning(f) { // no new instance took the block over: a reload removed it, or CoreDNS exits
		setRunning(f.key, nil)
		f.forgetBlock()
	}
	if f.report != nil {
		releaseReport(f.report)
		f.report = nil
	}
	if f.fleet != nil {
		releaseFleet(f.fleet)
		f.fleet = nil
	}
	f.flagged.clear()
	if f.rpzMetrics != nil {
		f.rpzMetrics.clear()
	}
	return nil
}

// finalShutdown saves the state, if configured, when CoreDNS exits.
func (f *Fluxguard) finalShutdown() error {
	setRunning(f.key, nil)
	if f.cfg.stateFile != "" {
		(&stateSaver{path: f.cfg.stateFile}).save(f.eng, f.server())
	}
	f.forgetBlock()
	f.cfg.close()
	return nil
}

// forgetBlock drops what is kept of f's block across reloads, and its
// share of the gauges it adds to.
func (f *Fluxguard) forgetBlock() {
	forgetState(f.key)
	for _, g := range []*blockSums{trackedNames, trackedNamesMax, flaggedDomains} {
		g.forget(f.key)
	}
}

// persist saves the state every state_interval until done is closed.
func (f *Fluxguard) persist(done <-chan struct{}) {
	t := time.NewTicker(f.cfg.stateInterval)
	defer t.Stop()
	saver := &stateSaver{path: f.cfg.stateFile}
	for {
		select {
		case <-done:
			return
		case <-t.C:
			saver.save(f.eng, f.server())
		}
	}
}

// restartFailed puts this instance back in charge when a reload that
// would have replaced it fails. caddy drops the new instance without its
// shutdown callbacks: if it had started, it is stopped here, and the
// report, the fleet's link and the next reload are pointed back at this
// instance's engine.
func (f *Fluxguard) restartFailed() error {
	if dropped := setRunning(f.key, f); dropped != nil && dropped != f {
		dropped.stop()
	}
	f.adoptState() // the dropped instance may have adopted it, if it started
	keepState(f)
	if f.report != nil {
		f.report.src.Store(f.source())
	}
	if f.fleet != nil {
		reinstateFleet(f.fleet, f)
	}
	return nil
}

// running holds the started instance of each server block, by stateKey,
// for restartFailed to find the one a failed reload leaves behind.
var (
	runningMu sync.Mutex
	running   = map[string]*Fluxguard{}
)

// setRunning records f (nil: none) as key's started instance and returns
// the one it replaces. The key "" (tests) is not recorded.
func setRunning(key string, f *Fluxguard) (previous *Fluxguard) {
	if key == "" {
		return nil
	}
	runningMu.Lock()
	defer runningMu.Unlock()
	previous = running[key]
	if f == nil {
		delete(running, key)
	} else {
		running[key] = f
	}
	return previous
}

// stillRunning reports whether f is its block's started instance.
func stillRunning(f *Fluxguard) bool {
	runningMu.Lock()
	defer runningMu.Unlock()
	return f.key != "" && running[f.key] == f
}

// housekeepEvery is how often gauges are refreshed and the policy's files
// reread; sweepEvery, how often names past the window are swept out. A
// sweep reads every name's index slot, a pass over the state's memory that
// costs every query a little, for names that stay tracked a minute longer
// at most.
const (
	housekeepEvery = 10 * time.Second
	sweepEvery     = time.Minute
)

func (f *Fluxguard) housekeep(done <-chan struct{}) {
	t := time.NewTicker(housekeepEvery)
	defer t.Stop()
	var swept time.Time
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			if now.Sub(swept) > sweepEvery-housekeepEvery/2 { // ticks drift
				f.eng.Sweep()
				swept = now
			}
		}
		f.reloadPolicy()
		all := f.metrics.Load()
		if all == nil {
			continue // no query yet: the server label is not known
		}
		sm := (*all)[0] // the engine is shared: its gauges go to the first server
		trackedNames.set(sm.server, f.key, float64(f.eng.Len()))
		trackedNamesMax.set(sm.server, f.key, float64(f.eng.Capacity()))
		namesEvicted.WithLabelValues(sm.server).Add(float64(f.eng.TakeEvicted()))
		f.flagged.refresh(sm.server, f.eng)
	}
}
