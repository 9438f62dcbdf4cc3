package engine

import "sync"

// rechecks are the names held when the allows changed (see SetPolicy),
// whose next answer is read rather than replaced by the hold. An allow of
// a name on a held name's CNAME chain, or of its networks, applies to the
// answers read, and a held name has none read until its hold ends: the
// first answer read after the change releases the name when the allows
// cover it now (see Observe), and ends its recheck either way.
type rechecks struct {
	mu    sync.Mutex
	names map[key]struct{}
	until uint32 // the last of their holds ends then, and their rechecks with it
}

// pending reports whether the name of key k waits for its recheck at
// now; of nil rechecks, none does.
func (r *rechecks) pending(k key, now uint32) bool {
	if r == nil || now >= r.until {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.names[k]
	return ok
}

// endRecheck ends name's recheck at now and reports whether it was
// pending. With no recheck pending, the common case, it costs an atomic
// load: the rechecks go once all have ended, or all their holds have.
func (e *Engine) endRecheck(name string, now uint32) bool {
	r := e.recheck.Load()
	if r == nil {
		return false
	}
	_, k := e.st.locate(name)
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.names[k]
	delete(r.names, k)
	if len(r.names) == 0 || now >= r.until {
		e.recheck.CompareAndSwap(r, nil)
	}
	return ok && now < r.until
}

// skip returns the verdict of an answer for name that is skipped, and
// releases name when allowed and rechecked (see rechecks).
func (e *Engine) skip(name string, skip Skip, rechecked bool) Verdict {
	if skip == SkipAllowed && rechecked {
		e.release(name)
	}
	return Verdict{Skip: skip}
}

// release forgets name, held when an allow came to cover its CNAME chain
// or its networks, and its addresses in the pool index, as SetPolicy
// forgets the names it allows.
func (e *Engine) release(name string) {
	sh, k := e.st.locate(name)
	sh.mu.Lock()
	if s := sh.index.get(k); s != nil {
		e.st.remove(sh, s.ref-1)
	}
	sh.mu.Unlock()
	if e.pools != nil {
		e.pools.drop(map[uint32]bool{k.owner(): true})
	}
}
