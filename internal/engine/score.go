package engine

import (
	"math"
	"math/bits"
	"net/netip"
	"slices"
	"strconv"
)

// seedScore is the seed rule's SuspicionScore: a point each for a
// suspicious TLD, a short SLD, many IPs and many clients.
func (e *Engine) seedScore(en *entry, ips, clients int) (float64, Reasons) {
	r := en.nameBits & (ReasonSuspiciousTLD | ReasonShortSLD)
	if ips >= e.cfg.ManyIPs {
		r |= ReasonManyIPs
	}
	if clients >= e.cfg.ManyClients {
		r |= ReasonManyClients
	}
	return float64(bits.OnesCount32(uint32(r))), r
}

// The default profile's cut-offs, exported for the report page to explain
// a score with. TTLs are in seconds: FluxBuster ignores answers with TTLs
// above 3 hours; flux TTLs are minutes or less.
const (
	ShortTTL        = 300      // a mean TTL at most this is short (short_ttl)
	LongTTL         = 3 * 3600 // above it, the answers are no evidence
	MidTTLWeight    = 0.75     // the TTL term between ShortTTL and LongTTL
	DiverseNetworks = 4        // effective networks from which prefix_diversity holds
	UsualNS         = 4        // name servers a zone may show before ns_churn counts
	UsualNSNetworks = 2        // networks its name servers may sit in before ns_diversity counts
	SeedRotation    = 4        // addresses per address of the largest answers for the seed rule's corroboration
)

// fluxScore is the default profile's score:
//
//	score = ttl × (rotation × Prefix × effective_prefixes + Churn × churn) + NS × (extra_name_servers + extra_ns_networks) + TLD × suspicious_tld
//
// effective_prefixes is 2^H, H the entropy (bits) of the addresses' /16
// (IPv4) or /32 (IPv6) prefixes: the number of networks the answers really
// spread over. A botnet's addresses sit in as many networks as there are
// addresses; a CDN's in one or two. rotation is 1 when the name has shown
// at least twice as many addresses as its largest answers hold (see
// entry.largestAnswer: the set rotates), 0.5 otherwise (a fixed round robin or regional set). churn is
// churnPoints, counted with short TTLs only. ttl is 1 for a mean
// TTL up to 5 minutes, 0.75 up to 3 hours and 0 above (TTL weighs evidence,
// never alone). extra_name_servers counts the name servers seen beyond the
// four a zone commonly has and the set it showed last (see nsRotation: double
// flux rotates them), and extra_ns_networks, while they rotate, the
// effective networks of their resolved addresses beyond two.
//
// The networks are computed again when the addresses have changed, unless
// settled: en is held, flagged and was scored earlier in the same second.
// Such an entry stays flagged whatever its score, and in a storm every
// answer adds addresses to it: the first answer of each second computes
// them, the others score it as it was then.
func (e *Engine) fluxScore(sh *shard, en *entry, ips int, since uint32, aggregate, settled bool) (float64, Reasons) {
	t, r := e.fluxTerms(sh, en, ips, since, aggregate, settled)
	return t.Score(), r
}

// ScoreTerms are the terms of the default profile's score (see
// fluxScore), weighted: what a score is made of, to explain it.
type ScoreTerms struct {
	Networks   float64 // Prefix × effective_prefixes
	Rotation   float64 // 1 when the set rotates, 0.5 otherwise
	Churn      float64 // Churn × churn
	TTL        float64 // 1, 0.75 or 0, by the mean TTL
	NS         float64 // NS × extra_name_servers
	NSNetworks float64 // NS × extra_ns_networks
	TLD        float64 // TLD for a suspicious TLD, else 0
}

// Score sums the terms into the score, rounded to two decimals.
func (t ScoreTerms) Score() float64 {
	return math.Round(((t.Networks*t.Rotation+t.Churn)*t.TTL+t.NS+t.NSNetworks+t.TLD)*100) / 100
}

// fluxTerms returns the terms of en's score, with ips addresses in the
// window starting after since, and the reasons they give; aggregate tells
// a registered domain's (see fluxScore for settled).
func (e *Engine) fluxTerms(sh *shard, en *entry, ips int, since uint32, aggregate, settled bool) (ScoreTerms, Reasons) {
	r := en.nameBits & ReasonSuspiciousTLD
	w := e.cfg.Weights
	if int(en.networksOf) != ips && !settled {
		eff, wide, narrow := networkStats(sh.seen.view(en.ips), sh.asns.view(en.asns), since)
		en.networks, en.networksOf = float32(eff), uint16(ips)
		en.p16, en.p24 = uint8(min(wide, 255)), uint8(min(narrow, 255))
	}
	eff := float64(en.networks)
	t := ScoreTerms{Networks: w.Prefix * eff, Rotation: 1, TTL: 1}
	if eff >= DiverseNetworks {
		r |= ReasonPrefixDiversity
	}
	largest := en.largestAnswer()
	if largest > 0 && ips >= 2*largest {
		r |= ReasonRotating
	} else {
		t.Rotation = 0.5
	}
	// A registered domain's aggregate holds the sets of all its names:
	// hosts each with a fixed address of their own, in a few networks,
	// would pass for churn.
	if churn := churnPoints(ips, largest, eff); churn > 0 && en.meanTTL <= ShortTTL && !aggregate {
		t.Churn = w.Churn * churn
		r |= ReasonChurn
	}
	switch {
	case en.meanTTL <= ShortTTL:
		r |= ReasonShortTTL
	case en.meanTTL <= LongTTL:
		t.TTL = MidTTLWeight
	default:
		t.TTL = 0
	}
	names := nsRotation(sh.seen.view(en.ns), since)
	if names > 0 {
		t.NS = w.NS * float64(names)
		r |= ReasonNSChurn
	}
	// The name servers' networks count while they rotate: their names, or
	// (classic double flux) the addresses behind the same names.
	if en.nsIPs.len > 0 && (names > 0 || nsRotation(sh.seen.view(en.nsIPs), since) > 0) {
		if extra := effectiveNetworks(sh.seen.view(en.nsIPs), nil, since) - UsualNSNetworks; extra > 0 {
			t.NSNetworks = w.NS * extra
			r |= ReasonNSDiversity
		}
	}
	if r&ReasonSuspiciousTLD != 0 {
		t.TLD = w.TLD
	}
	return t, r
}

// Churn: flux whose proxies sit in a handful of hosting providers shows
// few networks but many more addresses than any one answer holds, and
// keeps adding them. A service's fixed set of regional endpoints stops
// growing at a couple of dozen, and one operator's rotating addresses
// (cloud autoscaling, a CDN's edges) are one network. So churn counts in
// several networks only, with more addresses than such a set holds, or
// with as many answers' worth, times the networks, as no fixed set shows.
const (
	churnMinIPs      = 12 // addresses in the window, at least,
	churnMinRotation = 2  // at this many per address of the largest answer, at least (the set rotates);
	churnManyIPs     = 25 // more than a fixed set of regional endpoints holds...
	churnMinRatio    = 4  // ...at this many per address of the largest answer;
	churnLongRun     = 48 // or that ratio times the effective networks, whatever their number
	churnMinNetworks = 3  // effective networks, at least
	churnMaxPoints   = 8  // the default threshold: churn alone can flag
)

// churnPoints scores ips addresses seen over a window whose largest answer
// held maxAnswer of them, in eff effective networks: the ratio of the two
// counts, up to churnMaxPoints, when they churn in several networks; 0
// otherwise.
func churnPoints(ips, maxAnswer int, eff float64) float64 {
	if maxAnswer == 0 || ips < churnMinIPs || eff < churnMinNetworks-0.01 { // 2^entropy of three even networks may round below 3
		return 0
	}
	ratio := float64(ips) / float64(maxAnswer)
	if ratio < churnMinRotation || ratio*eff < churnLongRun && (ips < churnManyIPs || ratio < churnMinRatio) {
		return 0
	}
	return min(ratio, churnMaxPoints)
}

// networkStats returns, for the addresses of list seen after since, their
// effective number of networks (see effectiveNetworks) and their numbers
// of distinct /16 and /24 prefixes (IPv4), or /32 and /48 (IPv6). Sorted by
// /24, they are sorted by /16 too: one sort gives all three when none of
// them has an ASN (asns is nil or parallel to list), their networks being
// their /16s then.
func networkStats(list []seen, asns []uint32, since uint32) (eff float64, wide, narrow int) {
	var keys [maxSampled]uint64
	n, owned := 0, false
	for i := range list {
		if list[i].last <= since || n == len(keys) {
			continue
		}
		keys[n] = prefixKey(list[i].addr)
		owned = owned || i < len(asns) && asns[i] != 0
		n++
	}
	if n == 0 {
		return 0, 0, 0
	}
	k := keys[:n]
	slices.Sort(k)
	wide, narrow = 1, 1
	sum, start := 0.0, 0 // of c·log2(c) over the /16s' address counts c; where the current /16 starts
	for i := 1; i < n; i++ {
		if k[i] != k[i-1] {
			narrow++
		}
		if k[i]>>16 != k[i-1]>>16 {
			wide++
			sum += xlog2x[i-start]
			start = i
		}
	}
	if owned {
		return effectiveNetworks(list, asns, since), wide, narrow
	}
	return twoToEntropy(n, sum+xlog2x[n-start]), wide, narrow
}

// maxSampled is how many of a list's addresses networkStats and
// effectiveNetworks look at: lists hold up to 1024; the first 64 are a
// fair sample.
const maxSampled = 64

// xlog2x holds x·log2(x) for the counts of up to maxSampled addresses.
var xlog2x = func() (t [maxSampled + 1]float64) {
	for x := 2; x < len(t); x++ {
		t[x] = float64(x) * math.Log2(float64(x))
	}
	return t
}()

// twoToEntropy returns 2^H for the entropy H, in bits, of n values in
// groups of sizes c, given sum, the sum of c·log2(c): H = log2(n) − sum/n.
func twoToEntropy(n int, sum float64) float64 {
	return math.Exp2((xlog2x[n] - sum) / float64(n))
}

// effectiveNetworks returns 2^H for the entropy H, in bits, of the networks
// of the addresses seen after since: their ASNs where asns knows them
// (asns is nil or parallel to list), else their /16 (IPv4) or /32 (IPv6)
// prefixes.
func effectiveNetworks(list []seen, asns []uint32, since uint32) float64 {
	var keys [maxSampled]uint64
	n := 0
	for i := range list {
		if list[i].last <= since || n == len(keys) {
			continue
		}
		asn := uint32(0)
		if i < len(asns) {
			asn = asns[i]
		}
		keys[n] = networkKey(list[i].addr, asn)
		n++
	}
	if n == 0 {
		return 0
	}
	k := keys[:n]
	slices.Sort(k)
	sum, start := 0.0, 0
	for i := 1; i < n; i++ {
		if k[i] != k[i-1] {
			sum += xlog2x[i-start]
			start = i
		}
	}
	return twoToEntropy(n, sum+xlog2x[n-start])
}

// networkKey identifies the network of address a, of autonomous system
// asn (0 when unknown): the ASN, else its /16 (IPv4) or /32 (IPv6) prefix.
func networkKey(a [16]byte, asn uint32) uint64 {
	switch {
	case asn != 0:
		return 2<<32 | uint64(asn)
	case isV4Mapped(a):
		return 1<<32 | uint64(a[12])<<8 | uint64(a[13])
	}
	return uint64(a[0])<<24 | uint64(a[1])<<16 | uint64(a[2])<<8 | uint64(a[3])
}

// NetworkOf names the network the score counts address a in, of
// autonomous system asn (0 when unknown), as networkKey tells them apart:
// "AS64500", else its /16 (IPv4) or /32 (IPv6) prefix.
func NetworkOf(a netip.Addr, asn uint32) string {
	if asn != 0 {
		return "AS" + strconv.FormatUint(uint64(asn), 10)
	}
	a = a.Unmap()
	bits := 32
	if a.Is4() {
		bits = 16
	}
	p, _ := a.Prefix(bits)
	return p.String()
}

// prefixKey orders addresses by their /24 (IPv4) or /48 (IPv6) prefix, so
// that shifted right by 16 bits it is their /16 or /32.
func prefixKey(a [16]byte) uint64 {
	if isV4Mapped(a) {
		return 1<<56 | uint64(a[12])<<24 | uint64(a[13])<<16 | uint64(a[14])<<8
	}
	return uint64(a[0])<<40 | uint64(a[1])<<32 | uint64(a[2])<<24 | uint64(a[3])<<16 | uint64(a[4])<<8 | uint64(a[5])
}

func isV4Mapped(a [16]byte) bool {
	return a[10] == 0xff && a[11] == 0xff && a[0]|a[1]|a[2]|a[3]|a[4]|a[5]|a[6]|a[7]|a[8]|a[9] == 0
}

// nsRotation returns how many of the name servers (or their addresses)
// of list seen after since lie beyond both UsualNS and the set seen last,
// once the set has changed twice: an NS record set comes whole, so those
// seen in the same second are one set. A zone whose set does not change
// never counts, however many servers (and networks) it has, nor one that
// moved to another provider once, nor a name whose answers show its own
// zone's set and resolve_ns its registered domain's; one whose set
// rotates counts what it has shown besides.
func nsRotation(list []seen, since uint32) int {
	seen, latest, current := 0, uint32(0), 0
	for _, s := range list {
		switch {
		case s.last <= since:
			continue
		case s.last > latest:
			latest, current = s.last, 0
		}
		seen++
		if s.last == latest {
			current++
		}
	}
	// The sets seen before the last: two at least.
	var earlier [2]uint32
	sets := 0
	for _, s := range list {
		if s.last > since && s.last != latest && sets < 2 && (sets == 0 || s.last != earlier[0]) {
			earlier[sets] = s.last
			sets++
		}
	}
	if sets < 2 {
		return 0
	}
	return seen - max(UsualNS, current)
}
