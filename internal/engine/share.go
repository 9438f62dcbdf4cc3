package engine

import (
	"errors"
	"net/netip"
	"time"
)

// Shared is what one replica of a fleet tells the others of a name: the
// evidence it saw since it last told them, and the name's hold. A fleet
// detects on the union of its replicas' answers and clients, and every
// replica blocks what any of them flagged.
type Shared struct {
	// Name is an exact name, or "*." and a registered domain, whose
	// aggregate is held (no evidence: each replica aggregates the
	// evidence of the names it merges).
	Name      string
	Addrs     []netip.Addr // addresses new to the replica
	Clients   []netip.Addr // clients new to it
	Queries   uint32       // queries it counted
	MinTTL    uint32       // lowest TTL it saw; 0 for unknown
	HeldUntil time.Time    // the end of its hold; zero when not held
}

// maxSharedList bounds the addresses and the clients of one Shared that
// Merge takes; more are ignored.
const maxSharedList = maxAddrsPerObservation

// outgoing is an entry's evidence not yet shared: bits of the indexes of
// its addresses and clients new since (bit 63 for the indexes from 63 up,
// for which the addresses seen since the last Outgoing are sent), its
// queries, and whether its hold is news.
type outgoing struct {
	addrs, clients uint64
	queries        uint32
	hold           bool
}

// indexBit is the bit of list index i in an outgoing's masks.
func indexBit(i int) uint64 { return 1 << min(i, 63) }

// share queues news of en, of key k in sh, for Outgoing. A name is shared
// when an answer brings addresses new to it, with the queries and clients
// since, and at every answer while it has MinIPs addresses or more: below,
// queries and clients change no replica's verdict. Its hold is shared
// when it starts, and again when it has less than half of its time left. The queue of a shard is bounded by its
// entries, which it names once each.
func (e *Engine) share(sh *shard, k key, en *entry, o outgoing) {
	if sh.out == nil {
		sh.out = make(map[key]outgoing)
	}
	p := sh.out[k]
	p.addrs |= o.addrs
	p.clients |= o.clients
	p.queries = uint32(min(uint64(p.queries)+uint64(o.queries), 1<<32-1))
	p.hold = p.hold || o.hold
	sh.out[k] = p
	if o.hold {
		select {
		case e.holds <- struct{}{}:
		default:
		}
	}
}

// Sharing reports whether the engine queues what it sees for a fleet
// (Config.Share).
func (e *Engine) Sharing() bool { return e.holds != nil }

// Holds signals that a hold was queued: a fleet sends it at once rather
// than with the next batch of evidence.
func (e *Engine) Holds() <-chan struct{} { return e.holds }

// Outgoing takes up to limit names from what the engine queued to share
// since it was last called; the rest waits for the next call. Holds come
// first, so that a flood of evidence never delays one.
// Each call starts where the last one stopped, so that a flood of news
// that fills the limit delays every shard alike rather than starving the
// last ones.
func (e *Engine) Outgoing(limit int) []Shared {
	now := e.clock()
	var out []Shared
	start := int(e.outgoingFrom.Load())
	for _, holds := range []bool{true, false} {
		for _, sc := range e.scopes() {
			for j := range shards {
				if len(out) >= limit {
					e.outgoingFrom.Store(uint32((start + j) % shards))
					return out
				}
				out = e.drain(sc, &sc.st.shards[(start+j)%shards], holds, limit-len(out), now, out)
			}
		}
	}
	return out
}

// drain appends to out up to limit of the names queued in sh, the holds
// only when holds is set.
func (e *Engine) drain(sc scope, sh *shard, holds bool, limit int, now uint32, out []Shared) []Shared {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	since := sh.shared
	if !holds {
		sh.shared = now
	}
	for k, o := range sh.out {
		if limit == 0 {
			break
		}
		if holds && !o.hold {
			continue
		}
		delete(sh.out, k)
		en := sh.lookup(k)
		if en == nil || !sc.names() && en.heldUntil <= now {
			continue // evicted since, or a registered domain's hold over
		}
		s := Shared{Name: sc.prefix + sh.name(en), Queries: o.queries, MinTTL: en.minTTL}
		if en.heldUntil > now {
			s.HeldUntil = e.time(en.heldUntil)
		}
		if sc.names() {
			s.Addrs = sharedAddrs(sh.seen.view(en.ips), o.addrs, since)
			s.Clients = sharedAddrs(sh.seen.view(en.clients), o.clients, since)
		}
		out = append(out, s)
		limit--
	}
	return out
}

// sharedAddrs returns the values of list whose index bits are set, and
// those from index 63 up seen after since when bit 63 is.
func sharedAddrs(list []seen, bits uint64, since uint32) []netip.Addr {
	var out []netip.Addr
	for i, s := range list {
		if bits&indexBit(i) != 0 && (i < 63 || s.last > since) {
			out = append(out, netip.AddrFrom16(s.addr).Unmap())
		}
	}
	return out
}

// ErrNotShared is Merge's error for what no replica would have sent.
var ErrNotShared = errors.New("not a shared name")

// Merge adds what another replica shared of a name, and returns the
// name's verdict. Its evidence counts as the engine's own answers would,
// and the name is held until the replica's hold ends at least; an allowed
// or excluded name is ignored (Verdict.Skip), as Observe ignores it. What
// Merge takes is never shared again.
func (e *Engine) Merge(s *Shared) (Verdict, error) {
	name, domain := s.Name, false
	if len(name) > 2 && name[:2] == "*." {
		name, domain = name[2:], true
	}
	if name == "" || len(name) > maxNameLen || name != Normalize(name) {
		return Verdict{}, ErrNotShared
	}
	p, unix := e.policy.Load(), e.now().Unix()
	if sk := e.skippedName(p, name, unix); sk != SkipNone {
		return Verdict{Skip: sk}, nil
	}
	now := internalTime(unix)
	until := uint32(0)
	if !s.HeldUntil.IsZero() {
		until = min(internalTime(s.HeldUntil.Unix()), now+e.hold)
	}
	if domain {
		if e.domains == nil || until <= now || registeredDomain(name) != name {
			return Verdict{}, ErrNotShared
		}
		return e.holdShared(e.domainScope(), name, until, now), nil
	}
	o := Observation{Name: name, MinTTL: s.MinTTL}
	a := answer{obs: &o, remote: s}
	for _, ip := range s.Addrs[:min(len(s.Addrs), maxSharedList)] {
		if e.evidence(ip) {
			a.evidence |= 1 << len(a.addrs)
			a.addrs = append(a.addrs, ip)
		}
	}
	// Without an address or a hold, the share still counts queries and
	// clients: those of answers that brought no new address (a name's
	// fixed set, or cache hits), for a name tracked here already.
	a.addressless = a.evidence == 0 && until <= now
	a.heldUntil = until
	v, rec := e.record(e.nameScope(), name, &a, now)
	if v.Skip != SkipNone || e.domains == nil || rec.domain == "" || a.evidence == 0 {
		return v, nil
	}
	a.newName, a.heldUntil = rec.created, 0
	e.record(e.domainScope(), rec.domain, &a, now)
	return v, nil
}

// holdShared holds key's entry in sc until until, creating it if need be.
func (e *Engine) holdShared(sc scope, key string, until, now uint32) Verdict {
	sh, k := sc.st.locate(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	en := sh.lookup(k)
	if en == nil {
		en = e.create(sc, sh, k, key, 0, 0, now)
		en.last = now
	}
	e.heldByFleet(sc, en, until)
	v := e.judge(sc, sh, en, now, false)
	v.Prev, en.level = en.level, v.Level
	v.HoldLeft = en.holdLeft(now)
	return v
}

// heldByFleet holds en, of sc, until until at least, for another replica.
func (e *Engine) heldByFleet(sc scope, en *entry, until uint32) {
	if until > en.heldUntil {
		en.heldUntil = until
		en.nameBits |= ReasonFleet
		sc.st.holding(until)
	}
}
