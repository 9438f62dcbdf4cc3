package engine

import "net/netip"

// recent is a name's last judged answer, kept in its index slot so that
// an answer repeating it from the same client (a cache hit, typically) in
// the same query-count bucket (window/12 seconds; the same second for a
// flagged name) is counted without reading the entry: the slot is read on
// the way to the entry anyway, the entry and its lists are cache misses
// further, and judging it again would change nothing but its query count,
// as long as the verdict is steady. The repeats land in the entry's
// newest bucket, theirs, when it is next read, and the judged answer's
// addresses and clients are seen again then (see settle); its registered
// domain hears nothing of them.
type recent struct {
	fingerprint uint32 // what tells a repeat of the answer (see answer.print); 0 for none
	at          uint32 // when it was judged, or last repeated
	client      uint32 // the entry's lastClient then
	repeats     uint16 // answers repeating it since, not counted in the entry yet
	level       Level  // its verdict's
	flags       recentFlags
}

// recentFlags describe a recent answer.
type recentFlags uint8

const (
	recentSteady  recentFlags = 1 << iota // more queries in its bucket cannot change the verdict's level
	recentV6                              // its addresses are IPv6: an AAAA answer
	recentMixed                           // other answers were recorded in its second (see settle)
	recentPrinted                         // its fingerprint is the answer's print (see Observation.Print)
)

// repeat counts o, an answer with evidence a, as a repeat of the last one
// recorded in sh for key k, and returns its verdict, when it repeats it
// (see recent); it reports false for an answer to record. The verdict
// holds the level only: o.LevelOnly asked for no more.
func (e *Engine) repeat(sh *shard, k key, a *answer, now uint32) (Verdict, bool) {
	s := sh.index.get(k)
	if s == nil {
		return Verdict{}, false
	}
	r := &s.recent
	fp, printed := a.print()
	if fp == 0 || r.fingerprint != fp || r.flags&recentPrinted != printed || !e.repeats(r, a.obs.Client, now) {
		return Verdict{}, false
	}
	r.repeats++
	r.at = now
	return Verdict{Level: r.level, Prev: r.level}, true
}

// print returns what a slot keeps of a to tell its repeats (see recent):
// its print when it has one (recentPrinted), else its fingerprint. An
// answer with name servers, whose fingerprint is 0, never repeats: its
// name servers are seen in every answer.
func (a *answer) print() (uint32, recentFlags) {
	if a.fingerprint == 0 || a.obs.Print == 0 {
		return a.fingerprint, 0
	}
	return a.obs.Print, recentPrinted
}

// repeats reports whether an answer to client at now that repeats r's
// evidence is a repeat to count in the slot: r is steady, of the same
// client, of the same second or, unless flagged (a hold ends at a second)
// or mixed (see settle), of the same bucket, and has room for one more.
func (e *Engine) repeats(r *recent, client netip.Addr, now uint32) bool {
	return r.flags&recentSteady != 0 && r.repeats != ^uint16(0) &&
		(r.at == now || r.level != LevelFlagged && r.flags&recentMixed == 0 && r.at/e.width == now/e.width) &&
		(!client.IsValid() || e.clientHash(client) == r.client)
}

// Precheck is what the engine recalls of a name when a query for it comes,
// before it is answered (see Engine.Precheck).
type Precheck struct {
	// Repeat tells that the query was counted, under Level, as a repeat
	// of the name's last answer: its answer is not to be observed.
	Repeat bool
	Level  Level
	// New tells that the name is neither tracked nor skipped (allowed or
	// excluded): a name seen first, whose answer most likely comes from
	// upstream rather than from a cache.
	New bool
}

// Precheck looks name up as a query for it from client (invalid for none)
// comes, or as its answer, of print pr (Observation.Print; 0 before the
// answer), is to be read. It tells a name neither tracked nor skipped
// (Precheck.New), and counts a query whose answer is taken to repeat the
// name's last one (Precheck.Repeat): an answer to that client of the same
// family (AAAA if v6, A otherwise) was judged, steady (see recent), and
// either in this second another was seen to repeat it, or it had the
// answer's print, as repeat would count it. Answers that rotate are all
// read; one that changes after a repeat in the same second (a cache entry
// renewed then) is not, and the first query of a later second reads the
// name's answer again, unless its print tells it repeats. A flagged
// name's answers are all read, for a caller that replaces them and for a
// recheck (see rechecks). The caller must need no more than a brief
// verdict (Observation.LevelOnly).
func (e *Engine) Precheck(name string, v6 bool, client netip.Addr, pr uint32) Precheck {
	rc, tracked := e.precheck(name, v6, client, pr)
	if !tracked {
		rc.New = e.Skipped(name, nil) == SkipNone
	}
	return rc
}

// precheck is Precheck's part under the shard's lock; it also reports whether
// name is tracked.
func (e *Engine) precheck(name string, v6 bool, client netip.Addr, pr uint32) (Precheck, bool) {
	sh, k := e.st.locate(name)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s := sh.index.get(k)
	if s == nil {
		return Precheck{}, false
	}
	r, now := &s.recent, e.clock()
	if r.level == LevelFlagged || r.flags&recentV6 != 0 != v6 || !e.repeats(r, client, now) {
		return Precheck{}, true
	}
	seen := r.repeats != 0 && r.at == now
	if !seen && (pr == 0 || r.flags&recentPrinted == 0 || r.fingerprint != pr) {
		return Precheck{}, true
	}
	r.repeats++
	r.at = now
	return Precheck{Repeat: true, Level: r.level}, true
}

// remember keeps en's last answer, a, judged v at now, in its slot, of key k
// in sh; again tells that other answers were recorded in the same second.
// Only more queries change a verdict within its bucket, and only by
// making the name a candidate (see candidate), or time, taking its oldest
// addresses out of the window: the verdict is steady unless more queries
// can still change it.
func (e *Engine) remember(sh *shard, k key, en *entry, a *answer, v Verdict, again bool, now uint32) {
	s := sh.index.get(k)
	if s == nil {
		return
	}
	fp, printed := a.print()
	s.recent = recent{fingerprint: fp, at: now, client: en.lastClient, level: v.Level, flags: printed}
	if v.UniqueIPs < e.cfg.MinIPs || v.Queries >= e.cfg.MinQueries {
		s.recent.flags |= recentSteady
	}
	if a.addrs[0].Is6() {
		s.recent.flags |= recentV6
	}
	if again {
		s.recent.flags |= recentMixed
	}
}

// settle counts the repeats r holds into en, its entry in sh, as last seen
// when the last of them came, and returns how many there were. The
// addresses and clients of the judged answer they repeat are seen then
// too, so that they leave the window with the last repeat, as the rule's
// rows would: those seen in the judged answer's second. A slot whose
// second saw other answers (mixed) counts repeats of that second only,
// which move nothing.
func (r *recent) settle(sh *shard, en *entry) uint32 {
	n := uint32(r.repeats)
	if n == 0 {
		return 0
	}
	en.addToNewest(n)
	if judged := en.last; r.at > judged {
		for _, b := range [2]block{en.ips, en.clients} {
			list := sh.seen.view(b)
			for i := range list {
				if list[i].last == judged {
					list[i].last = r.at
				}
			}
		}
	}
	en.last = max(en.last, r.at)
	r.repeats = 0
	return n
}
