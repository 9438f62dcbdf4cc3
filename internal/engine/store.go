package engine

import (
	"hash/maphash"
	"runtime"
	"sync"
	"sync/atomic"
)

// shards is the number of independently locked parts of the store; a power
// of two so that a hash picks one with a mask.
const (
	shardBits = 6
	shards    = 1 << shardBits
)

// evictSample is how many entries a full shard looks at to pick a victim.
const evictSample = 8

// rankFlagged is the lowest eviction rank of a flagged entry: rank orders
// entries by level first, so a flagged name is evicted only when the shard
// holds nothing else.
const rankFlagged = uint64(LevelFlagged) << 33

// store maps names to entries in shards, each with its own lock. The cap
// is global: an insert into a full store evicts from the inserting shard,
// or from another when it has none.
type store struct {
	mem     *arena       // of the shards' slabs and indexes
	seed    maphash.Seed // of the names' hashes
	check   maphash.Seed // of their checks (see key)
	shards  [shards]shard
	max     atomic.Int64
	count   atomic.Int64
	evicted atomic.Uint64
	held    atomic.Uint32 // the latest heldUntil of an entry: none is held from then on
}

// holding notes that an entry is held until until.
func (s *store) holding(until uint32) {
	for old := s.held.Load(); until > old && !s.held.CompareAndSwap(old, until); old = s.held.Load() {
	}
}

// holds reports whether an entry may be held at now.
func (s *store) holds(now uint32) bool { return s.held.Load() > now }

// shard holds its entries and all their variable-length parts in
// pointer-free memory: an index from name hash to entry and slabs for the
// entries, their lists and their names. The garbage collector has nothing
// to scan in it, whatever the number of names.
type shard struct {
	mu      sync.Mutex
	index   index        // name key → offset in entries
	entries slab[entry]  // in blocks of one
	seen    slab[seen]   // ips, clients, ns and nsIPs of the entries
	asns    slab[uint32] // asns of the entries
	names   slab[byte]   // names of the entries

	// What to share with a fleet (see Engine.share), and when the
	// evidence was last taken from it.
	out    map[key]outgoing
	shared uint32
}

// Chunk sizes of a shard's slabs (log2 of elements), whole pages: 40 KiB
// of entries (blocks of one), 20 KiB of addresses, 4 KiB of ASNs and of
// names (blocks of up to 1,024).
const (
	entryChunk = 8
	listChunk  = 10
	nameChunk  = 12
)

// newStore returns an empty store for up to maxNames entries. Its memory
// is an arena outside the Go heap, unmapped once the store is unreachable.
func newStore(maxNames int) *store {
	mem := newArena()
	s := &store{mem: mem, seed: maphash.MakeSeed(), check: maphash.MakeSeed()}
	s.max.Store(int64(maxNames))
	for i := range s.shards {
		sh := &s.shards[i]
		sh.index.mem = mem
		sh.entries, sh.seen = newSlab[entry](mem, entryChunk), newSlab[seen](mem, listChunk)
		sh.asns, sh.names = newSlab[uint32](mem, listChunk), newSlab[byte](mem, nameChunk)
	}
	runtime.AddCleanup(s, (*arena).freeAll, mem)
	return s
}

// locate returns name's shard and key.
func (s *store) locate(name string) (*shard, key) {
	k := key{hash: maphash.String(s.seed, name), check: uint32(maphash.String(s.check, name))}
	return &s.shards[k.hash&(shards-1)], k
}

// lookup returns the entry of the name of key k in the locked shard, or
// nil, with the repeats its slot holds counted in. The entry is valid
// until the shard is unlocked or next inserts.
func (sh *shard) lookup(k key) *entry {
	en, _ := sh.lookupSettled(k)
	return en
}

// lookupSettled is lookup that also returns how many repeats it counted.
func (sh *shard) lookupSettled(k key) (*entry, uint32) {
	s := sh.index.get(k)
	if s == nil {
		return nil, 0
	}
	en := sh.at(s.ref - 1)
	return en, s.recent.settle(sh, en)
}

// forget drops the last answer kept in k's slot (see remember), so that
// the next answer is judged in full.
func (sh *shard) forget(k key) {
	if s := sh.index.get(k); s != nil {
		s.recent = recent{}
	}
}

// at returns the entry at offset i.
func (sh *shard) at(i uint32) *entry { return &sh.entries.view(block{off: i, len: 1, cap: 1})[0] }

// name returns en's name.
func (sh *shard) name(en *entry) string { return string(sh.names.view(en.name)) }

// insert adds a new, empty entry for name of key k to the locked shard
// sh, evicting first, when the store is full, the least valuable of a few
// entries (see evict), and returns it. Any entry under the same hash,
// another name, is replaced.
func (s *store) insert(sh *shard, k key, name string, rank func(*entry) uint64) *entry {
	if victim, taken := sh.index.at(k.hash); taken {
		s.remove(sh, victim)
		s.evicted.Add(1)
	}
	// Over the cap (lowered by a reload, or passed by concurrent inserts
	// into other shards), an insert into a shard above its share of the
	// cap evicts one more than it adds: the shards come back evenly.
	evictions := 1
	if int64(sh.index.n) > s.max.Load()/shards {
		evictions = 2
	}
	for n := range evictions {
		if s.count.Load() < s.max.Load() || !s.evict(sh, k.check+uint32(n), rank) {
			break
		}
	}
	i := sh.entries.alloc(1).off
	nb := sh.names.alloc(len(name))
	nb.len = uint16(len(name))
	copy(sh.names.view(nb), name)
	en := sh.at(i)
	*en = entry{name: nb}
	sh.index.put(k, i)
	s.count.Add(1)
	return en
}

// evict removes the least valuable of a few entries (rank orders them,
// lowest first) of the locked shard sh or, when sh has none (a cap below
// the number of shards), of another shard whose lock is free: waiting
// for one while holding sh's could deadlock with an insert there. It
// reports whether it removed one; start, as good as random, picks where
// the sample starts, and the shard tried first.
func (s *store) evict(sh *shard, start uint32, rank func(*entry) uint64) bool {
	if sh.index.n > 0 {
		s.evictFrom(sh, start, rank)
		return true
	}
	for i := range uint32(shards) {
		other := &s.shards[(start+i)%shards]
		if other == sh || !other.mu.TryLock() {
			continue
		}
		found := other.index.n > 0
		if found {
			s.evictFrom(other, start, rank)
		}
		other.mu.Unlock()
		if found {
			return true
		}
	}
	return false
}

// evictFrom removes the least valuable of a few entries of the locked
// shard sh, which has some, sampled from the slot start picks on.
func (s *store) evictFrom(sh *shard, start uint32, rank func(*entry) uint64) {
	victim, best, n := uint32(0), ^uint64(0), 0
	sh.index.scan(uint64(start), func(i uint32) bool {
		if r := rank(sh.at(i)); r < best {
			victim, best = i, r
		}
		// Sample a few; look further only to spare a flagged name.
		n++
		return n < evictSample || best >= rankFlagged
	})
	s.remove(sh, victim)
	s.evicted.Add(1)
}

// settle counts the repeats held by the slots of the locked shard sh into
// their entries, and forgets the slots' last answers when asked.
func (sh *shard) settle(forget bool) {
	for i := range sh.index.slots {
		if s := &sh.index.slots[i]; s.ref != 0 {
			s.recent.settle(sh, sh.at(s.ref-1))
			if forget {
				s.recent = recent{}
			}
		}
	}
}

// forgetRecent counts the repeats held by the slots into their entries
// and forgets the slots' last answers, so that the next answer for each
// name is judged in full: for a change of what judges them (SetPolicy,
// Reconfigured).
func (s *store) forgetRecent() {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		sh.settle(true)
		sh.mu.Unlock()
	}
}

// sweep removes the entries last seen at or before since and not held at
// now, and returns how many it removed.
func (s *store) sweep(since, now uint32) int {
	var stale []uint32
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		stale = sh.stale(stale[:0], since, now)
		for _, off := range stale {
			s.remove(sh, off)
		}
		sh.mu.Unlock()
		n += len(stale)
	}
	return n
}

// stale appends to dst the offsets of the locked shard's entries last seen
// at or before since and not held at now. It goes through the index rather
// than the entries: a slot whose last answer (see recent) came after since
// shows its entry live unread, and on a busy resolver most do, where
// reading every entry would be a cache miss each.
func (sh *shard) stale(dst []uint32, since, now uint32) []uint32 {
	for i := range sh.index.slots {
		s := &sh.index.slots[i]
		if s.ref == 0 || s.recent.at > since {
			continue
		}
		if en := sh.at(s.ref - 1); en.last <= since && en.heldUntil <= now {
			dst = append(dst, s.ref-1)
		}
	}
	return dst
}

// remove deletes the entry at offset i of the locked shard sh.
func (s *store) remove(sh *shard, i uint32) {
	en := sh.at(i)
	for _, b := range [...]block{en.ips, en.clients, en.ns, en.nsIPs} {
		sh.seen.release(b)
	}
	sh.asns.release(en.asns)
	_, k := s.locate(sh.name(en))
	sh.index.delete(k.hash)
	delete(sh.out, k) // its news goes with it: the queue holds live entries only
	sh.names.release(en.name)
	sh.entries.release(block{off: i, len: 1, cap: 1}) // zeroes it: no name marks a free entry
	s.count.Add(-1)
}

// len returns the number of entries.
func (s *store) len() int { return int(s.count.Load()) }

// each calls f for every entry, one shard locked at a time; f returning
// false deletes the entry. f must not insert into the shard. The repeats
// the shard's slots hold are counted in first; their last answers are
// kept (see forgetRecent).
func (s *store) each(f func(sh *shard, en *entry) bool) {
	for i := range s.shards {
		s.eachIn(&s.shards[i], true, f)
	}
}

// eachUnsettled is each without counting in the repeats the slots hold.
func (s *store) eachUnsettled(f func(sh *shard, en *entry) bool) {
	for i := range s.shards {
		s.eachIn(&s.shards[i], false, f)
	}
}

// eachIn is each for the entries of shard sh of s; settle tells whether
// the repeats its slots hold are counted in first.
func (s *store) eachIn(sh *shard, settle bool, f func(sh *shard, en *entry) bool) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if settle {
		sh.settle(false)
	}
	for c, chunk := range sh.entries.chunks {
		for j := range chunk {
			if en := &chunk[j]; en.name.cap != 0 && !f(sh, en) {
				s.remove(sh, uint32(c<<sh.entries.shift+j))
			}
		}
	}
}
