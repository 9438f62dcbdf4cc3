package engine

import (
	"crypto/sha256"
	"math/bits"
	"net/netip"
)

// Observation is one answer seen by the resolver for a name.
type Observation struct {
	Name   string       // the question name, normalized (see Normalize)
	Client netip.Addr   // the querying client; invalid when unknown
	Addrs  []netip.Addr // A/AAAA addresses of the answer, through CNAME chains
	MinTTL uint32       // lowest TTL of the answer's address records
	Chain  []string     // the CNAME targets from Name to the addresses, normalized
	NS     []string     // name servers of the name's zone seen in the answer
	// Print hashes the records the observation was read from, TTLs
	// aside, 0 for none: answers of the same print make the same
	// observation, so that one repeating the name's last can be counted
	// before it is read (see Precheck).
	Print uint32

	// LevelOnly tells that the caller reads only the verdict's Level, Prev
	// and Skip: an answer repeating the name's last one is then counted
	// without being judged again when that cannot change the level (see
	// recent).
	LevelOnly bool
}

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
	rechecked := e.endRecheck(o.Name, internalTime(unix))
	if e.skippedChain(p, o.Chain, o.Addrs, unix) != SkipNone {
		// Why, in the usual order: the name's own allow wins.
		return e.skip(o.Name, e.skipped(p, o.Name, o.Chain, o.Addrs, unix), rechecked)
	}
	if deny := p.deny.match(o.Name, unix); deny || p.intel.match(o.Name, unix) {
		switch {
		case p.allow.match(o.Name, unix): // an allow wins
			return Verdict{Skip: SkipAllowed}
		case deny:
			return denied
		}
		return listed
	}
	if p.netsAllowed(o.Addrs, e.evidence) {
		return e.skip(o.Name, SkipAllowed, rechecked)
	}
	// The evidence is marked in a bit set rather than copied: a big array
	// on the stack would make every query's goroutine grow its stack.
	addrs := o.Addrs[:min(len(o.Addrs), maxAddrsPerObservation)]
	a := answer{obs: o, addrs: addrs}
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
	v, rec := e.record(e.nameScope(), o.Name, &a, now)
	// Aggregate over the registered domain too: flux spread over random
	// subdomains shows there, and flagging it covers every subdomain.
	if v.Skip != SkipNone || e.domains == nil || rec.domain == "" {
		return v
	}
	// The domain is one of the name's parents, so the policy and the
	// exclusions that let the name through let it through too.
	a.newName = rec.created
	dv, _ := e.record(e.domainScope(), rec.domain, &a, now)
	if dv.Level == LevelFlagged && v.Level != LevelFlagged {
		dv.Reasons |= ReasonRegisteredDomain
		// The name's level changes with the domain's: under a domain
		// flagged already, it was flagged already, not flagged anew.
		if dv.Prev != LevelFlagged {
			dv.Prev = v.Prev
		}
		return dv
	}
	return v
}

// answer is the evidence of an observation: the addresses whose bit is
// set in evidence, and its fingerprint.
type answer struct {
	obs         *Observation
	addrs       []netip.Addr
	evidence    uint64
	fingerprint uint32 // see fingerprint
	// newName tells a registered domain's aggregate that the answer is
	// for a name not seen before.
	newName bool
	// remote is the evidence of another replica the answer carries (see
	// Merge), held until heldUntil; nil for the engine's own answers.
	remote    *Shared
	heldUntil uint32
	// addressless: another replica's queries and clients without an
	// address, for a name tracked here only: no entry is made for them.
	addressless bool
	// owner identifies the name the answer is for (a hash of its key,
	// never 0) in the pool index (see poolIndex).
	owner uint32
}

// recorded is what record tells of an answer besides the verdict.
type recorded struct {
	created bool // the answer is the first of its key
	// domain is the key's registered domain, to aggregate the answer
	// under: "" when it has none other than itself, or when the answer
	// repeats one already recorded there in the same second.
	domain string
}

// record adds an answer's evidence to key's entry in sc and judges it.
// A name that is not tracked yet is checked first (see
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
func (e *Engine) record(sc scope, key string, a *answer, now uint32) (Verdict, recorded) {
	o, names, threshold := a.obs, sc.names(), sc.threshold
	sh, k := sc.st.locate(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if o.LevelOnly && names {
		if v, ok := e.repeat(sh, k, a, now); ok {
			return v, recorded{}
		}
	}
	if names {
		a.owner = k.owner()
	}
	en, settled := sh.lookupSettled(k)
	created := en == nil
	n := bits.OnesCount64(a.evidence)
	if created {
		if a.addressless {
			return Verdict{Skip: SkipNoAddrs}, recorded{}
		}
		if names {
			if s := e.skippedName(e.policy.Load(), key, unixTime(now)); s != SkipNone {
				return Verdict{Skip: s}, recorded{}
			}
		}
		en = e.create(sc, sh, k, key, n, o.MinTTL, now)
	}
	if a.newName && en.subnames < ^uint16(0) {
		en.subnames++
	}
	same := a.fingerprint != 0 && a.fingerprint == en.fingerprint
	repeat := same && en.last == now && !a.newName
	var news outgoing
	var added uint64
	if !repeat {
		added, news.addrs = e.recordEvidence(sh, en, o, a, names, now)
	}
	tallied := repeat
	if !same {
		e.recordShape(en, a, added != 0)
	}
	if names {
		var touched bool
		news.clients, touched = e.recordClients(sh, en, a, repeat, now)
		tallied = tallied && !touched
	}
	again := en.last == now
	en.last = now
	if a.remote != nil {
		en.countShared(now, now/e.width, a.remote.Queries)
		e.heldByFleet(sc, en, a.heldUntil)
	} else {
		en.count(now, now/e.width)
		news.queries = (1 + settled) * uint32(max(en.rows, 1)) // as counted here: rows, when counting rows
	}
	if !tallied {
		e.tally(sh, en, now)
		// Marks leave with time, by the second: the first answer of a
		// second (never tallied) counts them again; new addresses were
		// marked as they came.
		if names && en.shared|en.bad != 0 && !again {
			e.remark(sh, en, a.owner, now)
		}
	}
	v := e.judge(sc, sh, en, now, again)
	if e.flagging(en, v, threshold) {
		prev := en.heldUntil
		en.heldUntil = now + e.hold
		sc.st.holding(en.heldUntil)
		// News to the fleet when it starts, or has less than half left.
		news.hold = prev <= now || prev-now < e.hold/2
	}
	v.HoldLeft = en.holdLeft(now)
	if names && e.pools != nil && v.Level == LevelFlagged {
		e.indexPool(sh, en, a, added, v.Prev != LevelFlagged, now)
	}
	v.Prev, en.level = en.level, v.Level
	switch {
	case !names:
	case a.remote != nil:
		sh.forget(k) // the next answer is judged in full
	default:
		e.remember(sh, k, en, a, v, again, now)
	}
	if e.Sharing() && a.remote == nil && (news.hold || names && (news.addrs != 0 || int(en.ipsSeen) >= e.cfg.MinIPs)) {
		e.share(sh, k, en, news)
	}
	if repeat {
		return v, recorded{created: created}
	}
	return v, recorded{created, en.domain(key)}
}

// recordShape records what an answer a, not the same as the entry's
// last, shows besides its addresses: its TTLs, when it brought addresses
// new to the entry (fresh), its size, its fingerprint. Of another
// replica's evidence, the TTL only. An answer that brings nothing new is
// most likely a cache's, whose TTLs count down: a dual-stack name's A
// and AAAA answers from a cache, in turn, would otherwise pass for
// short-lived.
func (e *Engine) recordShape(en *entry, a *answer, fresh bool) {
	ttl := a.obs.MinTTL
	if a.remote != nil && ttl == 0 {
		return // unknown
	}
	if fresh && (en.minTTL == 0 || ttl < en.minTTL) {
		en.minTTL = ttl
	}
	if a.remote != nil {
		return
	}
	if fresh {
		en.meanTTL = (en.meanTTL*7 + ttl) / 8
	}
	v4, v6 := a.families()
	en.maxAnswer, en.maxAnswer6 = max(en.maxAnswer, v4), max(en.maxAnswer6, v6)
	en.fingerprint = a.fingerprint
	if e.rows {
		en.rows = v4 + v6 // at most maxAddrsPerObservation
	}
}

// families counts the answer's evidence addresses of each family.
func (a *answer) families() (v4, v6 uint8) {
	for i, ip := range a.addrs {
		switch {
		case a.evidence&(1<<i) == 0:
		case ip.Unmap().Is4():
			v4++
		default:
			v6++
		}
	}
	return v4, v6
}

// recordEvidence adds the answer's addresses and name servers to en, and
// returns the addresses new to it, as bits of a.addrs and as bits of
// their indexes in en.ips (see indexBit). For an exact name
// (names), a new address that a flagged name's answers brought is marked
// on en (see poolIndex), and one on the intel address list too (see
// Intel); the policy is read under the shard's lock, which SetPolicy
// takes after it swaps the policy to count the marks again.
func (e *Engine) recordEvidence(sh *shard, en *entry, o *Observation, a *answer, names bool, now uint32) (added, indexes uint64) {
	var bad *addrSet
	if names {
		bad = e.policy.Load().bad
	}
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
		indexes |= indexBit(i)
		en.networksOf = networksUnknown
		asn := uint32(0)
		if e.cfg.ASN != nil {
			asn = e.cfg.ASN(ip.Unmap())
			for en.asns.len < en.ips.len {
				en.asns = sh.asns.push(en.asns, 0)
			}
			sh.asns.view(en.asns)[i] = asn
		}
		// Spread marks are all the count is for (see marksSpread).
		if names && e.pools != nil && !marksSpread(en.shared) && e.pools.other(addr, a.owner, now) {
			markAddr(&en.sharedNet, &en.shared, netHash(networkKey(addr, asn)))
		}
		if !marksSpread(en.bad) && e.knownBad(bad, addr) {
			markAddr(&en.badNet, &en.bad, netHash8(networkKey(addr, asn)))
		}
	}
	for _, ns := range o.NS {
		en.ns, _, _ = sh.addSeen(en.ns, nsKey(ns), now, maxNSPerDomain)
	}
	return added, indexes
}

// recordClients adds the answer's client, or the clients another replica
// shared, to en, an exact name's entry, and returns the bits of the
// indexes of those new to it (see indexBit), and whether it touched the
// list. An answer repeating the last one from the same client touches
// nothing.
func (e *Engine) recordClients(sh *shard, en *entry, a *answer, repeat bool, now uint32) (news uint64, touched bool) {
	if a.remote != nil {
		for _, c := range a.remote.Clients[:min(len(a.remote.Clients), maxSharedList)] {
			if c.IsValid() {
				en.clients, _, _ = sh.addSeen(en.clients, c.Unmap().As16(), now, e.cfg.MaxClientsPerName)
				touched = true
			}
		}
		return 0, touched
	}
	if !a.obs.Client.IsValid() {
		return 0, false
	}
	c := e.clientHash(a.obs.Client)
	if repeat && c == en.lastClient {
		return 0, false
	}
	client := a.obs.Client.Unmap().As16()
	list, i, isNew := sh.addSeen(en.clients, client, now, e.cfg.MaxClientsPerName)
	en.clients, en.lastClient = list, c
	if isNew {
		news = indexBit(i)
	}
	return news, true
}

// indexPool puts the addresses of en, a flagged name, in the pool index
// for a window: all those of the window when it has just been flagged
// (all), else those its answer a added.
func (e *Engine) indexPool(sh *shard, en *entry, a *answer, added uint64, all bool, now uint32) {
	if all {
		e.indexWindow(sh, en, a.owner, now)
		return
	}
	for j, ip := range a.addrs {
		if added&(1<<j) != 0 {
			e.poolAdd(ip.Unmap().As16(), a.owner, now)
		}
	}
}

// indexWindow puts the addresses of en, the flagged name owner (see
// answer.owner) in the locked shard sh, seen in the window, in the pool
// index.
func (e *Engine) indexWindow(sh *shard, en *entry, owner, now uint32) {
	since := e.since(now)
	for _, s := range sh.seen.view(en.ips) {
		if s.last > since {
			e.poolAdd(s.addr, owner, now)
		}
	}
}

// poolAdd puts addr, of the flagged name owner, in the pool index for a
// window, unless it is a front door's.
func (e *Engine) poolAdd(addr [16]byte, owner, now uint32) {
	if e.cfg.FrontDoor == nil || !e.cfg.FrontDoor(netip.AddrFrom16(addr).Unmap()) {
		e.pools.add(addr, now+e.window, owner, now)
	}
}

// hashAddr hashes an address with the engine's seed; salt tells apart
// the uses.
func (e *Engine) hashAddr(ip netip.Addr, salt uint64) uint64 {
	w0, w1 := addrWords(ip)
	hi, lo := bits.Mul64(w0^e.fpSeed, w1^salt)
	return hi ^ lo
}

// clientHash hashes a client's address for entry.lastClient. Two clients
// of the same hash answered in turn in the same second would count as
// one until either is seen again.
func (e *Engine) clientHash(client netip.Addr) uint32 {
	return uint32(e.hashAddr(client.Unmap(), 0x8ebc6af09c88c6e3))
}

// addrSum hashes an address for an answer's fingerprint, a sum, so that
// the order of the addresses does not matter.
func (e *Engine) addrSum(ip netip.Addr) uint64 { return e.hashAddr(ip, 0xe7037ed1a0b428db) }

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
// an exact name of sc aggregated by registered domain, else noDomain.
func (e *Engine) domainOffset(sc scope, key string) uint8 {
	if !sc.names() || e.domains == nil {
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
// sc. It is kept out of record, the common path, to keep that frame small.
//
//go:noinline
func (e *Engine) create(sc scope, sh *shard, k key, name string, n int, ttl, now uint32) *entry {
	en := sc.st.insert(sh, k, name, func(v *entry) uint64 { return e.rank(v, now) })
	en.ips = sh.seen.alloc(min(n, e.cfg.MaxIPsPerName))
	en.nameBits, en.meanTTL, en.domOff = e.nameReasons(name), ttl, e.domainOffset(sc, name)
	return en
}

// maxNSPerDomain bounds the name servers kept per registered domain.
const maxNSPerDomain = 32

// nsKey hashes a name server name into the address-sized key kept for it.
// The hash is the same in every process, so that a restart restores the
// same name servers, and one no zone can make collide to hide its rotation.
func nsKey(ns string) (k [16]byte) {
	h := sha256.Sum256([]byte(Normalize(ns)))
	return [16]byte(h[:16])
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

// RegisteredDomain returns name's registered domain (eTLD+1), or "" when
// it has none.
func RegisteredDomain(name string) string { return registeredDomain(name) }

// ObserveNS records the name servers of a registered domain, and their
// addresses, learnt outside an answer (by resolving its NS records and
// their glue), for the NS churn and NS network diversity of the default
// profile: on the domain's aggregate, and on names, the exact names under
// it that asked, whose next answers are judged in full. Entries not
// tracked are left alone.
func (e *Engine) ObserveNS(domain string, names, ns []string, addrs []netip.Addr) {
	if len(ns)+len(addrs) == 0 {
		return
	}
	now := e.clock()
	if e.domains != nil {
		e.recordNS(e.domainScope(), domain, ns, addrs, now)
	}
	for _, name := range names {
		e.recordNS(e.nameScope(), Normalize(name), ns, addrs, now)
	}
}

// recordNS records name servers ns and their addresses addrs on the
// entry of name in sc, if it is tracked.
func (e *Engine) recordNS(sc scope, name string, ns []string, addrs []netip.Addr, now uint32) {
	sh, k := sc.st.locate(name)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	en := sh.lookup(k)
	if en == nil {
		return
	}
	for _, n := range ns[:min(len(ns), maxNSPerDomain)] {
		en.ns, _, _ = sh.addSeen(en.ns, nsKey(n), now, maxNSPerDomain)
	}
	for _, a := range addrs[:min(len(addrs), maxNSPerDomain)] {
		if e.evidence(a) {
			en.nsIPs, _, _ = sh.addSeen(en.nsIPs, a.Unmap().As16(), now, maxNSPerDomain)
		}
	}
	en.networksOf = networksUnknown
	sh.forget(k)
}
