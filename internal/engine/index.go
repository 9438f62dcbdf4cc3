package engine

import (
	"sync/atomic"
	"unsafe"
)

// index maps the hashes of a shard's names to their entries: open
// addressing with linear probing over one flat, pointer-free array. A
// lookup reads the one slot that holds the hash and the check, where a Go
// map reads its group's control word, then a slot, then the name to
// compare: on the query path each is a cache miss.
type index struct {
	mem   *arena
	slots []slot // a power of two of them, at most maxLoadNum/maxLoadDen used, in mem
	n     int

	// The slots' address and their number less one, set as slots is, for
	// slotAddr, which reads them without the shard's lock.
	base, mask atomic.Uintptr
}

// slot is one position of an index: a name's hash and check, its entry's
// offset plus one (0 for an empty slot), and the name's last answer, for
// the answers that repeat it.
type slot struct {
	hash   uint64
	ref    uint32
	check  uint32
	recent recent
}

// key is a name's 96-bit hash: hash picks its shard and its index slot,
// check tells apart two names of the same hash. Two names whose 96 bits
// are the same share an entry: with the store's random seeds, a chance of
// about 2⁻⁹⁶ per pair, which no one outside the process can aim at.
type key struct {
	hash  uint64
	check uint32
}

// owner identifies the key's name in the pool index (see answer.owner).
func (k key) owner() uint32 { return uint32(k.hash) | 1 }

// minIndexSlots is the size of a shard's index when it gets its first
// name: a page of them.
const minIndexSlots = 128

// maxLoadNum/maxLoadDen is the share of an index's slots in use past
// which it doubles. Over many names a lookup misses the CPU's caches
// however full the index; the fuller it is, the less memory it spans and
// the more often its slot is cached. The longer probes that come with it
// mostly stay in the home slot's line, or run on to the next: two slots
// share a line, and the probes follow one another in memory.
const maxLoadNum, maxLoadDen = 7, 8

// home returns the slot where the search for hash h starts. The low bits
// of h picked the shard, so they are the same for all its names.
func (x *index) home(h uint64) int { return int(h>>shardBits) & (len(x.slots) - 1) }

// find returns the position of hash h's slot, or of the empty slot that
// ends the search for it, and whether h is there.
func (x *index) find(h uint64) (int, bool) {
	mask := len(x.slots) - 1
	for i := x.home(h); ; i = (i + 1) & mask {
		if s := &x.slots[i]; s.ref == 0 || s.hash == h {
			return i, s.ref != 0
		}
	}
}

// slotOf returns hash h's slot, whatever its check, or nil.
func (x *index) slotOf(h uint64) *slot {
	if x.n == 0 {
		return nil
	}
	if i, ok := x.find(h); ok {
		return &x.slots[i]
	}
	return nil
}

// get returns k's slot, or nil.
func (x *index) get(k key) *slot {
	if s := x.slotOf(k.hash); s != nil && s.check == k.check {
		return s
	}
	return nil
}

// at returns the offset of the entry kept under hash h, whatever its
// check: an entry that a new name of the same hash replaces.
func (x *index) at(h uint64) (uint32, bool) {
	if s := x.slotOf(h); s != nil {
		return s.ref - 1, true
	}
	return 0, false
}

// put maps k to the entry at off, replacing what its hash mapped to.
func (x *index) put(k key, off uint32) {
	if (x.n+1)*maxLoadDen > len(x.slots)*maxLoadNum {
		x.grow()
	}
	i, ok := x.find(k.hash)
	if !ok {
		x.n++
	}
	x.slots[i] = slot{hash: k.hash, ref: off + 1, check: k.check}
}

// grow doubles the slots and puts the used ones back.
func (x *index) grow() {
	old := x.slots
	x.slots = allocOf[slot](x.mem, max(2*len(old), minIndexSlots))
	for _, s := range old {
		if s.ref != 0 {
			i, _ := x.find(s.hash)
			x.slots[i] = s
		}
	}
	releaseOf(x.mem, old)
	x.base.Store(uintptr(unsafe.Pointer(unsafe.SliceData(x.slots))))
	x.mask.Store(uintptr(len(x.slots) - 1))
}

// slotAddr returns the address of the home slot of hash h, or 0 before
// the index has any, without the shard's lock: the slots may be given back
// by a grow meanwhile, which only a prefetch, that never faults, may read.
func (x *index) slotAddr(h uint64) uintptr {
	base := x.base.Load()
	if base == 0 {
		return 0
	}
	return base + (uintptr(h>>shardBits)&x.mask.Load())*unsafe.Sizeof(slot{})
}

// delete removes hash h, moving back the slots after it that would no
// longer be found (no tombstones: searches stay short as names churn).
func (x *index) delete(h uint64) {
	if x.n == 0 {
		return
	}
	i, ok := x.find(h)
	if !ok {
		return
	}
	mask := len(x.slots) - 1
	for j := (i + 1) & mask; x.slots[j].ref != 0; j = (j + 1) & mask {
		// The slot at j may fill the hole at i unless its home lies
		// cyclically in (i, j].
		if home := x.home(x.slots[j].hash); (j-home)&mask >= (j-i)&mask {
			x.slots[i] = x.slots[j]
			i = j
		}
	}
	x.slots[i] = slot{}
	x.n--
}

// scan calls f for the entry offsets of the index, from the slot at start
// (any number: it wraps) round to it, until f returns false.
func (x *index) scan(start uint64, f func(off uint32) bool) {
	mask := len(x.slots) - 1
	first := int(start & uint64(mask))
	for k := range x.slots {
		if s := x.slots[(first+k)&mask]; s.ref != 0 && !f(s.ref-1) {
			return
		}
	}
}
