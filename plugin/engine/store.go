package engine

import (
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"
)

// shards is the number of independently locked parts of the store; a power
// of two so that a hash picks one with a mask.
const shards = 64

// evictSample is how many entries a full shard looks at to pick a victim.
const evictSample = 8

// rankFlagged is the lowest eviction rank of a flagged entry: rank orders
// entries by level first, so a flagged name is evicted only when the shard
// holds nothing else.
const rankFlagged = uint64(LevelFlagged) << 32

// store maps names to entries in shards, each with its own lock. The cap
// is global: an insert into a full store evicts from the inserting shard.
type store struct {
	seed    maphash.Seed
	shards  [shards]shard
	max     atomic.Int64
	count   atomic.Int64
	evicted atomic.Uint64
}

type shard struct {
	mu sync.Mutex
	m  map[string]*entry
	_  [40]byte // keep shards on separate cache lines
}

func newStore(maxNames int) *store {
	s := &store{seed: maphash.MakeSeed()}
	s.max.Store(int64(maxNames))
	for i := range s.shards {
		s.shards[i].m = make(map[string]*entry)
	}
	return s
}

func (s *store) shard(name string) *shard {
	return &s.shards[maphash.String(s.seed, name)&(shards-1)]
}

// insert adds a new entry for name to a locked shard, evicting the least
// valuable entry of the shard first when the store is full.
func (s *store) insert(sh *shard, name string, e *entry, rank func(*entry) uint64) {
	if s.count.Load() >= s.max.Load() && len(sh.m) > 0 {
		victim, best, n := "", ^uint64(0), 0
		for k, v := range sh.m { // map iteration starts at a random entry
			if r := rank(v); r < best {
				victim, best = k, r
			}
			// Sample a few; look further only to spare a flagged name.
			if n++; n >= evictSample && best < rankFlagged {
				break
			}
		}
		delete(sh.m, victim)
		s.count.Add(-1)
		s.evicted.Add(1)
	}
	sh.m[strings.Clone(name)] = e
	s.count.Add(1)
}

// len returns the number of entries.
func (s *store) len() int { return int(s.count.Load()) }

// each calls f for every entry, one shard locked at a time; f returning
// false deletes the entry.
func (s *store) each(f func(name string, e *entry) bool) {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for k, v := range sh.m {
			if !f(k, v) {
				delete(sh.m, k)
				s.count.Add(-1)
			}
		}
		sh.mu.Unlock()
	}
}
