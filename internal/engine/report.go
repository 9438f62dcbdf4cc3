package engine

import (
	"cmp"
	"container/heap"
	"math"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"
	"unsafe"
)

// Row is one line of the report, with exactly the seed rule's projected
// columns, in its order.
type Row struct {
	DetectionTime      time.Time
	DomainName         string
	UniqueIPCount      int
	IPChurnRate        float64
	QueryCount         int
	UniqueClients      int
	ClientList         []string
	IPAddressList      []string
	ObservationMinutes int
	TLD                string
	SuspiciousTLD      bool
	ShortSLD           bool
	SuspicionScore     float64
	FirstSeen          time.Time
}

// Report returns the suspicious and flagged names (the rule's output rows),
// sorted as the rule sorts: UniqueIPCount, then IPChurnRate, descending.
func (e *Engine) Report() []Row {
	var rows []Row
	e.EachDetail(func(d Detail) bool {
		rows = append(rows, d.Row)
		return true
	})
	return rows
}

// EachDetail calls f with the detail of each suspicious or flagged name,
// in Report's order, until f returns false. It builds one detail at a
// time: what it keeps of every name is a summary, whatever the addresses
// and clients behind it.
func (e *Engine) EachDetail(f func(Detail) bool) {
	all, _, _ := e.summaries(0, func(a, b summary) int {
		return cmp.Or(cmp.Compare(a.uniqueIPs, b.uniqueIPs), cmp.Compare(a.churnRate, b.churnRate), byName(b, a))
	})
	for _, s := range all {
		if d, ok := e.Detail(s.prefix + s.rest); ok && !f(d) {
			return
		}
	}
}

// Top returns the details of the limit suspicious and flagged names that
// come first by level, then score, then the time they were last seen (then
// name), and how many names of each level there are. Its memory grows with
// limit, not with the names tracked.
func (e *Engine) Top(limit int) (top []Detail, flagged, suspicious int) {
	first, flagged, suspicious := e.summaries(limit, func(a, b summary) int {
		return cmp.Or(cmp.Compare(a.level, b.level), cmp.Compare(a.score, b.score), cmp.Compare(a.last, b.last), byName(b, a))
	})
	for _, s := range first {
		if d, ok := e.Detail(s.prefix + s.rest); ok {
			top = append(top, d)
		}
	}
	return top, flagged, suspicious
}

// summary is what summaries keeps of a suspicious or flagged name.
type summary struct {
	prefix, rest string // the name, prefix+rest: "*." and the domain for a registered domain
	level        Level
	score        float64
	last         uint32
	uniqueIPs    int
	churnRate    float64
}

// byName compares the names of a and b as strings.Compare would.
func byName(a, b summary) int {
	for i := 0; ; i++ {
		ac, aok := nameByte(a, i)
		bc, bok := nameByte(b, i)
		switch {
		case !aok || !bok:
			return cmp.Compare(btoi(aok), btoi(bok))
		case ac != bc:
			return cmp.Compare(ac, bc)
		}
	}
}

// nameByte returns the i-th byte of s's name, and whether it has one.
func nameByte(s summary, i int) (byte, bool) {
	if i < len(s.prefix) {
		return s.prefix[i], true
	}
	if i -= len(s.prefix); i < len(s.rest) {
		return s.rest[i], true
	}
	return 0, false
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// summaries judges every name and returns the summaries of the suspicious and
// flagged ones, the greatest first by order, at most limit of them (0
// for all), with how many names there are of each level. A name is copied
// only for a summary kept: the others are compared with a view of the
// shard's bytes, valid while it is locked.
func (e *Engine) summaries(limit int, order func(a, b summary) int) (ranked []summary, flagged, suspicious int) {
	now := e.clock()
	least := &summaryHeap{order: order} // with limit, the greatest so far, least on top
	e.each(func(sc scope, sh *shard, en *entry) bool {
		e.tally(sh, en, now)
		v := e.judge(sc, sh, en, now, false)
		switch v.Level {
		case LevelNone:
			return true
		case LevelFlagged:
			flagged++
		default:
			suspicious++
		}
		b := sh.names.view(en.name)
		s := summary{prefix: sc.prefix, rest: unsafe.String(unsafe.SliceData(b), len(b)), level: v.Level, score: v.Score,
			last: en.last, uniqueIPs: v.UniqueIPs}
		_, s.churnRate = e.observation(v.UniqueIPs, en.firstSeen(now, e.width), en.last)
		switch {
		case limit == 0:
			least.s = append(least.s, s.kept())
		case least.Len() < limit:
			heap.Push(least, s.kept())
		case order(s, least.s[0]) > 0:
			least.s[0] = s.kept()
			heap.Fix(least, 0)
		}
		return true
	})
	slices.SortFunc(least.s, func(a, b summary) int { return order(b, a) })
	return least.s, flagged, suspicious
}

// kept returns s with its name copied out of the shard.
func (s summary) kept() summary {
	s.rest = strings.Clone(s.rest)
	return s
}

// summaryHeap is a container/heap of summaries, the least by order on top.
type summaryHeap struct {
	s     []summary
	order func(a, b summary) int
}

func (h *summaryHeap) Len() int           { return len(h.s) }
func (h *summaryHeap) Less(i, j int) bool { return h.order(h.s[i], h.s[j]) < 0 }
func (h *summaryHeap) Swap(i, j int)      { h.s[i], h.s[j] = h.s[j], h.s[i] }
func (h *summaryHeap) Push(x any)         { h.s = append(h.s, x.(summary)) }
func (h *summaryHeap) Pop() any {
	x := h.s[len(h.s)-1]
	h.s = h.s[:len(h.s)-1]
	return x
}

// Detail is a suspicious or flagged name's report row with the evidence
// behind its verdict: what the report page shows to answer why a name was
// flagged.
type Detail struct {
	Row
	Verdict   Verdict    // with the hold left, and ReasonRegisteredDomain for a registered domain
	Terms     ScoreTerms // of the default profile's score; zero in the seed profile and below min_ips
	Threshold float64    // the score that flags the name
	MaxAnswer int        // the most evidence addresses one answer of each family held, added up
	HoldUntil time.Time  // when the hold ends; zero when the name is not held
	Addresses []Address  // IPAddressList's addresses, with their networks
}

// Address is an address of a name, in the window, and the network its
// score counts it in.
type Address struct {
	Addr     netip.Addr
	ASN      uint32 // its autonomous system, as Config.ASN gives it; 0 when unknown
	LastSeen time.Time
}

// Network names the network the score counts the address in (see
// NetworkOf).
func (a Address) Network() string { return NetworkOf(a.Addr, a.ASN) }

// Detail returns the detail of name, an exact name or "*.domain" for a
// registered domain's aggregate, when it is suspicious or flagged.
func (e *Engine) Detail(name string) (Detail, bool) {
	sc := e.nameScope()
	if domain, ok := strings.CutPrefix(name, "*."); ok && e.domains != nil {
		sc, name = e.domainScope(), domain
	}
	sh, k := sc.st.locate(name)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	en := sh.lookup(k)
	if en == nil || sh.name(en) != name {
		return Detail{}, false
	}
	return e.detail(sc, sh, en, e.clock())
}

// detail judges en, of sc in the locked shard sh, at now, and returns its
// detail, or false when it is neither suspicious nor flagged.
func (e *Engine) detail(sc scope, sh *shard, en *entry, now uint32) (Detail, bool) {
	since := e.since(now)
	e.tally(sh, en, now)
	v := e.judge(sc, sh, en, now, false)
	if v.Level == LevelNone {
		return Detail{}, false
	}
	first := en.firstSeen(now, e.width)
	name := sh.name(en)
	r := Row{
		DetectionTime:  e.time(en.last),
		DomainName:     sc.prefix + name,
		UniqueIPCount:  v.UniqueIPs,
		QueryCount:     v.Queries,
		UniqueClients:  v.Clients,
		ClientList:     stringsSince(sh.seen.view(en.clients), since),
		IPAddressList:  stringsSince(sh.seen.view(en.ips), since),
		SuspiciousTLD:  v.Reasons&ReasonSuspiciousTLD != 0,
		ShortSLD:       v.Reasons&ReasonShortSLD != 0,
		SuspicionScore: v.Score,
		FirstSeen:      e.time(first),
	}
	r.TLD, _ = tldSLD(name)
	r.ObservationMinutes, r.IPChurnRate = e.observation(v.UniqueIPs, first, en.last)
	v.HoldLeft = en.holdLeft(now)
	if !sc.names() {
		v.Reasons |= ReasonRegisteredDomain
	}
	d := Detail{Row: r, Verdict: v, Threshold: sc.threshold, MaxAnswer: en.largestAnswer()}
	if en.heldUntil > now {
		d.HoldUntil = e.time(en.heldUntil)
	}
	if e.cfg.Profile != ProfileSeed && v.UniqueIPs >= e.cfg.MinIPs {
		d.Terms, _ = e.fluxTerms(sh, en, v.UniqueIPs, since, !sc.names(), false)
	}
	asns := sh.asns.view(en.asns)
	for i, s := range sh.seen.view(en.ips) {
		if s.last <= since {
			continue
		}
		a := Address{Addr: netip.AddrFrom16(s.addr).Unmap(), LastSeen: e.time(s.last)}
		if i < len(asns) {
			a.ASN = asns[i]
		}
		d.Addresses = append(d.Addresses, a)
	}
	return d, true
}

func (e *Engine) time(s uint32) time.Time { return time.Unix(epoch+int64(s), 0).UTC() }

// firstSeen returns when en's first query in the window came, or its
// last one when the window has none.
func (en *entry) firstSeen(now, width uint32) uint32 {
	if _, first := en.queries(now/width, width); first != 0 {
		return first
	}
	return en.last
}

// observation returns the rule's ObservationMinutes and IPChurnRate for
// ips addresses seen from first to last.
func (e *Engine) observation(ips int, first, last uint32) (minutes int, churnRate float64) {
	minutes = max(minutesBetween(e.time(first), e.time(last)), 1)
	return minutes, math.Round(float64(ips)/float64(minutes)*1e4) / 1e4
}

// minutesBetween is KQL's datetime_diff('minute', b, a): the number of
// minute boundaries crossed from a to b.
func minutesBetween(a, b time.Time) int {
	return int(b.Unix()/60 - a.Unix()/60)
}

// Indicator is a held name as an indicator of compromise, for sharing.
type Indicator struct {
	Name      string // "*.domain" for a registered domain, as in the report
	FirstSeen time.Time
	LastSeen  time.Time
	HoldUntil time.Time
	Score     float64 // on the evidence still in the window
	Reasons   Reasons
	Addresses []string // every address kept for the name
	ASNs      []uint32 // the distinct ASNs of the addresses, when an ASN database knows them
}

// Indicators returns the held names, most recently seen first. Deny rules
// are the operator's, not indicators, and are left out.
func (e *Engine) Indicators() []Indicator {
	now := e.clock()
	if !e.holdsAny(now) {
		return nil
	}
	p, unix := e.policy.Load(), unixTime(now)
	var out []Indicator
	e.each(func(sc scope, sh *shard, en *entry) bool {
		if en.heldUntil <= now {
			return true
		}
		name := sh.name(en)
		if p.allowed(name, nil, unix) {
			return true
		}
		e.tally(sh, en, now)
		v := e.judge(sc, sh, en, now, false)
		first := en.first
		if first == 0 {
			first = en.last
		}
		in := Indicator{Name: sc.prefix + name, FirstSeen: e.time(first), LastSeen: e.time(en.last),
			HoldUntil: e.time(en.heldUntil), Score: v.Score, Reasons: v.Reasons,
			Addresses: stringsSince(sh.seen.view(en.ips), 0)}
		if !sc.names() {
			in.Reasons |= ReasonRegisteredDomain
		}
		for _, asn := range sh.asns.view(en.asns) {
			if asn != 0 && !slices.Contains(in.ASNs, asn) {
				in.ASNs = append(in.ASNs, asn)
			}
		}
		out = append(out, in)
		return true
	})
	sort.Slice(out, func(i, j int) bool {
		if !out[i].LastSeen.Equal(out[j].LastSeen) {
			return out[i].LastSeen.After(out[j].LastSeen)
		}
		return out[i].Name < out[j].Name
	})
	return out
}
