package engine

import "sort"

// rank orders entries for eviction: lowest goes first. Idle entries (no
// evidence left in the window, not held) go before active ones, benign
// before suspicious before flagged, and the least recently seen first.
func (e *Engine) rank(en *entry, now uint32) uint64 {
	if en.last <= e.since(now) && en.heldUntil <= now {
		return uint64(en.last)
	}
	lvl := en.level
	if en.heldUntil > now {
		lvl = LevelFlagged
	}
	return uint64(lvl)<<32 | 1<<31 | uint64(en.last)>>1
}

// Held reports whether name is flagged and within its hold time, or
// denied, with its verdict; a held name is answered without going upstream.
// An allowed name is never held.
func (e *Engine) Held(name string) (Verdict, bool) {
	p, unix := e.policy.Load(), e.now().Unix()
	now := internalTime(unix)
	if len(p.deny) == 0 && !e.st.holds(now) && (e.domains == nil || !e.domains.holds(now)) {
		return Verdict{}, false // nothing is held: the common case, kept cheap
	}
	if p.allowed(name, nil, unix) {
		return Verdict{}, false
	}
	if p.deny.match(name, unix) {
		return denied, true
	}
	v, ok, domain := e.held(e.nameScope(), name, now)
	if ok || e.domains == nil || domain == "" {
		return v, ok
	}
	// The registered domain. (An allowed domain was caught above: allowed
	// covers the parents.)
	v, ok, _ = e.held(e.domainScope(), domain, now)
	v.Reasons |= ReasonRegisteredDomain
	return v, ok
}

// held judges key's entry in sc if it is held. It also returns key's
// registered domain, "" for none (see recorded).
func (e *Engine) held(sc scope, key string, now uint32) (Verdict, bool, string) {
	sh, k := sc.st.locate(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	en := sh.lookup(k)
	if en == nil {
		if off := e.domainOffset(sc, key); off != noDomain {
			return Verdict{}, false, key[off:]
		}
		return Verdict{}, false, ""
	}
	if en.heldUntil <= now {
		return Verdict{}, false, en.domain(key)
	}
	e.tally(sh, en, now)
	v := e.judge(sh, en, now, sc.threshold)
	v.HoldLeft = en.holdLeft(now)
	return v, true, en.domain(key)
}

// Flagged returns up to limit currently flagged names, most recently seen
// first, and how many there are in all.
func (e *Engine) Flagged(limit int) (names []string, total int) {
	now := e.clock()
	type item struct {
		name string
		last uint32
	}
	var items []item
	e.each(func(sc scope, sh *shard, en *entry) bool {
		if en.heldUntil > now {
			items = append(items, item{sc.prefix + sh.name(en), en.last})
		}
		return true
	})
	sort.Slice(items, func(i, j int) bool { return items[i].last > items[j].last })
	for _, it := range items[:min(limit, len(items))] {
		names = append(names, it.name)
	}
	return names, len(items)
}
