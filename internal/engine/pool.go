package engine

import (
	"encoding/binary"
	"math/rand/v2"
	"sync"
	"sync/atomic"
)

// One botnet serves many names (FluxBuster's clusters): once a name is
// flagged, its addresses are kept in a pool index for a window, and a
// later name whose answers bring several of them, in several networks, is
// flagged on that evidence alone, often on its first answer. Many benign
// names behind one CDN edge never qualify: their shared addresses are one
// network, and CDN edges and clouds' front ends never enter the index.
const (
	poolShards     = 16   // a power of two (see shard)
	poolPerShard   = 4096 // addresses, so 65,536 in all
	sharedMinAddrs = 2    // shared addresses, at least, in at least two networks
)

// poolIndex maps the addresses of flagged names to when they leave it.
type poolIndex struct {
	seed   uint64
	used   atomic.Bool // an address was ever added: until then, has need not look
	shards [poolShards]poolShard
}

type poolShard struct {
	mu    sync.Mutex
	until map[[16]byte]uint32
}

func newPoolIndex() *poolIndex {
	p := &poolIndex{seed: rand.Uint64() | 1}
	for i := range p.shards {
		p.shards[i].until = make(map[[16]byte]uint32)
	}
	return p
}

func (p *poolIndex) shard(a [16]byte) *poolShard {
	h := (binary.LittleEndian.Uint64(a[8:]) ^ binary.LittleEndian.Uint64(a[:8])) * p.seed
	return &p.shards[h>>(64-4)] // poolShards is 1<<4
}

// add keeps a until until. A full shard first drops the address that
// leaves soonest of a few: the index is bounded, and the newest flagged
// addresses go in.
func (p *poolIndex) add(a [16]byte, until uint32) {
	if !p.used.Load() {
		p.used.Store(true)
	}
	sh := p.shard(a)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, ok := sh.until[a]; !ok && len(sh.until) >= poolPerShard {
		sh.evict()
	}
	sh.until[a] = max(sh.until[a], until)
}

// evict drops, of evictSample addresses of the locked shard (map order
// is random), the one that leaves the index soonest.
func (sh *poolShard) evict() {
	var victim [16]byte
	soonest, n := ^uint32(0), 0
	for k, u := range sh.until {
		if u < soonest {
			victim, soonest = k, u
		}
		if n++; n == evictSample {
			break
		}
	}
	delete(sh.until, victim)
}

// has reports whether a is in the index at now.
func (p *poolIndex) has(a [16]byte, now uint32) bool {
	if !p.used.Load() {
		return false
	}
	sh := p.shard(a)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.until[a] > now
}

// markAddr counts in *n an address new to an entry, of the network whose
// hash is h (see netHash): of a flagged name (see poolIndex), or on the
// intel address list (see Intel). The top bit of *n tells that the
// addresses span several networks, the first of which *first holds. A
// narrower hash merges more networks, so it errs towards not flagging.
func markAddr[H uint8 | uint16](first *H, n *uint8, h H) {
	switch {
	case *first == 0:
		*first = h
	case *first != h:
		*n |= marksMultiNet
	}
	if *n&^marksMultiNet < marksMultiNet-1 {
		*n++
	}
}

// netHash hashes a network key (see networkKey) into a non-zero value.
func netHash(net uint64) uint16 { return uint16(net) ^ uint16(net>>16) ^ uint16(net>>32) | 1 }

// netHash8 is netHash in a byte.
func netHash8(net uint64) uint8 {
	h := netHash(net)
	return uint8(h^h>>8) | 1
}

// marksMultiNet is markAddr's bit for addresses in several networks.
const marksMultiNet = 0x80

// marksSpread reports whether n, of markAddr, counts at least
// sharedMinAddrs addresses in several networks.
func marksSpread(n uint8) bool {
	return int(n&^marksMultiNet) >= sharedMinAddrs && n&marksMultiNet != 0
}

// sharedPool reports whether en's answers brought enough addresses of
// flagged names, in enough networks, to flag it.
func (en *entry) sharedPool() bool { return marksSpread(en.shared) }
