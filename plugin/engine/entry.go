package engine

import "net/netip"

// buckets is the number of query-count buckets a window is split into; one
// more is kept so that the oldest bucket can straddle the window's edge.
const buckets = 12

// seen is an address (IP or client) with the last time it was seen, in
// seconds since the engine's epoch.
type seen struct {
	addr [16]byte
	last uint32
}

// entry is the state kept for one name.
type entry struct {
	ips     []seen
	clients []seen

	// Query counts per bucket of window/buckets seconds; firsts holds the
	// first observation time in each bucket (+1, so 0 means empty).
	counts [buckets + 1]uint32
	firsts [buckets + 1]uint32
	head   uint32 // bucket number of the newest bucket

	last      uint32 // last observation
	heldUntil uint32 // flagged until then
	minTTL    uint32
	meanTTL   uint32 // exponentially weighted mean of the answers' TTLs
	level     Level
	maxAnswer uint8   // most evidence addresses seen in one answer
	subnames  uint16  // names seen under a registered domain; 0 for exact names
	nameBits  Reasons // name-derived reasons, computed once
	ns        []seen  // name servers (hashed) seen for a registered domain
}

// addSeen records a in list at time now. A full list drops its stalest
// entry (expired ones first), so the list always holds the freshest values.
func addSeen(list []seen, a [16]byte, now uint32, max int) []seen {
	for i := range list {
		if list[i].addr == a {
			list[i].last = now
			return list
		}
	}
	if len(list) < max {
		return append(list, seen{addr: a, last: now})
	}
	old := 0
	for i := range list {
		if list[i].last < list[old].last {
			old = i
		}
	}
	list[old] = seen{addr: a, last: now}
	return list
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

// count adds one query at time now in bucket n. A clock that steps back
// counts into the newest bucket.
func (e *entry) count(now, n uint32) {
	if n > e.head {
		for k := e.head + 1; k <= n && k <= e.head+buckets+1; k++ {
			e.counts[k%(buckets+1)] = 0
			e.firsts[k%(buckets+1)] = 0
		}
		e.head = n
	}
	i := e.head % (buckets + 1)
	if e.counts[i] == 0 {
		e.firsts[i] = now + 1
	}
	if e.counts[i] < ^uint32(0) {
		e.counts[i]++
	}
}

// queries returns the query count and first-seen time over the buckets that
// overlap the window ending in bucket n (first is 0 when there are none).
func (e *entry) queries(n uint32) (total int, first uint32) {
	for k := uint32(0); k <= buckets; k++ {
		b := e.head - k
		if b > e.head || b+buckets < n { // wrapped below zero, or outside the window
			break
		}
		i := b % (buckets + 1)
		if e.counts[i] == 0 {
			continue
		}
		total += int(e.counts[i])
		if f := e.firsts[i] - 1; first == 0 || f < first {
			first = f
		}
	}
	return total, first
}
