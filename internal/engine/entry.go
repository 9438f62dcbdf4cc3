package engine

import (
	"encoding/binary"
	"net/netip"
	"time"
)

// buckets is the number of query-count buckets a window is split into; one
// more is kept so that the oldest bucket can straddle the window's edge.
const buckets = 12

// seen is an address (IP or client) with the last time it was seen, in
// seconds since the engine's epoch.
type seen struct {
	addr [16]byte
	last uint32
}

// entry is the state kept for one name. It holds no pointers: its name
// and lists are blocks of its shard's slabs. Its first 88 bytes are what
// an answer repeating the name's last one reads and writes when it is
// judged again (see recent for when it is not); entries are
// 160 bytes, so they start at 0 or 32 bytes into a cache line and those
// fields span two lines.
type entry struct {
	fingerprint uint32 // of the last answer's evidence (see fingerprint)
	last        uint32 // last observation
	lastClient  uint32 // hash of the last observation's client (see clientHash)
	heldUntil   uint32 // flagged until then

	// The tally of the window at last: addresses and clients seen.
	ipsSeen, clientsSeen uint16

	subnames uint16 // names seen under a registered domain; 0 for exact names
	level    Level
	domOff   uint8   // where the key's registered domain starts, or noDomain
	nameBits Reasons // name-derived reasons, computed once

	// Query counts per bucket of window/buckets seconds.
	head   uint32 // bucket number of the newest bucket
	first  uint32 // first observation
	counts [buckets + 1]uint32

	name         block // in the shard's names
	ips, clients block // in the shard's seen
	ns           block // name servers (hashed) seen for a registered domain
	nsIPs        block // their addresses, when resolved (resolve_ns)
	asns         block // in the shard's asns: the ASN of each of ips, when an ASN database is configured

	minTTL    uint32
	meanTTL   uint32 // exponentially weighted mean of the answers' TTLs
	maxAnswer uint8  // most IPv4 evidence addresses seen in one answer (see largestAnswer)
	rows      uint8  // what an answer like the last adds to the query count: 1, or its addresses when counting rows

	// Fields in an order that packs them. Addresses its answers brought
	// of flagged names (see poolIndex) and on the intel address list (see
	// Intel), counted by markAddr; the effective prefixes of ips, cached:
	// recomputed when an address is added (networksOf is then
	// networksUnknown) or the count in the window changes.
	sharedNet  uint16
	networksOf uint16 // the addresses in the window networks was computed for
	shared     uint8
	badNet     uint8 // narrower than sharedNet, to keep the entry's size
	bad        uint8
	maxAnswer6 uint8   // most IPv6 evidence addresses seen in one answer
	p16, p24   uint8   // distinct /16 and /24 (IPv6: /32 and /48) prefixes
	networks   float32 // effective networks (see effectiveNetworks)
}

// networksUnknown is an entry's networksOf when its networks are to be
// computed again: more addresses than a list holds.
const networksUnknown = ^uint16(0)

// largestAnswer is the most evidence addresses an answer of each family
// held, added up: a name answered A and AAAA shows both sets, and its
// addresses rotate only beyond what both hold.
func (en *entry) largestAnswer() int { return int(en.maxAnswer) + int(en.maxAnswer6) }

// addSeen records a in the list b of the shard's seen at time now, and
// returns the list. A full list (max values) drops its stalest value
// (expired ones first), so the list always holds the freshest values. It
// also returns a's index and whether a is new to the list.
func (sh *shard) addSeen(b block, a [16]byte, now uint32, max int) (block, int, bool) {
	list := sh.seen.view(b)
	old, oldest := 0, ^uint32(0) // the stalest value, found on the way
	// Compared a word at a time: == on [16]byte calls runtime.memequal128.
	a0, a1 := binary.LittleEndian.Uint64(a[:8]), binary.LittleEndian.Uint64(a[8:])
	for i := range list {
		s := &list[i]
		if binary.LittleEndian.Uint64(s.addr[:8]) == a0 && binary.LittleEndian.Uint64(s.addr[8:]) == a1 {
			s.last = now
			return b, i, false
		}
		if s.last < oldest {
			old, oldest = i, s.last
		}
	}
	if len(list) < max {
		return sh.seen.push(b, seen{addr: a, last: now}), len(list), true
	}
	list[old] = seen{addr: a, last: now}
	return b, old, true
}

// countSince counts the values seen after since.
func countSince(list []seen, since uint32) int {
	n := 0
	for i := range list {
		if list[i].last > since {
			n++
		}
	}
	return n
}

// stringsSince renders the values seen after since, in insertion order.
func stringsSince(list []seen, since uint32) []string {
	out := make([]string, 0, len(list))
	for i := range list {
		if list[i].last > since {
			out = append(out, netip.AddrFrom16(list[i].addr).Unmap().String())
		}
	}
	return out
}

// count adds an answer like the last (e.rows queries) at time now in
// bucket n. A clock that steps back counts into the newest bucket.
func (e *entry) count(now, n uint32) {
	e.advance(now, n)
	e.addToNewest(1)
}

// countShared adds at time now in bucket n the queries another replica
// counted, in its own units (see Engine.Merge).
func (e *entry) countShared(now, n, queries uint32) {
	e.advance(now, n)
	i := e.head % (buckets + 1)
	e.counts[i] += min(queries, ^uint32(0)-e.counts[i])
}

// advance makes bucket n the newest, at time now. A newest bucket more
// than the window ahead of n is numbered in other units (another window's,
// by the engine a reload replaces while it still serves): the counts
// restart.
func (e *entry) advance(now, n uint32) {
	if e.head > n+buckets {
		e.counts, e.head = [buckets + 1]uint32{}, n
	}
	if n > e.head {
		for k := e.head + 1; k <= n && k <= e.head+buckets+1; k++ {
			e.counts[k%(buckets+1)] = 0
		}
		e.head = n
	}
	if e.first == 0 {
		e.first = now
	}
}

// addToNewest adds n answers like the last to the newest bucket, up to its
// limit: count's one, or the answers that repeated the one recorded last,
// in its second (see recent).
func (e *entry) addToNewest(n uint32) {
	i := e.head % (buckets + 1)
	e.counts[i] += min(n*uint32(max(e.rows, 1)), ^uint32(0)-e.counts[i])
}

// queries returns the query count over the buckets of width seconds that
// overlap the window ending in bucket n, and the first-seen time: the
// first observation, or once that has left the window the start of the
// oldest bucket still counted (0 when there is none).
func (e *entry) queries(n, width uint32) (total int, first uint32) {
	oldest := uint32(0)
	for k := uint32(0); k <= buckets; k++ {
		b := e.head - k
		if b > e.head || b+buckets < n { // wrapped below zero, or outside the window
			break
		}
		if b > n { // ahead of n: numbered in other units (see advance)
			continue
		}
		if c := e.counts[b%(buckets+1)]; c > 0 {
			total += int(c)
			oldest = b
		}
	}
	if total == 0 {
		return 0, 0
	}
	return total, max(e.first, oldest*width)
}

// domain returns the registered domain of key, e's key, to aggregate its
// answers under: "" when it has none other than itself (see domainOffset).
func (e *entry) domain(key string) string {
	if e.domOff == noDomain || int(e.domOff) > len(key) {
		return ""
	}
	return key[e.domOff:]
}

// holdLeft returns how long e stays held after now, 0 when it is not.
func (e *entry) holdLeft(now uint32) time.Duration {
	if e.heldUntil <= now {
		return 0
	}
	return time.Duration(e.heldUntil-now) * time.Second
}
