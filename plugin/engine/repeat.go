package engine

// recent is a name's last judged answer, kept in its index slot so that
// an answer repeating it in the same second from the same client (a cache
// hit, typically) is counted without reading the entry: the slot is read
// on the way to the entry anyway, the entry is a cache miss further, and
// judging it again would change nothing but its query count, as long as
// the verdict is steady.
type recent struct {
	fingerprint uint32 // of the answer's evidence (see fingerprint); 0 for none
	at          uint32 // when it was judged
	client      uint32 // the entry's lastClient then
	repeats     uint16 // answers repeating it since, not counted in the entry yet
	level       Level  // its verdict's
	steady      bool   // more queries at `at` cannot change the verdict's level
}

// repeat counts o, an answer with evidence a, as a repeat of the last one
// recorded in sh for key k, and returns its verdict, when it repeats it
// (see recent); it reports false for an answer to record. The verdict
// holds the level only: o.Brief asked for no more.
func (e *Engine) repeat(sh *shard, k key, o *Observation, a *answer, now uint32) (Verdict, bool) {
	s := sh.index.get(k)
	if s == nil {
		return Verdict{}, false
	}
	r := &s.recent
	if !r.steady || r.at != now || a.fingerprint == 0 || r.fingerprint != a.fingerprint || r.repeats == ^uint16(0) ||
		o.Client.IsValid() && e.clientHash(o.Client.Unmap().As16()) != r.client {
		return Verdict{}, false
	}
	r.repeats++
	return Verdict{Level: r.level, Prev: r.level}, true
}

// remember keeps en's last answer, judged v at now, in its slot, of key k
// in sh. Only more queries change a verdict within its second, and only
// by making the name a candidate (see candidate): the verdict is steady
// unless that can still happen.
func (e *Engine) remember(sh *shard, k key, en *entry, v Verdict, now uint32) {
	if s := sh.index.get(k); s != nil {
		s.recent = recent{fingerprint: en.fingerprint, at: now, client: en.lastClient, level: v.Level,
			steady: v.UniqueIPs < e.cfg.MinIPs || v.Queries >= e.cfg.MinQueries}
	}
}

// settle counts the repeats r holds into en, its entry.
func (r *recent) settle(en *entry) {
	if r.repeats > 0 {
		en.addToNewest(uint32(r.repeats))
		r.repeats = 0
	}
}
