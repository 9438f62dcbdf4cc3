package fluxguard

import (
	"strconv"
	"sync/atomic"

	"golang.org/x/time/rate"

	"github.com/fluxguard/fluxguard/internal/engine"
)

// Detection log lines are rate-limited so that a flood (say, millions of
// random subdomains of a flagged domain) cannot fill a disk: at most
// logRate lines a second, in bursts of logBurst; the lines dropped are
// counted in the next line written.
const (
	logRate  = 10
	logBurst = 50
)

// logField returns name as a key=value log field: as it is when it holds
// only a hostname's bytes, quoted otherwise, so that a name from a query
// (a label with an escaped space, say) cannot forge the fields after it.
func logField(name string) string {
	for i := 0; i < len(name); i++ {
		if c := name[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_' || c == '*') {
			return strconv.Quote(name)
		}
	}
	return name
}

// detectionLog writes one line per level change, rate-limited.
type detectionLog struct {
	limit      *rate.Limiter
	suppressed atomic.Uint64
}

func newDetectionLog() *detectionLog {
	return &detectionLog{limit: rate.NewLimiter(logRate, logBurst)}
}

// levelChanged logs that name moved to v's level.
func (l *detectionLog) levelChanged(name string, v engine.Verdict) {
	if !l.limit.Allow() {
		l.suppressed.Add(1)
		return
	}
	extra := ""
	if n := l.suppressed.Swap(0); n > 0 {
		extra = " suppressed_before=" + strconv.FormatUint(n, 10)
	}
	log.Infof("domain=%s level=%s previous=%s score=%g reasons=%s unique_ips=%d queries=%d clients=%d networks=%g prefixes=%d subnets=%d diversity=%g technique=T1568.001%s",
		logField(name), v.Level, v.Prev, v.Score, v.Reasons, v.UniqueIPs, v.Queries, v.Clients, v.Networks, v.Prefixes, v.Subnets, v.Diversity, extra)
}
