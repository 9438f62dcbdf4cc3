package engine

import (
	"encoding/binary"
	"maps"
	"math/rand/v2"
	"sync"
	"sync/atomic"
)

// One botnet serves many names (FluxBuster's clusters): once a name is
// flagged, its addresses are kept in a pool index for a window, and a
// later candidate whose answers bring several of them, in several
// networks, is flagged at half the threshold. Many benign names behind one
// CDN edge never qualify: their shared addresses are one network, and CDN
// edges and clouds' front ends never enter the index.
const (
	poolShards     = 16   // a power of two (see shard)
	poolPerShard   = 4096 // addresses, so 65,536 in all
	sharedMinAddrs = 2    // shared addresses, at least, in at least two networks
)

// poolIndex maps the addresses of flagged names to when they leave it, and
// to the name that put each there: a name's own addresses are never
// evidence against it, so that a name flagged on the pool is not kept
// flagged by the addresses it indexed itself once those of the others
// have left.
type poolIndex struct {
	seed   uint64
	used   atomic.Bool // an address was ever added: until then, has need not look
	shards [poolShards]poolShard
}

type poolShard struct {
	mu    sync.Mutex
	until map[[16]byte]pooled
}

// pooled is an address in the index: until when, and whose (a hash of the
// flagged name's key, see answer.owner).
type pooled struct{ until, owner uint32 }

func newPoolIndex() *poolIndex {
	p := &poolIndex{seed: rand.Uint64() | 1}
	for i := range p.shards {
		p.shards[i].until = make(map[[16]byte]pooled)
	}
	return p
}

func (p *poolIndex) shard(a [16]byte) *poolShard {
	h := (binary.LittleEndian.Uint64(a[8:]) ^ binary.LittleEndian.Uint64(a[:8])) * p.seed
	return &p.shards[h>>(64-4)] // poolShards is 1<<4
}

// add keeps a, an address of the flagged name owner, until until. An
// address another flagged name keeps in the index at now stays that
// name's, until it leaves. A full shard first drops the address that
// leaves soonest of a few: the index is bounded, and the newest flagged
// addresses go in.
func (p *poolIndex) add(a [16]byte, until, owner, now uint32) {
	if !p.used.Load() {
		p.used.Store(true)
	}
	sh := p.shard(a)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	in, ok := sh.until[a]
	switch {
	case ok && in.until > now && in.owner != owner:
		return
	case !ok && len(sh.until) >= poolPerShard:
		sh.evict()
	}
	sh.until[a] = pooled{until: max(in.until, until), owner: owner}
}

// drop removes the addresses of the names owners (see answer.owner) from
// the index: names allowed since they put them there.
func (p *poolIndex) drop(owners map[uint32]bool) {
	for i := range p.shards {
		sh := &p.shards[i]
		sh.mu.Lock()
		maps.DeleteFunc(sh.until, func(_ [16]byte, in pooled) bool { return owners[in.owner] })
		sh.mu.Unlock()
	}
}

// evict drops, of evictSample addresses of the locked shard (map order
// is random), the one that leaves the index soonest.
func (sh *poolShard) evict() {
	var victim [16]byte
	soonest, n := ^uint32(0), 0
	for k, in := range sh.until {
		if in.until < soonest {
			victim, soonest = k, in.until
		}
		if n++; n == evictSample {
			break
		}
	}
	delete(sh.until, victim)
}

// other reports whether a is in the index at now, as another name's than
// owner's.
func (p *poolIndex) other(a [16]byte, owner, now uint32) bool {
	if !p.used.Load() {
		return false
	}
	sh := p.shard(a)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	in, ok := sh.until[a]
	return ok && in.until > now && in.owner != owner
}

// remark counts again the marks of en, the entry of the name owner (see
// answer.owner), over its addresses in the window at now: those other
// flagged names keep in the pool index, and those on the intel list. The
// marks leave with their addresses, and with the other names' flags.
func (e *Engine) remark(sh *shard, en *entry, owner, now uint32) {
	since := e.since(now)
	if en.shared != 0 {
		en.sharedNet, en.shared = 0, 0
		if e.pools != nil {
			sh.eachAddrSince(en, since, func(addr [16]byte, asn uint32) bool {
				if e.pools.other(addr, owner, now) {
					markAddr(&en.sharedNet, &en.shared, netHash(networkKey(addr, asn)))
				}
				return marksSpread(en.shared)
			})
		}
	}
	if en.bad != 0 {
		e.remarkBad(sh, en, e.policy.Load().bad, since)
	}
}

// eachAddrSince calls f with each address of en, in the locked shard sh,
// seen after since, and its ASN (0 when unknown), until f returns true:
// marks count only until they are spread (see marksSpread), so a count
// stops there.
func (sh *shard) eachAddrSince(en *entry, since uint32, f func(addr [16]byte, asn uint32) (done bool)) {
	asns := sh.asns.view(en.asns)
	for i, s := range sh.seen.view(en.ips) {
		if s.last <= since {
			continue
		}
		asn := uint32(0)
		if i < len(asns) {
			asn = asns[i]
		}
		if f(s.addr, asn) {
			return
		}
	}
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
// sharedMinAddrs addresses in several networks. That is all a count is
// read for, so marks are no longer looked up once it holds.
func marksSpread(n uint8) bool {
	return int(n&^marksMultiNet) >= sharedMinAddrs && n&marksMultiNet != 0
}

// sharedPool reports whether en's answers brought enough addresses of
// flagged names, in enough networks, to flag it.
func (en *entry) sharedPool() bool { return marksSpread(en.shared) }
