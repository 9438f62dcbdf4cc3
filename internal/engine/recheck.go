package engine

import (
	"maps"
	"slices"
	"sync"
	"sync/atomic"
)

// A held name is answered without going upstream, so no answer of it is
// read while it is held; yet an allow of a name on its CNAME chain, or of
// the networks its addresses lie in, shows only in an answer. So when the
// allows change, each name held then is let through once (see Recheck),
// for its next answer to be read: one the allows now let through ends
// the hold (see release); any other is judged, and replaced while the
// name is flagged.

// rechecks holds the names to let through once.
type rechecks struct {
	mu    sync.Mutex
	names map[string]struct{}
	n     atomic.Int64 // len(names), read without the lock
}

// set replaces the names to let through once.
func (r *rechecks) set(names map[string]struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.names = names
	r.n.Store(int64(len(names)))
}

// Recheck reports whether name, held, is to be let through this once
// for its answer to be read, after the allows changed.
func (e *Engine) Recheck(name string) bool {
	if e.recheck.n.Load() == 0 {
		return false
	}
	e.recheck.mu.Lock()
	defer e.recheck.mu.Unlock()
	if _, ok := e.recheck.names[name]; !ok {
		return false
	}
	delete(e.recheck.names, name)
	e.recheck.n.Add(-1)
	return true
}

// allowsChanged reports whether p may allow what old did not.
func allowsChanged(old, p *Policy) bool {
	return old != nil && (!maps.Equal(old.allow, p.allow) || !slices.Equal(old.allowNets, p.allowNets))
}

// release ends the hold of name, an exact name whose answer the allows
// let through by its CNAME chain or its networks, and takes its addresses
// out of the pool index.
func (e *Engine) release(name string, now uint32) {
	if !e.st.holds(now) {
		return // nothing is held: the common case, kept cheap
	}
	sh, k := e.st.locate(name)
	sh.mu.Lock()
	en := sh.lookup(k)
	held := en != nil && en.heldUntil > now
	if held {
		en.heldUntil, en.level = 0, LevelNone
		sh.forget(k)
	}
	sh.mu.Unlock()
	if held && e.pools != nil {
		e.pools.drop(map[uint32]bool{k.owner(): true})
	}
}
