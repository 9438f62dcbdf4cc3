package engine

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// Engine tracks names and scores them. It is safe for concurrent use.
type Engine struct {
	cfg     Config
	now     func() time.Time
	width   uint32 // seconds per query-count bucket
	window  uint32 // seconds
	hold    uint32 // seconds
	policy  atomic.Pointer[Policy]
	exclude suffixSet
	chains  bool // the exclusions apply to CNAME chains too (default profile)
	// trusted are the exclusions whose names answer only what their
	// operators choose, whatever the chain's addresses: the public pools,
	// and the suffixes the configuration adds to the seed rule's lists
	// (see skippedChain).
	trusted suffixSet
	rows    bool // the query count counts rows, one per address, as the seed rule does
	susTLD  suffixSet
	st      *store
	domains *store                   // registered-domain aggregates (default profile), or nil
	pools   *poolIndex               // addresses of flagged names (default profile), or nil
	fpSeed  uint64                   // of the answers' fingerprints (see addrSum)
	holds   chan struct{}            // signals a hold to share (see Holds); nil when not sharing
	recheck atomic.Pointer[rechecks] // nil when no held name waits for one

	outgoingFrom atomic.Uint32 // the shard Outgoing starts at

	threshold float64
}

// New returns an engine for cfg, or an error when cfg cannot work.
func New(cfg Config) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	e := &Engine{
		cfg:     cfg,
		now:     cfg.Now,
		window:  uint32(cfg.Window / time.Second),
		hold:    uint32(cfg.Hold / time.Second),
		exclude: newSuffixSet(cfg.CDNSuffixes, cfg.InternalTLDs, cfg.ExcludeSuffixes, cfg.pools()),
		trusted: newSuffixSet(cfg.pools(), added(cfg.CDNSuffixes, cfg.InternalTLDs, cfg.ExcludeSuffixes)),
		susTLD:  newSuffixSet(cfg.SuspiciousTLDs),
		st:      newStore(cfg.MaxNames),
		fpSeed:  rand.Uint64(),
	}
	if e.now == nil {
		e.now = coarseNow
	}
	if cfg.Share {
		e.holds = make(chan struct{}, 1)
	}
	e.policy.Store(NewPolicy(cfg.Allow, cfg.Deny, cfg.AllowNets))
	e.width = max(e.window/buckets, 1)
	e.threshold = cfg.Threshold
	e.rows = cfg.QueryCount == CountRows || cfg.QueryCount == "" && cfg.Profile == ProfileSeed
	if cfg.Profile == ProfileSeed {
		e.threshold = cmp.Or(e.threshold, SeedThreshold)
	} else {
		e.threshold = cmp.Or(e.threshold, DefaultThreshold)
		e.chains = true
		e.domains = newStore(max(cfg.MaxNames/4, 1))
		e.pools = newPoolIndex()
	}
	return e, nil
}

// added returns the entries of lists that none of the seed rule's lists
// holds: those an operator set, and vouches for.
func added(lists ...[]string) []string {
	seed := newSuffixSet(SeedCDNSuffixes, SeedInternalTLDs, SeedExcludeSuffixes)
	var out []string
	for _, l := range lists {
		for _, n := range l {
			if _, ok := seed[Normalize(n)]; !ok {
				out = append(out, n)
			}
		}
	}
	return out
}

// Reconfigured returns an engine with cfg that keeps e's state, for a
// configuration reload: tracked names, their evidence and the flagged set
// carry over, shared by both. It changes nothing of that state until the
// new engine's Adopt, once the reload has succeeded: e goes on serving
// until then, or for good when the reload fails.
func (e *Engine) Reconfigured(cfg Config) (*Engine, error) {
	n, err := New(cfg)
	if err != nil {
		return nil, err
	}
	// The allows the state was judged under, for Adopt's SetPolicy.
	n.policy.Store(e.policy.Load())
	n.recheck.Store(e.recheck.Load())
	n.st = e.st
	if n.pools != nil && e.pools != nil {
		n.pools = e.pools
	}
	if n.domains != nil && e.domains != nil {
		n.domains = e.domains
	}
	return n, nil
}

// Adopt makes the state e shares its own configuration's (see
// Reconfigured): its caps, which a store over them comes back to as new
// names come (see store.insert), what each entry holds of the
// configuration, and the names it excludes, forgotten, as SetPolicy
// forgets the names it allows. A new window restarts the query counts at
// the next answer (see entry.advance). A failed reload's engine is never
// adopted; the one a reload fails back to is adopted again.
func (e *Engine) Adopt() {
	e.st.max.Store(int64(e.cfg.MaxNames))
	if e.domains != nil {
		e.domains.max.Store(int64(max(e.cfg.MaxNames/4, 1)))
	}
	e.each(func(sc scope, sh *shard, en *entry) bool {
		name := sh.name(en)
		// What the entry holds of the configuration is the new one's; a
		// hold from the fleet stays one.
		en.nameBits = e.nameReasons(name) | en.nameBits&ReasonFleet
		en.domOff = e.domainOffset(sc, name)
		if !e.rows {
			en.rows = 0
		}
		en.fingerprint = 0 // the window may have changed: the next answer is tallied
		return !e.exclude.match(name)
	})
	e.forgetRecent()
}

// scope is one of the engine's stores: exact names, or registered-domain
// aggregates, shown as "*.domain" and judged by a higher threshold.
type scope struct {
	st        *store
	prefix    string
	threshold float64
}

// names reports whether sc is the scope of exact names.
func (sc scope) names() bool { return sc.prefix == "" }

func (e *Engine) nameScope() scope { return scope{e.st, "", e.threshold} }

// domainScope is the scope of registered domains, of the default profile.
func (e *Engine) domainScope() scope {
	return scope{e.domains, "*.", e.threshold * e.cfg.Weights.Domain}
}

func (e *Engine) scopes() []scope {
	s := []scope{e.nameScope()}
	if e.domains != nil {
		s = append(s, e.domainScope())
	}
	return s
}

// holdsAny reports whether an entry of any scope may be held at now: when
// none may, what looks for held entries need not pass over every entry.
func (e *Engine) holdsAny(now uint32) bool {
	return e.st.holds(now) || e.domains != nil && e.domains.holds(now)
}

// each calls f for every entry of every scope (see store.each).
func (e *Engine) each(f func(sc scope, sh *shard, en *entry) bool) {
	for _, sc := range e.scopes() {
		sc.st.each(func(sh *shard, en *entry) bool { return f(sc, sh, en) })
	}
}

// eachHeld calls f for every entry of every scope held at now. Unlike
// each, it leaves the repeats the slots hold uncounted: a held name is
// flagged, and its repeats, of its judged answer's second (see repeats),
// would move neither its last seen nor its hold, while counting in every
// name's, a miss to memory each, would make every pass over the held
// names (the flagged gauge's, every housekeepEvery) cost as many misses
// as there are names.
func (e *Engine) eachHeld(now uint32, f func(sc scope, sh *shard, en *entry)) {
	for _, sc := range e.scopes() {
		sc.st.eachUnsettled(func(sh *shard, en *entry) bool {
			if en.heldUntil > now {
				f(sc, sh, en)
			}
			return true
		})
	}
}

// Config returns the engine's configuration.
func (e *Engine) Config() Config { return e.cfg }

// SetPolicy replaces the allow and deny policy and the threat
// intelligence, for example when a policy or intel file changes. Names it
// allows are forgotten at once; when the intel address list changes, the
// addresses of the names tracked are counted against it again. When the
// allows change, the names held have their next answer read (see
// rechecks).
func (e *Engine) SetPolicy(p *Policy) {
	old := e.policy.Swap(p)
	unix := e.now().Unix()
	now := internalTime(unix)
	remark, since := old == nil || old.bad != p.bad, e.since(now)
	recheck := old != nil && !p.sameAllows(old)
	allowed := map[uint32]bool{} // owners in the pool index of names allowed now
	held, heldUntil := map[key]struct{}{}, uint32(0)
	e.each(func(sc scope, sh *shard, en *entry) bool {
		name := sh.name(en)
		if p.allowed(name, nil, unix) {
			if sc.names() {
				_, k := sc.st.locate(name)
				allowed[k.owner()] = true
			}
			return false
		}
		if recheck && sc.names() && en.heldUntil > now {
			_, k := sc.st.locate(name)
			held[k], heldUntil = struct{}{}, max(heldUntil, en.heldUntil)
		}
		if remark && sc.names() {
			e.remarkBad(sh, en, p.bad, since)
		}
		return true
	})
	if e.pools != nil && len(allowed) > 0 {
		e.pools.drop(allowed)
	}
	if recheck {
		var r *rechecks
		if len(held) > 0 {
			r = &rechecks{names: held, until: heldUntil}
		}
		e.recheck.Store(r)
	}
	e.forgetRecent()
}

// forgetRecent has every name's next answer judged in full (see
// store.forgetRecent).
func (e *Engine) forgetRecent() {
	for _, sc := range e.scopes() {
		sc.st.forgetRecent()
	}
}

// Sweep drops the entries with no evidence left in the window that are not
// held, and returns how many it dropped. Call it periodically, off the
// query path.
func (e *Engine) Sweep() int {
	now := e.clock()
	since, n := e.since(now), 0
	for _, sc := range e.scopes() {
		n += sc.st.sweep(since, now)
	}
	return n
}

// Len returns the number of tracked names and registered domains.
func (e *Engine) Len() int {
	n := 0
	for _, sc := range e.scopes() {
		n += sc.st.len()
	}
	return n
}

// Capacity returns the most names and registered domains the engine keeps.
func (e *Engine) Capacity() int {
	n := 0
	for _, sc := range e.scopes() {
		n += int(sc.st.max.Load())
	}
	return n
}

// TakeEvicted returns how many entries were evicted to respect the caps
// since it was last called, on this engine or on one it was reconfigured
// from: a counter fed from it counts each eviction once across reloads.
func (e *Engine) TakeEvicted() uint64 {
	n := uint64(0)
	for _, sc := range e.scopes() {
		n += sc.st.evicted.Swap(0)
	}
	return n
}

// String describes the engine for logs.
func (e *Engine) String() string {
	return fmt.Sprintf("profile=%s window=%s min_ips=%d min_queries=%d threshold=%g max_names=%d",
		e.cfg.Profile, e.cfg.Window, e.cfg.MinIPs, e.cfg.MinQueries, e.threshold, e.cfg.MaxNames)
}
