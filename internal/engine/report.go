package engine

import (
	"math"
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
