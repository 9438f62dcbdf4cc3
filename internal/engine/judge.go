package engine

import (
	"cmp"
	"math"
	"net/netip"
	"strings"
)

// Skipped reports why name, reached through chain, is never tracked, or
// SkipNone.
func (e *Engine) Skipped(name string, chain []string) Skip {
	return e.skipped(e.policy.Load(), name, chain, nil, e.now().Unix())
}

func (e *Engine) skipped(p *Policy, name string, chain []string, addrs []netip.Addr, unix int64) Skip {
	return cmp.Or(e.skippedName(p, name, unix), e.skippedChain(p, chain, addrs, unix))
}

// skippedName reports why name is never tracked, whatever its chain. The
// engine asks only for names it does not track yet: SetPolicy forgets the
// names it allows, Reconfigured those it excludes, and a name's allow rule
// can end but not begin without SetPolicy.
func (e *Engine) skippedName(p *Policy, name string, unix int64) Skip {
	switch {
	case p.allow.match(name, unix):
		return SkipAllowed
	case e.exclude.match(name), strings.HasPrefix(name, "*."):
		// A literal wildcard label would read as a registered domain's
		// aggregate ("*.domain") in the report, the state and the fleet.
		return SkipExcluded
	}
	return SkipNone
}

// skippedChain reports why an answer reaching addrs through chain is not
// evidence: an allowed name on it, or (default profile) an excluded one:
// a trusted one (a public pool, or a list the configuration set), or one
// of the seed rule's lists when a CDN's or a cloud's front ends
// (Config.FrontDoor) serve the addresses. Anyone can point a CNAME at a
// CDN's suffix, or run a zone under one that answers any address (a
// Traffic Manager profile's external endpoints, a delegated in-addr.arpa
// zone): flux addresses behind it are still evidence.
func (e *Engine) skippedChain(p *Policy, chain []string, addrs []netip.Addr, unix int64) Skip {
	for _, c := range chain {
		if p.allow.match(c, unix) {
			return SkipAllowed
		}
	}
	if !e.chains {
		return SkipNone
	}
	for _, c := range chain {
		if e.trusted.match(c) || e.exclude.match(c) && e.frontDoors(addrs) {
			return SkipExcluded
		}
	}
	return SkipNone
}

// frontDoors reports whether every evidence address of addrs is a front
// door's (see Config.FrontDoor), as when no front doors are known.
func (e *Engine) frontDoors(addrs []netip.Addr) bool {
	if e.cfg.FrontDoor == nil {
		return true
	}
	for _, a := range addrs {
		if e.evidence(a) && !e.cfg.FrontDoor(a.Unmap()) {
			return false
		}
	}
	return true
}

// denied is the verdict for a name on the deny list.
var denied = Verdict{Level: LevelFlagged, Prev: LevelFlagged, Reasons: ReasonDenied}

// tally counts en's addresses and clients seen in the window ending at
// now, for judge.
func (e *Engine) tally(sh *shard, en *entry, now uint32) {
	since := e.since(now)
	en.ipsSeen = uint16(countSince(sh.seen.view(en.ips), since))
	en.clientsSeen = uint16(countSince(sh.seen.view(en.clients), since))
}

// judge scores en, an entry of sc, at now, as tallied then, without
// changing its evidence. A held name stays flagged whatever its current
// evidence. again tells that en was judged earlier in the same second
// (see fluxScore).
func (e *Engine) judge(sc scope, sh *shard, en *entry, now uint32, again bool) Verdict {
	threshold := sc.threshold
	since := e.since(now)
	v := Verdict{Prev: en.level, TTL: en.meanTTL, UniqueIPs: int(en.ipsSeen), Clients: int(en.clientsSeen)}
	v.Queries, _ = en.queries(now/e.width, e.width)
	switch {
	case !sc.names() && en.subnames <= 1:
		// A registered domain seen through one name only (or none since
		// its aggregate was made) adds nothing to that name's own verdict,
		// unless it is held (by the fleet).
		if en.heldUntil <= now {
			return v
		}
	case e.cfg.Profile == ProfileSeed:
		v.Score, v.Reasons = e.seedScore(en, v.UniqueIPs, v.Clients)
	case v.UniqueIPs >= e.cfg.MinIPs: // not worth the work below the minimum
		v.Score, v.Reasons = e.fluxScore(sh, en, v.UniqueIPs, since, !sc.names(), again && en.level == LevelFlagged && en.heldUntil > now)
		v.Networks, v.Prefixes, v.Subnets = math.Round(float64(en.networks)*100)/100, int(en.p16), int(en.p24)
		if v.UniqueIPs > 1 {
			v.Diversity = math.Round(math.Log2(float64(en.networks))/math.Log2(float64(v.UniqueIPs))*100) / 100
		}
		if sc.names() && v.Score >= threshold/2 && v.Score < threshold {
			v.Reasons |= e.seedAgrees(sh, en, v, since)
		}
	}
	if e.pools != nil && en.sharedPool() {
		v.Reasons |= ReasonSharedPool
	}
	if en.bad != 0 {
		v.Reasons |= ReasonKnownBadAddr
	}
	if en.heldUntil > now {
		v.Reasons |= en.nameBits & ReasonFleet
	}
	switch {
	case e.flagging(en, v, threshold), en.heldUntil > now:
		v.Level = LevelFlagged
	case e.candidate(v):
		v.Level = LevelSuspicious
	}
	return v
}

// flagging reports whether v, en's verdict, flags its name on its own
// evidence, held or not: a candidate scoring the threshold, or half of it
// with addresses shared with flagged names (see poolIndex) or when the
// seed rule flags it too, or enough addresses known bad (see Intel).
// Flagged names' answers are the attacker's to choose, and the seed rule
// flags CDNs and SaaS, so both only corroborate: neither flags a name
// whose own answers look benign.
func (e *Engine) flagging(en *entry, v Verdict, threshold float64) bool {
	if v.Reasons&(ReasonSharedPool|ReasonSeedRule) != 0 {
		threshold /= 2
	}
	return e.candidate(v) && v.Score >= threshold || marksSpread(en.bad)
}

// seedAgrees returns the seed rule's reasons for en, a name scoring
// between half the threshold and the threshold, with ReasonSeedRule,
// when that rule flags it too on the name's own evidence: many_ips
// addresses, and its suspicious TLD (unless weighted 0) or short SLD;
// never the clients' point, which whoever asks from a few addresses
// gives. Its answers must also be of a kind the rule's own false
// positives are not: a set that rotated through SeedRotation times its
// largest answers (not a fixed round robin, nor a failover between two
// sets, nor a sinkhole), none of whose addresses is a CDN's, a large
// cloud's or a large service's (not a CDN nor a global SaaS). It returns
// 0 otherwise. Slow rotations through a few hosting providers score
// below the threshold; the rule flags them.
func (e *Engine) seedAgrees(sh *shard, en *entry, v Verdict, since uint32) Reasons {
	r := en.nameBits & (ReasonSuspiciousTLD | ReasonShortSLD)
	if e.cfg.Weights.TLD == 0 {
		r &^= ReasonSuspiciousTLD
	}
	// A name whose answers another replica saw (largest 0) shows no
	// rotation of its own.
	largest := en.largestAnswer()
	if r == 0 || largest == 0 || v.UniqueIPs < e.cfg.ManyIPs || v.UniqueIPs < SeedRotation*largest {
		return 0
	}
	if r&ReasonShortSLD != 0 && !e.shortRegistrable(sh.name(en)) {
		if r &^= ReasonShortSLD; r == 0 {
			return 0
		}
	}
	if e.cfg.FrontDoor != nil {
		for _, s := range sh.seen.view(en.ips) {
			if s.last > since && e.cfg.FrontDoor(netip.AddrFrom16(s.addr).Unmap()) {
				return 0
			}
		}
	}
	return r | ReasonManyIPs | ReasonSeedRule
}

// shortRegistrable reports whether the label name's registered domain
// starts with has at most ShortSLD characters: the seed rule reads the
// label before the last, which under co.uk or com.au is the suffix's, as
// short for every name there. A name without a registered domain keeps
// the rule's reading.
func (e *Engine) shortRegistrable(name string) bool {
	d := registeredDomain(name)
	if d == "" {
		return true
	}
	label, _, _ := strings.Cut(d, ".")
	return len(label) <= e.cfg.ShortSLD
}

// candidate reports whether v passes the rule's minimums (UniqueIPCount and QueryCount).
func (e *Engine) candidate(v Verdict) bool {
	return v.UniqueIPs >= e.cfg.MinIPs && v.Queries >= e.cfg.MinQueries
}

func (e *Engine) nameReasons(name string) Reasons {
	var r Reasons
	tld, sld := tldSLD(name)
	if _, ok := e.susTLD[tld]; ok {
		r |= ReasonSuspiciousTLD
	}
	if len(sld) <= e.cfg.ShortSLD {
		r |= ReasonShortSLD
	}
	return r
}
