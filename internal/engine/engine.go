package engine

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"math"
	"math/bits"
	"math/rand/v2"
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
	NS     []string     // name servers of the name's zone seen in the answer

	// Brief tells that the caller reads only the verdict's Level, Prev
	// and Skip: an answer repeating the name's last one is then counted
	// without being judged again when that cannot change the level (see
	// recent).
	Brief bool
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
	chains  bool // the exclusions apply to CNAME chains too (default profile)
	rows    bool // the query count counts rows, one per address, as the seed rule does
	susTLD  suffixSet
	st      *store
	domains *store     // registered-domain aggregates (default profile), or nil
	pools   *poolIndex // addresses of flagged names (default profile), or nil
	fpSeed  uint64     // of the answers' fingerprints (see addrSum)

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
		susTLD:  newSuffixSet(cfg.SuspiciousTLDs),
		st:      newStore(cfg.MaxNames),
		fpSeed:  rand.Uint64(),
	}
	if e.now == nil {
		e.now = coarseNow
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
	if n.pools != nil && e.pools != nil {
		n.pools = e.pools
	}
	if n.domains != nil && e.domains != nil {
		n.domains = e.domains
		n.domains.max.Store(int64(max(cfg.MaxNames/4, 1)))
	}
	// Names the new configuration excludes are forgotten, as SetPolicy
	// forgets the names it allows.
	n.each(func(_ scope, sh *shard, en *entry) bool {
		name := sh.name(en)
		en.nameBits = n.nameReasons(name)
		en.fingerprint = 0 // the window may have changed: the next answer is tallied
		return !n.exclude.match(name)
	})
	return n, nil
}

// scope is one of the engine's stores: exact names, or registered-domain
// aggregates, shown as "*.domain" and judged by a higher threshold.
type scope struct {
	st        *store
	prefix    string
	threshold float64
}

func (e *Engine) scopes() []scope {
	s := []scope{{e.st, "", e.threshold}}
	if e.domains != nil {
		s = append(s, scope{e.domains, "*.", e.threshold * e.cfg.Weights.Domain})
	}
	return s
}

// each calls f for every entry of every scope (see store.each).
func (e *Engine) each(f func(sc scope, sh *shard, en *entry) bool) {
	for _, sc := range e.scopes() {
		sc.st.each(func(sh *shard, en *entry) bool { return f(sc, sh, en) })
	}
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

// unixTime converts the engine's time back to unix seconds.
func unixTime(now uint32) int64 { return int64(now) + epoch }

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
	e.each(func(_ scope, sh *shard, en *entry) bool { return !p.allowed(sh.name(en), nil, unix) })
}

// Skipped reports why name, reached through chain, is never tracked, or
// SkipNone.
func (e *Engine) Skipped(name string, chain []string) Skip {
	return e.skipped(e.policy.Load(), name, chain, e.now().Unix())
}

func (e *Engine) skipped(p *Policy, name string, chain []string, unix int64) Skip {
	return cmp.Or(e.skippedName(p, name, unix), e.skippedChain(p, chain, unix))
}

// skippedName reports why name is never tracked, whatever its chain. The
// engine asks only for names it does not track yet: SetPolicy forgets the
// names it allows, Reconfigured those it excludes, and a name's allow rule
// can end but not begin without SetPolicy.
func (e *Engine) skippedName(p *Policy, name string, unix int64) Skip {
	switch {
	case p.allow.match(name, unix):
		return SkipAllowed
	case e.exclude.match(name):
		return SkipExcluded
	}
	return SkipNone
}

// skippedChain reports why an answer reaching its addresses through chain
// is not evidence: an allowed or (default profile) excluded name on it.
func (e *Engine) skippedChain(p *Policy, chain []string, unix int64) Skip {
	for _, c := range chain {
		if p.allow.match(c, unix) {
			return SkipAllowed
		}
	}
	if e.chains {
		for _, c := range chain {
			if e.exclude.match(c) {
				return SkipExcluded
			}
		}
	}
	return SkipNone
}

// denied is the verdict for a name on the deny list.
var denied = Verdict{Level: LevelFlagged, Prev: LevelFlagged, Reasons: ReasonDenied}

// maxNameLen bounds the names the engine tracks, in bytes: a DNS name is
// at most 255 octets, up to four times as many characters with escapes.
const maxNameLen = 1 << maxBlockClass

// Observe records an answer and returns the name's verdict.
func (e *Engine) Observe(o *Observation) Verdict {
	if len(o.Name) > maxNameLen {
		return Verdict{Skip: SkipExcluded} // not a DNS name
	}
	// The name itself is checked against the policy and the exclusions
	// when record meets it first; the chain, which answers may change,
	// every time.
	p, unix := e.policy.Load(), e.now().Unix()
	if e.skippedChain(p, o.Chain, unix) != SkipNone {
		// Why, in the usual order: the name's own allow wins.
		return Verdict{Skip: e.skipped(p, o.Name, o.Chain, unix)}
	}
	if p.deny.match(o.Name, unix) {
		if p.allow.match(o.Name, unix) { // an allow wins
			return Verdict{Skip: SkipAllowed}
		}
		return denied
	}
	if p.netsAllowed(o.Addrs) {
		return Verdict{Skip: SkipAllowed}
	}
	// The evidence is marked in a bit set rather than copied: a big array
	// on the stack would make every query's goroutine grow its stack.
	addrs := o.Addrs[:min(len(o.Addrs), maxAddrsPerObservation)]
	a := answer{addrs: addrs}
	var sum uint64
	for i, ip := range addrs {
		if e.evidence(ip) {
			a.evidence |= 1 << i
			sum += e.addrSum(ip)
		}
	}
	if a.evidence == 0 {
		return Verdict{Skip: SkipNoAddrs}
	}
	a.fingerprint = fingerprint(sum, len(o.NS))
	now := internalTime(unix)
	v, created, domOff := e.record(e.st, o.Name, o, &a, now, e.threshold, false)
	if v.Skip != SkipNone {
		return v
	}
	// Aggregate over the registered domain too: flux spread over random
	// subdomains shows there, and flagging it covers every subdomain.
	if e.domains == nil || domOff == noDomain {
		return v
	}
	// The domain is one of the name's parents, so the policy and the
	// exclusions that let the name through let it through too.
	domain := o.Name[domOff:]
	dv, _, _ := e.record(e.domains, domain, o, &a, now, e.threshold*e.cfg.Weights.Domain, created)
	if dv.Level == LevelFlagged && v.Level != LevelFlagged {
		dv.Reasons |= ReasonRegisteredDomain
		dv.Prev = v.Prev
		return dv
	}
	return v
}

// answer is the evidence of an observation: the addresses whose bit is
// set in evidence, and its fingerprint.
type answer struct {
	addrs       []netip.Addr
	evidence    uint64
	fingerprint uint32 // see fingerprint
}

// record adds an answer's evidence to key's entry in st and judges it,
// reporting whether the entry is new and where key's registered domain
// starts in it: noDomain when it has none other than itself, or when the
// answer repeats one already recorded there in the same second. newName
// tells a registered domain's aggregate that the answer is for a name not
// seen before. A name that is not tracked yet is checked first (see
// skippedName), under the shard's lock, against the current policy: a
// concurrent SetPolicy sweeps the shard after it.
//
// An answer with the same evidence as the entry's last one (a cache hit,
// typically) changes neither its TTL figures, which a cache counts down,
// nor, within the same second, its addresses' times: only its clients and
// query count are recorded then, and from the same client as the last
// answer, only the query count: the tally of the window is the last one;
// for a brief observation, that count is all there is to do, in the index
// slot (see repeat).
func (e *Engine) record(st *store, key string, o *Observation, a *answer, now uint32, threshold float64, newName bool) (Verdict, bool, uint8) {
	sh, k := st.locate(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if o.Brief && st == e.st {
		if v, ok := e.repeat(sh, k, o, a, now); ok {
			return v, false, noDomain
		}
	}
	en := sh.lookup(k)
	created := en == nil
	n := bits.OnesCount64(a.evidence)
	if created {
		if st == e.st {
			if s := e.skippedName(e.policy.Load(), key, unixTime(now)); s != SkipNone {
				return Verdict{Skip: s}, false, noDomain
			}
		}
		en = e.create(st, sh, k, key, n, o.MinTTL, now)
	}
	if newName {
		en.subnames = min(en.subnames+1, ^uint16(0))
	}
	same := a.fingerprint != 0 && a.fingerprint == en.fingerprint
	repeat := same && en.last == now && !newName
	names := st == e.st
	var added uint64
	if !repeat {
		added = e.recordEvidence(sh, en, o, a, names, now)
	}
	tallied := repeat
	if !same {
		if en.minTTL == 0 || o.MinTTL < en.minTTL {
			en.minTTL = o.MinTTL
		}
		en.meanTTL = (en.meanTTL*7 + o.MinTTL) / 8
		en.maxAnswer = uint8(min(max(int(en.maxAnswer), n), 255))
		en.fingerprint = a.fingerprint
		if e.rows {
			en.rows = uint8(n) // at most maxAddrsPerObservation
		}
	}
	if o.Client.IsValid() && names {
		client := o.Client.Unmap().As16()
		if c := e.clientHash(client); !repeat || c != en.lastClient {
			en.clients, _, _ = sh.addSeen(en.clients, client, now, e.cfg.MaxClientsPerName)
			en.lastClient, tallied = c, false
		}
	}
	en.last = now
	en.count(now, now/e.width)
	if !tallied {
		e.tally(sh, en, now)
	}
	v := e.judge(sh, en, now, threshold)
	if e.flagging(v, threshold) {
		en.heldUntil = now + e.hold
		st.holding(en.heldUntil)
	}
	v.HoldLeft = en.holdLeft(now)
	if names && e.pools != nil && v.Level == LevelFlagged {
		e.indexPool(sh, en, a, added, v.Prev != LevelFlagged, now)
	}
	v.Prev, en.level = en.level, v.Level
	if names {
		e.remember(sh, k, en, v, a.addrs[0].Is6(), now)
	}
	if repeat {
		return v, created, noDomain
	}
	return v, created, en.domOff
}

// recordEvidence adds the answer's addresses and name servers to en, and
// returns the addresses new to it, as bits of a.addrs. For an exact name
// (names), a new address that a flagged name's answers brought is marked
// on en (see poolIndex).
func (e *Engine) recordEvidence(sh *shard, en *entry, o *Observation, a *answer, names bool, now uint32) (added uint64) {
	for j, ip := range a.addrs {
		if a.evidence&(1<<j) == 0 {
			continue
		}
		addr := ip.Unmap().As16()
		list, i, isNew := sh.addSeen(en.ips, addr, now, e.cfg.MaxIPsPerName)
		en.ips = list
		if !isNew {
			continue
		}
		added |= 1 << j
		en.effNew = true
		asn := uint32(0)
		if e.cfg.ASN != nil {
			asn = e.cfg.ASN(ip.Unmap())
			for en.asns.len < en.ips.len {
				en.asns = sh.asns.push(en.asns, 0)
			}
			sh.asns.view(en.asns)[i] = asn
		}
		if names && e.pools != nil && e.pools.has(addr, now) {
			en.sharedMark(networkKey(addr, asn))
		}
	}
	for _, ns := range o.NS {
		en.ns, _, _ = sh.addSeen(en.ns, e.nsKey(ns), now, maxNSPerDomain)
	}
	return added
}

// indexPool puts the addresses of en, a flagged name, in the pool index
// for a window: all those of the window when it has just been flagged
// (all), else those its answer a added.
func (e *Engine) indexPool(sh *shard, en *entry, a *answer, added uint64, all bool, now uint32) {
	until := now + e.window
	add := func(addr [16]byte) {
		if e.cfg.FrontDoor == nil || !e.cfg.FrontDoor(netip.AddrFrom16(addr).Unmap()) {
			e.pools.add(addr, until)
		}
	}
	if !all {
		for j, ip := range a.addrs {
			if added&(1<<j) != 0 {
				add(ip.Unmap().As16())
			}
		}
		return
	}
	since := e.since(now)
	for _, s := range sh.seen.view(en.ips) {
		if s.last > since {
			add(s.addr)
		}
	}
}

// hashAddr hashes an address with the engine's seed; salt tells apart
// the uses.
func (e *Engine) hashAddr(a [16]byte, salt uint64) uint64 {
	hi, lo := bits.Mul64(binary.LittleEndian.Uint64(a[:8])^e.fpSeed, binary.LittleEndian.Uint64(a[8:])^salt)
	return hi ^ lo
}

// clientHash hashes a client's address for entry.lastClient. Two clients
// of the same hash answered in turn in the same second would count as
// one until either is seen again.
func (e *Engine) clientHash(a [16]byte) uint32 { return uint32(e.hashAddr(a, 0x8ebc6af09c88c6e3)) }

// addrSum hashes an address for an answer's fingerprint, a sum, so that
// the order of the addresses does not matter.
func (e *Engine) addrSum(ip netip.Addr) uint64 { return e.hashAddr(ip.As16(), 0xe7037ed1a0b428db) }

// fingerprint folds an answer's sum of addrSum into the 32 bits kept per
// entry, or returns 0, which never matches, for an answer with name
// servers (they are not in the sum).
func fingerprint(sum uint64, ns int) uint32 {
	if ns > 0 {
		return 0
	}
	return max(uint32(sum^sum>>32), 1)
}

// domainOffset returns where key's registered domain starts in it, for
// an exact name aggregated by registered domain, else noDomain.
func (e *Engine) domainOffset(st *store, key string) uint8 {
	if st != e.st || e.domains == nil {
		return noDomain
	}
	if d := registeredDomain(key); d != "" && d != key && len(key)-len(d) < noDomain {
		return uint8(len(key) - len(d))
	}
	return noDomain
}

// noDomain marks an entry whose key has no registered domain of its own.
const noDomain = 0xff

// create adds a new entry for name, of key k, to the locked shard sh of
// st. It is kept out of record, the common path, to keep that frame small.
//
//go:noinline
func (e *Engine) create(st *store, sh *shard, k key, name string, n int, ttl, now uint32) *entry {
	en := st.insert(sh, k, name, func(v *entry) uint64 { return e.rank(v, now) })
	en.ips = sh.seen.alloc(min(n, e.cfg.MaxIPsPerName))
	en.nameBits, en.meanTTL, en.domOff = e.nameReasons(name), ttl, e.domainOffset(st, name)
	return en
}

// maxNSPerDomain bounds the name servers kept per registered domain.
const maxNSPerDomain = 32

// nsKey hashes a name server name into the address-sized key kept for it.
func (e *Engine) nsKey(ns string) (k [16]byte) {
	h := maphash.String(e.st.seed, Normalize(ns))
	for i := range 8 {
		k[i] = byte(h >> (8 * i))
	}
	return k
}

// maxAddrsPerObservation bounds the addresses taken from one answer; more
// are ignored (a hostile answer can hold hundreds). Observe marks them in
// a uint64: it is 64 at most.
const maxAddrsPerObservation = 64

// evidence reports whether a counts: public and not in an ignored network.
func (e *Engine) evidence(a netip.Addr) bool {
	if !IsPublic(a) {
		return false
	}
	for _, p := range e.cfg.IgnoreNets {
		if p.Contains(a.Unmap()) {
			return false
		}
	}
	return true
}

// tally counts en's addresses and clients seen in the window ending at
// now, for judge.
func (e *Engine) tally(sh *shard, en *entry, now uint32) {
	since := e.since(now)
	en.ipsSeen = uint16(countSince(sh.seen.view(en.ips), since))
	en.clientsSeen = uint16(countSince(sh.seen.view(en.clients), since))
}

// judge scores en at now, as tallied then, without changing its evidence.
// A held name stays flagged whatever its current evidence. threshold is
// the name's or, for a registered domain's aggregate, the domain's.
func (e *Engine) judge(sh *shard, en *entry, now uint32, threshold float64) Verdict {
	since := e.since(now)
	v := Verdict{Prev: en.level, UniqueIPs: int(en.ipsSeen), Clients: int(en.clientsSeen)}
	v.Queries, _ = en.queries(now/e.width, e.width)
	switch {
	case en.subnames == 1:
		// A registered domain seen through one name only adds nothing to
		// that name's own verdict.
		return v
	case e.cfg.Profile == ProfileSeed:
		v.Score, v.Reasons = e.seedScore(en, v.UniqueIPs, v.Clients)
	case v.UniqueIPs >= e.cfg.MinIPs: // not worth the work below the minimum
		v.Score, v.Reasons = e.fluxScore(sh, en, v.UniqueIPs, since)
		v.Networks, v.Prefixes, v.Subnets = math.Round(float64(en.eff)*100)/100, int(en.p16), int(en.p24)
		if v.UniqueIPs > 1 {
			v.Diversity = math.Round(math.Log2(float64(en.eff))/math.Log2(float64(v.UniqueIPs))*100) / 100
		}
	}
	if e.pools != nil && en.sharedPool() {
		v.Reasons |= ReasonSharedPool
	}
	switch {
	case e.flagging(v, threshold), en.heldUntil > now:
		v.Level = LevelFlagged
	case e.candidate(v):
		v.Level = LevelSuspicious
	}
	return v
}

// flagging reports whether v flags its name on its own evidence, held or
// not: a candidate scoring the threshold, or addresses shared with
// flagged names (see poolIndex).
func (e *Engine) flagging(v Verdict, threshold float64) bool {
	return e.candidate(v) && v.Score >= threshold || v.Reasons&ReasonSharedPool != 0
}

// candidate reports whether v passes the rule's minimums (UniqueIPCount and QueryCount).
func (e *Engine) candidate(v Verdict) bool {
	return v.UniqueIPs >= e.cfg.MinIPs && v.Queries >= e.cfg.MinQueries
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
	now := internalTime(unix)
	if len(p.deny) == 0 && !e.st.holds(now) && (e.domains == nil || !e.domains.holds(now)) {
		return Verdict{}, false // nothing is held: the common case, kept cheap
	}
	if p.allowed(name, nil, unix) {
		return Verdict{}, false
	}
	if p.deny.match(name, unix) {
		return denied, true
	}
	v, ok, off := e.held(e.st, name, now, e.threshold)
	if ok || e.domains == nil {
		return v, ok
	}
	// The registered domain. (An allowed domain was caught above: allowed
	// covers the parents.)
	if off == noDomain {
		return Verdict{}, false
	}
	v, ok, _ = e.held(e.domains, name[off:], now, e.threshold*e.cfg.Weights.Domain)
	v.Reasons |= ReasonRegisteredDomain
	return v, ok
}

// held judges key's entry in st if it is held. It also returns where
// key's registered domain starts (see domainOffset), as the entry knows it.
func (e *Engine) held(st *store, key string, now uint32, threshold float64) (Verdict, bool, uint8) {
	sh, k := st.locate(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	en := sh.lookup(k)
	if en == nil {
		return Verdict{}, false, e.domainOffset(st, key)
	}
	if en.heldUntil <= now {
		return Verdict{}, false, en.domOff
	}
	e.tally(sh, en, now)
	v := e.judge(sh, en, now, threshold)
	v.HoldLeft = en.holdLeft(now)
	return v, true, en.domOff
}

// Sweep drops the entries with no evidence left in the window that are not
// held, and returns how many it dropped. Call it periodically, off the
// query path.
func (e *Engine) Sweep() int {
	now := e.clock()
	since := e.since(now)
	n := 0
	e.each(func(_ scope, _ *shard, en *entry) bool {
		if en.last <= since && en.heldUntil <= now {
			n++
			return false
		}
		return true
	})
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

// Evicted returns how many entries were evicted to respect the caps so far.
func (e *Engine) Evicted() uint64 {
	n := uint64(0)
	for _, sc := range e.scopes() {
		n += sc.st.evicted.Load()
	}
	return n
}

// String describes the engine for logs.
func (e *Engine) String() string {
	return fmt.Sprintf("profile=%s window=%s min_ips=%d min_queries=%d threshold=%g max_names=%d",
		e.cfg.Profile, e.cfg.Window, e.cfg.MinIPs, e.cfg.MinQueries, e.threshold, e.cfg.MaxNames)
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
	e.each(func(sc scope, sh *shard, en *entry) bool {
		if en.heldUntil > now {
			items = append(items, item{sc.prefix + sh.name(en), en.last})
		}
		return true
	})
	sort.Slice(items, func(i, j int) bool { return items[i].last > items[j].last })
	for _, it := range items[:min(limit, len(items))] {
		names = append(names, it.name)
	}
	return names, len(items)
}

// RegisteredDomain returns name's registered domain (eTLD+1), or "" when
// it has none.
func RegisteredDomain(name string) string { return registeredDomain(name) }

// ObserveNS records the name servers of a registered domain, and their
// addresses, learnt outside an answer (by resolving its NS records and
// their glue), for the NS churn and NS network diversity of the default
// profile. It does nothing for a domain not tracked yet or not aggregated.
func (e *Engine) ObserveNS(domain string, ns []string, addrs []netip.Addr) {
	if e.domains == nil || len(ns)+len(addrs) == 0 {
		return
	}
	now := e.clock()
	sh, k := e.domains.locate(domain)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	en := sh.lookup(k)
	if en == nil {
		return
	}
	for _, n := range ns[:min(len(ns), maxNSPerDomain)] {
		en.ns, _, _ = sh.addSeen(en.ns, e.nsKey(n), now, maxNSPerDomain)
	}
	for _, a := range addrs[:min(len(addrs), maxNSPerDomain)] {
		if e.evidence(a) {
			en.nsIPs, _, _ = sh.addSeen(en.nsIPs, a.Unmap().As16(), now, maxNSPerDomain)
		}
	}
	en.effNew = true
}
