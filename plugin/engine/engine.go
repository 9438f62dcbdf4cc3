package engine

import (
	"fmt"
	"net/netip"
	"sort"
	"sync/atomic"
	"time"
)

// Observation is one answer seen by the resolver for a name.
type Observation struct {
	Name   string       // the question name, normalized (see Normalize)
	Client netip.Addr   // the querying client; invalid when unknown
	Addrs  []netip.Addr // A/AAAA addresses of the answer, through CNAME chains
	MinTTL uint32       // lowest TTL of the answer's address records
	Chain  []string     // the CNAME targets from Name to the addresses, normalized
}

// Engine tracks names and scores them. It is safe for concurrent use.
type Engine struct {
	cfg     Config
	now     func() time.Time
	width   uint32 // seconds per query-count bucket
	window  uint32 // seconds
	hold    uint32 // seconds
	policy  atomic.Pointer[Policy]
	exclude suffixSet
	susTLD  suffixSet
	st      *store
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
		exclude: newSuffixSet(cfg.CDNSuffixes, cfg.InternalTLDs, cfg.ExcludeSuffixes),
		susTLD:  newSuffixSet(cfg.SuspiciousTLDs),
		st:      newStore(cfg.MaxNames),
	}
	if e.now == nil {
		e.now = time.Now
	}
	e.policy.Store(NewPolicy(cfg.Allow, cfg.Deny, cfg.AllowNets))
	e.width = max(e.window/buckets, 1)
	return e, nil
}

// epoch is the origin of the engine's internal times, in unix seconds
// (2020-01-01 UTC): fixed, so that saved state means the same to every
// process. uint32 seconds from it last until 2156.
const epoch = 1577836800

// Reconfigured returns an engine with cfg that keeps e's state, for a
// configuration reload: tracked names, their evidence and the flagged set
// carry over. e must not be used afterwards.
func (e *Engine) Reconfigured(cfg Config) (*Engine, error) {
	n, err := New(cfg)
	if err != nil {
		return nil, err
	}
	n.st = e.st
	n.st.max.Store(int64(cfg.MaxNames))
	n.st.each(func(name string, en *entry) bool {
		en.nameBits = n.nameReasons(name)
		return true
	})
	return n, nil
}

// Config returns the engine's configuration.
func (e *Engine) Config() Config { return e.cfg }

func (e *Engine) clock() uint32 { return internalTime(e.now().Unix()) }

// internalTime converts unix seconds to the engine's time.
func internalTime(unix int64) uint32 {
	if s := unix - epoch; s >= 1 {
		return uint32(s)
	}
	return 1
}

func (e *Engine) since(now uint32) uint32 {
	if now <= e.window {
		return 0
	}
	return now - e.window
}

// SetPolicy replaces the allow and deny policy, for example when a policy
// file changes. Names it allows are forgotten at once.
func (e *Engine) SetPolicy(p *Policy) {
	e.policy.Store(p)
	unix := e.now().Unix()
	e.st.each(func(name string, _ *entry) bool { return !p.allowed(name, nil, unix) })
}

// Skipped reports why name, reached through chain, is never tracked, or
// SkipNone.
func (e *Engine) Skipped(name string, chain []string) Skip {
	return e.skipped(e.policy.Load(), name, chain, e.now().Unix())
}

func (e *Engine) skipped(p *Policy, name string, chain []string, unix int64) Skip {
	if p.allowed(name, chain, unix) {
		return SkipAllowed
	}
	if e.exclude.match(name) {
		return SkipExcluded
	}
	return SkipNone
}

// denied is the verdict for a name on the deny list.
var denied = Verdict{Level: LevelFlagged, Prev: LevelFlagged, Reasons: ReasonDenied}

// Observe records an answer and returns the name's verdict.
func (e *Engine) Observe(o *Observation) Verdict {
	p, unix := e.policy.Load(), e.now().Unix()
	if s := e.skipped(p, o.Name, o.Chain, unix); s != SkipNone {
		return Verdict{Skip: s}
	}
	if p.deny.match(o.Name, unix) {
		return denied
	}
	if p.netsAllowed(o.Addrs) {
		return Verdict{Skip: SkipAllowed}
	}
	var addrs [maxAddrsPerObservation][16]byte
	n := 0
	for _, a := range o.Addrs {
		if n == len(addrs) {
			break
		}
		if IsPublic(a) && !e.ignored(a) {
			addrs[n] = a.Unmap().As16()
			n++
		}
	}
	if n == 0 {
		return Verdict{Skip: SkipNoAddrs}
	}
	now := internalTime(unix)
	sh := e.st.shard(o.Name)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	en := sh.m[o.Name]
	if en == nil {
		en = &entry{ips: make([]seen, 0, n), nameBits: e.nameReasons(o.Name)}
		e.st.insert(sh, o.Name, en, func(v *entry) uint64 { return e.rank(v, now) })
	}
	for _, a := range addrs[:n] {
		en.ips = addSeen(en.ips, a, now, e.cfg.MaxIPsPerName)
	}
	if o.Client.IsValid() {
		en.clients = addSeen(en.clients, o.Client.Unmap().As16(), now, e.cfg.MaxClientsPerName)
	}
	if en.minTTL == 0 || o.MinTTL < en.minTTL {
		en.minTTL = o.MinTTL
	}
	en.last = now
	en.count(now, now/e.width)
	v := e.judge(en, now)
	if e.crosses(v) {
		en.heldUntil = now + e.hold
	}
	v.Prev, en.level = en.level, v.Level
	return v
}

// maxAddrsPerObservation bounds the addresses taken from one answer; more
// are ignored (a hostile answer can hold hundreds).
const maxAddrsPerObservation = 64

func (e *Engine) ignored(a netip.Addr) bool {
	for _, p := range e.cfg.IgnoreNets {
		if p.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

// judge scores en at now without changing it. A held name stays flagged
// whatever its current evidence.
func (e *Engine) judge(en *entry, now uint32) Verdict {
	since := e.since(now)
	v := Verdict{Prev: en.level, UniqueIPs: countSince(en.ips, since), Clients: countSince(en.clients, since)}
	v.Queries, _ = en.queries(now / e.width)
	v.Score, v.Reasons = e.score(en, v.UniqueIPs, v.Clients)
	switch {
	case e.crosses(v), en.heldUntil > now:
		v.Level = LevelFlagged
	case e.candidate(v):
		v.Level = LevelSuspicious
	}
	return v
}

// candidate reports whether v passes the rule's minimums (UniqueIPCount and QueryCount).
func (e *Engine) candidate(v Verdict) bool {
	return v.UniqueIPs >= e.cfg.MinIPs && v.Queries >= e.cfg.MinQueries
}

// crosses reports whether v is a candidate scoring at or above the threshold.
func (e *Engine) crosses(v Verdict) bool {
	return e.candidate(v) && v.Score >= e.cfg.Threshold
}

// score is the seed rule's SuspicionScore.
func (e *Engine) score(en *entry, ips, clients int) (int, Reasons) {
	r := en.nameBits
	if ips >= e.cfg.ManyIPs {
		r |= ReasonManyIPs
	}
	if clients >= e.cfg.ManyClients {
		r |= ReasonManyClients
	}
	n := 0
	for x := r; x != 0; x &= x - 1 {
		n++
	}
	return n, r
}

func (e *Engine) nameReasons(name string) Reasons {
	var r Reasons
	tld, sld := tldSLD(name)
	if _, ok := e.susTLD[tld]; ok {
		r |= ReasonSuspiciousTLD
	}
	if len(sld) <= e.cfg.ShortSLD {
		r |= ReasonShortSLD
	}
	return r
}

// rank orders entries for eviction: lowest goes first. Idle entries (no
// evidence left in the window, not held) go before active ones, benign
// before suspicious before flagged, and the least recently seen first.
func (e *Engine) rank(en *entry, now uint32) uint64 {
	if en.last <= e.since(now) && en.heldUntil <= now {
		return uint64(en.last)
	}
	lvl := en.level
	if en.heldUntil > now {
		lvl = LevelFlagged
	}
	return uint64(lvl)<<32 | 1<<31 | uint64(en.last)>>1
}

// Held reports whether name is flagged and within its hold time, or
// denied, with its verdict; a held name is answered without going upstream.
// An allowed name is never held.
func (e *Engine) Held(name string) (Verdict, bool) {
	p, unix := e.policy.Load(), e.now().Unix()
	if p.allowed(name, nil, unix) {
		return Verdict{}, false
	}
	if p.deny.match(name, unix) {
		return denied, true
	}
	now := internalTime(unix)
	sh := e.st.shard(name)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	en := sh.m[name]
	if en == nil || en.heldUntil <= now {
		return Verdict{}, false
	}
	return e.judge(en, now), true
}

// Sweep drops the entries with no evidence left in the window that are not
// held, and returns how many it dropped. Call it periodically, off the
// query path.
func (e *Engine) Sweep() int {
	now := e.clock()
	since := e.since(now)
	n := 0
	e.st.each(func(_ string, en *entry) bool {
		if en.last <= since && en.heldUntil <= now {
			n++
			return false
		}
		return true
	})
	return n
}

// Len returns the number of tracked names.
func (e *Engine) Len() int { return e.st.len() }

// Evicted returns how many names were evicted to respect the cap so far.
func (e *Engine) Evicted() uint64 { return e.st.evicted.Load() }

// String describes the engine for logs.
func (e *Engine) String() string {
	return fmt.Sprintf("window=%s min_ips=%d min_queries=%d threshold=%d max_names=%d",
		e.cfg.Window, e.cfg.MinIPs, e.cfg.MinQueries, e.cfg.Threshold, e.cfg.MaxNames)
}

// Flagged returns up to limit currently flagged names, most recently seen
// first, and how many there are in all.
func (e *Engine) Flagged(limit int) (names []string, total int) {
	now := e.clock()
	type item struct {
		name string
		last uint32
	}
	var items []item
	e.st.each(func(name string, en *entry) bool {
		if en.heldUntil > now {
			items = append(items, item{name, en.last})
		}
		return true
	})
	sort.Slice(items, func(i, j int) bool { return items[i].last > items[j].last })
	for _, it := range items[:min(limit, len(items))] {
		names = append(names, it.name)
	}
	return names, len(items)
}
