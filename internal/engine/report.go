package engine

import (
	"math"
	"slices"
	"sort"
	"time"
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
	now := e.clock()
	since := e.since(now)
	var rows []Row
	e.each(func(sc scope, sh *shard, en *entry) bool {
		e.tally(sh, en, now)
		v := e.judge(sh, en, now, sc.threshold)
		if v.Level == LevelNone {
			return true
		}
		_, first := en.queries(now/e.width, e.width)
		if first == 0 {
			first = en.last
		}
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
		r.ObservationMinutes = max(minutesBetween(r.FirstSeen, r.DetectionTime), 1)
		r.IPChurnRate = math.Round(float64(r.UniqueIPCount)/float64(r.ObservationMinutes)*1e4) / 1e4
		rows = append(rows, r)
		return true
	})
	sort.Slice(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if a.UniqueIPCount != b.UniqueIPCount {
			return a.UniqueIPCount > b.UniqueIPCount
		}
		if a.IPChurnRate != b.IPChurnRate {
			return a.IPChurnRate > b.IPChurnRate
		}
		return a.DomainName < b.DomainName
	})
	return rows
}

func (e *Engine) time(s uint32) time.Time { return time.Unix(epoch+int64(s), 0).UTC() }

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
	if !e.st.holds(now) && (e.domains == nil || !e.domains.holds(now)) {
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
		v := e.judge(sh, en, now, sc.threshold)
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
