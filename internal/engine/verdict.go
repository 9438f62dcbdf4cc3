package engine

import (
	"math/bits"
	"strings"
	"time"
)

// Level is a name's standing.
type Level uint8

// Levels, in increasing order of concern.
const (
	LevelNone       Level = iota // not a candidate
	LevelSuspicious              // a candidate (enough IPs and queries) scoring below the threshold
	LevelFlagged                 // a candidate scoring at or above the threshold, or held
)

var levelNames = [...]string{"none", "suspicious", "flagged"}

func (l Level) String() string {
	if int(l) < len(levelNames) {
		return levelNames[l]
	}
	return "unknown"
}

// Reasons is a set of scoring reasons.
type Reasons uint32

// Reasons for a score point, from the seed rule.
const (
	ReasonSuspiciousTLD    Reasons = 1 << iota // TLD is in the suspicious list
	ReasonShortSLD                             // second-level label is short
	ReasonManyIPs                              // many unique IPs
	ReasonManyClients                          // many unique clients
	ReasonDenied                               // on the deny list
	ReasonPrefixDiversity                      // addresses spread over many networks
	ReasonRotating                             // more addresses over time than any one answer holds
	ReasonShortTTL                             // short TTLs
	ReasonNSChurn                              // name servers rotate too (double flux)
	ReasonRegisteredDomain                     // the evidence is the registered domain's, over its subdomains
	ReasonNSDiversity                          // the name servers' addresses spread over many networks
	ReasonChurn                                // addresses churn far beyond the answers' size, in several networks
	ReasonSharedPool                           // addresses shared, in several networks, with names flagged in the window
	ReasonIntel                                // on the intel domain list
	ReasonKnownBadAddr                         // answers brought addresses on the intel address list
	ReasonFleet                                // held by another replica of the fleet (see Engine.Merge)
	ReasonSeedRule                             // the seed rule flags the name too (default profile)
)

var reasonNames = []string{"suspicious_tld", "short_sld", "many_ips", "many_clients", "denied",
	"prefix_diversity", "rotating", "short_ttl", "ns_churn", "registered_domain", "ns_diversity", "churn", "shared_pool",
	"intel", "known_bad_addr", "fleet", "seed_rule"}

// Name returns the name of r, a single reason; "" for none or several.
func (r Reasons) Name() string {
	if r == 0 || r&(r-1) != 0 {
		return ""
	}
	if i := bits.TrailingZeros32(uint32(r)); i < len(reasonNames) {
		return reasonNames[i]
	}
	return ""
}

// String joins the reason names with commas, "" for none.
func (r Reasons) String() string {
	var b strings.Builder
	for i, n := range reasonNames {
		if r&(1<<i) == 0 {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(n)
	}
	return b.String()
}

// Skip says why an observation was not tracked.
type Skip uint8

// Why a name is not tracked.
const (
	SkipNone     Skip = iota // tracked
	SkipAllowed              // on the allowlist: never tracked, never blocked
	SkipExcluded             // excluded by the profile (CDN, internal TLD, excluded suffix)
	SkipNoAddrs              // the answer held no public address: not evidence
)

var skipNames = [...]string{"tracked", "allowed", "excluded", "no_public_addrs"}

func (s Skip) String() string {
	if int(s) < len(skipNames) {
		return skipNames[s]
	}
	return "unknown"
}

// Verdict is the engine's judgement of one name after an observation.
type Verdict struct {
	Level   Level
	Prev    Level  // level before this observation
	TTL     uint32 // the name's answers' mean TTL, weighted to the recent ones (here, where it packs)
	Score   float64
	Reasons Reasons
	Skip    Skip

	// HoldLeft is how long the name (or the registered domain that flags
	// it) stays held, in whole seconds of the engine's clock, rounded up;
	// 0 when it is not held, for a denied name, and in a brief verdict
	// that repeats the last one (see Observation.LevelOnly). Replies that
	// downstream resolvers cache must not outlive it.
	HoldLeft time.Duration

	UniqueIPs int
	Queries   int
	Clients   int

	// Network diversity, computed by the default profile for candidates:
	// effective networks (2^entropy of the /16 or /32 prefixes, or ASNs),
	// distinct /16 (IPv6 /32) prefixes, distinct /24 (IPv6 /48) subnets, and
	// the normalized entropy (log2 networks / log2 unique IPs, 0 to 1).
	Networks  float64
	Prefixes  int
	Subnets   int
	Diversity float64
}

// Changed reports whether the observation moved the name to another level.
func (v Verdict) Changed() bool { return v.Level != v.Prev }
