package engine

import (
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"
)

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
	return uint64(lvl)<<33 | 1<<32 | uint64(en.last)
}

// Held reports whether name is flagged and within its hold time, or
// denied, or on the intel list, with its verdict; a held name is answered without going upstream.
// An allowed name is never held.
func (e *Engine) Held(name string) (Verdict, bool) { return e.holdOf(name, false) }

// HeldAsked is Held for a query about to be answered with the hold: the
// held entry counts as seen then, so that a name still asked for is
// evicted after those that are not (see rank), and leads HeldNames.
func (e *Engine) HeldAsked(name string) (Verdict, bool) { return e.holdOf(name, true) }

// holdOf is Held, marking the held entry seen when asked.
func (e *Engine) holdOf(name string, asked bool) (Verdict, bool) {
	p, unix := e.policy.Load(), e.now().Unix()
	now := internalTime(unix)
	if len(p.deny) == 0 && len(p.intel) == 0 && !e.holdsAny(now) {
		return Verdict{}, false // nothing is held: the common case, kept cheap
	}
	if p.allowed(name, nil, unix) {
		return Verdict{}, false
	}
	if p.deny.match(name, unix) {
		return denied, true
	}
	if p.intel.match(name, unix) {
		return listed, true
	}
	v, ok, domain := e.held(e.nameScope(), name, now, asked)
	if ok || e.domains == nil || domain == "" {
		return v, ok
	}
	// The registered domain. (An allowed domain was caught above: allowed
	// covers the parents.)
	v, ok, _ = e.held(e.domainScope(), domain, now, asked)
	v.Reasons |= ReasonRegisteredDomain
	return v, ok
}

// held judges key's entry in sc if it is held, marked seen at now when
// asked. It also returns key's registered domain, "" for none (see
// recorded).
func (e *Engine) held(sc scope, key string, now uint32, asked bool) (Verdict, bool, string) {
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
	if asked && sc.names() && e.recheck.Load().pending(k, now) {
		// Its answer is read, whatever holds its registered domain.
		return Verdict{}, false, ""
	}
	if asked {
		en.last = max(en.last, now)
	}
	e.tally(sh, en, now)
	v := e.judge(sc, sh, en, now, false)
	v.HoldLeft = en.holdLeft(now)
	return v, true, en.domain(key)
}

// Flagged returns up to limit currently flagged names, most recently seen
// first, and how many there are in all.
func (e *Engine) Flagged(limit int) (names []string, total int) {
	now := e.clock()
	if !e.holdsAny(now) {
		return nil, 0 // nothing to look for: no pass over every entry
	}
	type item struct {
		name string
		last uint32
	}
	var items []item
	e.eachHeld(now, func(sc scope, sh *shard, en *entry) {
		items = append(items, item{sc.prefix + sh.name(en), en.last})
	})
	sort.Slice(items, func(i, j int) bool { return items[i].last > items[j].last })
	for _, it := range items[:min(limit, len(items))] {
		names = append(names, it.name)
	}
	return names, len(items)
}

// HeldName is a name the engine blocks, or an allowed name under one, as
// exported to other resolvers (an RPZ zone).
type HeldName struct {
	Name       string
	Subdomains bool      // Name's subdomains are covered too (a registered domain, a deny or allow rule)
	Allowed    bool      // an allow rule under a held registered domain or deny rule: an exception
	Until      time.Time // when the hold ends; zero for a rule without end
	Last       time.Time // the last observation; zero for a rule
}

// HeldNames returns what Held holds now but the intel list's names, which
// came from elsewhere and can outnumber any zone: the held names and
// registered domains, most recently seen first, then the deny rules in
// force, by name, leaving out allowed names; then, as exceptions, the allow rules in
// force under a held registered domain or deny rule, which Held lets pass.
// With addrs, for blocking the held names' addresses too (see
// AppendAddrs), every allow rule in force is an exception: a name that
// shares an address with a held name is blocked by its address, unless
// allowed.
func (e *Engine) HeldNames(addrs bool) []HeldName {
	p, unix := e.policy.Load(), e.now().Unix()
	now := internalTime(unix)
	var out []HeldName
	if e.holdsAny(now) {
		e.eachHeld(now, func(sc scope, sh *shard, en *entry) {
			if name := sh.name(en); !p.allowed(name, nil, unix) {
				out = append(out, HeldName{Name: name, Subdomains: !sc.names(), Until: e.time(en.heldUntil), Last: e.time(en.last)})
			}
		})
		sort.Slice(out, func(i, j int) bool {
			if !out[i].Last.Equal(out[j].Last) {
				return out[i].Last.After(out[j].Last)
			}
			return out[i].Name < out[j].Name
		})
	}
	for _, name := range p.deny.inForce(unix) {
		if !p.allowed(name, nil, unix) {
			out = append(out, HeldName{Name: name, Subdomains: true, Until: ruleEnd(p.deny[name])})
		}
	}
	var covering []string
	for _, h := range out {
		if h.Subdomains {
			covering = append(covering, h.Name)
		}
	}
	if len(covering) == 0 && !addrs {
		return out
	}
	for _, name := range p.allow.inForce(unix) {
		if addrs || slices.ContainsFunc(covering, func(c string) bool { return strings.HasSuffix(name, "."+c) }) {
			out = append(out, HeldName{Name: name, Subdomains: true, Allowed: true, Until: ruleEnd(p.allow[name])})
		}
	}
	return out
}

// AppendAddrs appends to buf the addresses the exact name answered within
// the window, unmapped, and returns it.
func (e *Engine) AppendAddrs(buf []netip.Addr, name string) []netip.Addr {
	sh, k := e.st.locate(name)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	en := sh.lookup(k)
	if en == nil {
		return buf
	}
	since := e.since(e.clock())
	for _, s := range sh.seen.view(en.ips) {
		if s.last > since {
			buf = append(buf, netip.AddrFrom16(s.addr).Unmap())
		}
	}
	return buf
}

// inForce returns the names whose rule is in force at now, sorted.
func (s ruleSet) inForce(now int64) []string {
	var names []string
	for name, until := range s {
		if until == 0 || now < until {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// ruleEnd is the time a rule ending at unix seconds until ends, zero for
// never.
func ruleEnd(until int64) time.Time {
	if until == 0 {
		return time.Time{}
	}
	return time.Unix(until, 0).UTC()
}
