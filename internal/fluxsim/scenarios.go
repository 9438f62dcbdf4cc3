package fluxsim

import (
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// Class is one class of the scenario suite: domains that behave alike,
// all fast flux or all benign.
type Class struct {
	Name   string   // e.g. "single", "unlisted-cdn"
	Flux   bool     // every domain of the class is fast flux; false: every one is benign
	Names  []Name   // what the server serves for the class, CNAME targets included
	Query  []string // the names clients query: each domain's name, or for a wildcard domain the random subdomains under it
	QTypes []uint16 // the query types clients ask; A when empty
}

// scenarioClasses are the classes of Scenarios, in order: the fast-flux
// ones, then the benign ones a detector must leave alone.
var scenarioClasses = []struct {
	name   string
	flux   bool
	qtypes []uint16
	gen    func(g *gen, n int) ([]Name, []string) // n domains: served names, queried names
}{
	{"single", true, nil, genSingle},
	{"double", true, nil, genDouble},
	{"wildcard", true, nil, genWildcard},
	{"ipv6", true, []uint16{dns.TypeAAAA}, genIPv6},
	{"low-and-slow", true, nil, genLowAndSlow},
	{"hosting-flux", true, nil, genHostingFlux},
	{"shared-pool", true, nil, genSharedPool},
	{"unlisted-cdn", false, nil, genUnlistedCDN},
	{"cdn-cname", false, nil, genCDNCNAME},
	{"multi-asn-saas", false, nil, genSaaS},
	{"fixed-rr", false, nil, genFixedRR},
	{"multi-host", false, nil, genMultiHost},
	{"dual-stack", false, []uint16{dns.TypeA, dns.TypeAAAA}, genDualStack},
	{"failover", false, nil, genFailover},
	{"sinkhole", false, nil, genSinkhole},
	{"internal-rr", false, nil, genInternalRR},
	{"cloud-autoscale", false, nil, genCloudAutoscale},
	{"ntp-pool", false, []uint16{dns.TypeA, dns.TypeAAAA}, genNTPPool},
	{"crypto-seeds", false, nil, genCryptoSeeds},
}

// wildcardQueries is how many random subdomains are listed per wildcard
// domain: more than most domains get queries, so each is usually asked
// once or twice.
const wildcardQueries = 100

// Scenarios returns the scenario suite: perClass domains in each class,
// generated deterministically (the same perClass always gives the same
// names, pools and queries). Every registered domain (last two labels)
// belongs to one domain only, across all classes, and none is under the
// seed rule's CDN, internal or Microsoft suffixes. All the classes' Names
// can be served by one Server; names and queries are lower-case FQDNs.
func Scenarios(perClass int) []Class {
	taken := map[string]bool{}
	out := make([]Class, 0, len(scenarioClasses))
	for _, sc := range scenarioClasses {
		g := &gen{r: rng("scenario:" + sc.name), taken: taken}
		names, query := sc.gen(g, perClass)
		for i := range names {
			names[i].Name = fqdn(names[i].Name)
			if names[i].Target != "" {
				names[i].Target = fqdn(names[i].Target)
			}
		}
		for i := range query {
			query[i] = fqdn(query[i])
		}
		out = append(out, Class{Name: sc.name, Flux: sc.flux, Names: names, Query: query, QTypes: sc.qtypes})
	}
	return out
}

// Fast-flux classes. Their names use mixed TLDs (not only suspicious ones)
// and short and long SLDs alike, so that a detector cannot rely on names.

// fluxName is a fast-flux host: pool 30-200 spread over many /16s, 1-6
// addresses per answer, TTL 30-300 s.
func (g *gen) fluxName() Name {
	pool := g.intn(30, 200)
	return Name{Name: g.host(g.domain(g.fluxSLD, fluxTLDs), fluxSubs), Kind: Flux,
		Pool: pool, PerAnswer: g.intn(1, 6), TTL: uint32(g.intn(30, 300))}
}

func genSingle(g *gen, n int) (names []Name, query []string) {
	for range n {
		names = append(names, g.fluxName())
	}
	return names, queryNames(names)
}

// genDouble adds rotating name servers (4-20, with glue) to single flux.
func genDouble(g *gen, n int) (names []Name, query []string) {
	for range n {
		nm := g.fluxName()
		nm.NSPool = g.intn(4, 20)
		names = append(names, nm)
	}
	return names, queryNames(names)
}

// genWildcard serves flux for every subdomain of the domain; clients ask
// random labels, each only once or twice, so no exact name builds up
// evidence.
func genWildcard(g *gen, n int) (names []Name, query []string) {
	for range n {
		nm := g.fluxName()
		nm.Name, nm.Wildcard = g.domainOf(nm.Name), true
		if g.chance(0.3) { // a wildcard under a fixed label: <random>.cdn.<domain>
			nm.Name = g.pick("cdn", "img", "c", "t", "go") + "." + nm.Name
		}
		names = append(names, nm)
		for range wildcardQueries {
			query = append(query, g.randomLabel()+"."+nm.Name)
		}
	}
	return names, query
}

// genIPv6 answers AAAA from a wide IPv6 pool; clients ask AAAA only.
func genIPv6(g *gen, n int) (names []Name, query []string) {
	for range n {
		nm := g.fluxName()
		nm.IPv6 = true
		names = append(names, nm)
	}
	return names, queryNames(names)
}

// genLowAndSlow answers one address at a time with a TTL of 5-10 s, from a
// wide pool of 20-100.
func genLowAndSlow(g *gen, n int) (names []Name, query []string) {
	for range n {
		nm := g.fluxName()
		nm.Pool, nm.PerAnswer, nm.TTL = g.intn(20, 100), 1, uint32(g.intn(5, 10))
		names = append(names, nm)
	}
	return names, queryNames(names)
}

// hostingProviders are hosting operators (internal/owner's ids) where
// bulletproof-hosting flux rents its proxies (CISA AA25-093A).
var hostingProviders = []string{"vultr", "m247", "stark", "aeza", "contabo", "leaseweb",
	"selectel", "timeweb", "ovh", "hetzner", "digitalocean", "hostinger", "scaleway"}

// genHostingFlux is flux whose proxies sit in a handful (3-6) of hosting
// providers: a pool of 40-200 of their addresses, 1-6 per answer, TTL
// 30-180 s. Network diversity is low; the churn is the evidence.
func genHostingFlux(g *gen, n int) (names []Name, query []string) {
	for range n {
		nm := g.fluxName()
		nm.Pool, nm.TTL = g.intn(40, 200), uint32(g.intn(30, 180))
		nm.Operators = g.sample(hostingProviders, g.intn(3, 6))
		names = append(names, nm)
	}
	return names, queryNames(names)
}

// genSharedPool is one botnet serving many names: groups of 5 domains
// whose answers walk the same pool of 60-200 bots, each from its own
// place in it (FluxBuster's clusters).
func genSharedPool(g *gen, n int) (names []Name, query []string) {
	var botnet string
	pool := 0
	for i := range n {
		if i%5 == 0 {
			botnet, pool = fmt.Sprintf("botnet-%d", i/5), g.intn(60, 200)
		}
		nm := g.fluxName()
		nm.Pool, nm.PoolOf = pool, botnet
		names = append(names, nm)
	}
	return names, queryNames(names)
}

// Benign classes.

// cdnOperators are CDNs (internal/owner's ids) whose edge names are on no
// CDN list: a site CNAMEs to them, or names their edges itself.
var cdnOperators = []string{"akamai", "fastly", "cloudflare", "bunny", "datacamp", "gcore", "edgio", "imperva"}

// cloudOperators are the large clouds (internal/owner's ids).
var cloudOperators = []string{"amazon", "google", "microsoft", "oracle", "alibaba", "tencent", "ibm", "digitalocean"}

// genUnlistedCDN is a CDN (or a site's own edge) not on any CDN list: 20-60
// addresses in 1-2 /16s, 4-8 per answer, TTL 20-60 s.
func genUnlistedCDN(g *gen, n int) (names []Name, query []string) {
	for range n {
		var d string
		switch g.r.IntN(3) {
		case 0:
			d = g.domain(func() string { return g.benignSLD() + "-cdn" }, []string{"net", "com"})
		case 1:
			d = g.domain(func() string { return g.benignSLD() + g.pick("cdn", "static", "media") }, []string{"com", "net", "io"})
		default:
			d = g.domain(g.benignSLD, benignTLDs)
		}
		pool := g.intn(20, 60)
		names = append(names, Name{Name: g.pick("img", "static", "media", "assets", "cdn", "video", "dl") + "." + d,
			Kind: Flux, Pool: pool, PerAnswer: g.intn(4, 8), TTL: uint32(g.intn(20, 60)),
			Operators: []string{g.pick(cdnOperators...)}, Prefixes: pickOf(g, []int{1, 2, 0})})
	}
	return names, queryNames(names)
}

// genCDNCNAME is a site's name CNAMEd (TTL 300-3600 s) to an edge name of
// one of 3-5 CDN providers not on the CDN lists, each on a real CDN's
// address ranges; the edge name answers like an unlisted CDN.
func genCDNCNAME(g *gen, n int) (names []Name, query []string) {
	providers := make([]string, g.intn(3, 5))
	operators := make(map[string]string, len(providers))
	for i := range providers {
		providers[i] = g.domain(func() string { return g.brand(2, 3) + g.pick("edge", "-cdn", "cdn", "cache", "-edge") }, []string{"net", "com"})
		operators[providers[i]] = g.pick(cdnOperators...)
	}
	for range n {
		d := g.domain(g.benignSLD, benignTLDs)
		b, _, _ := strings.Cut(d, ".")
		alias := g.pick("www", "shop", "static", "img", "assets", "cdn") + "." + d
		provider := g.pick(providers...)
		target := b + "." + provider
		if g.chance(0.5) {
			target = fmt.Sprintf("e%d.%s.%s", g.intn(1000, 99999), g.pick("a", "b", "g"), provider)
		}
		for g.taken[target] {
			target = fmt.Sprintf("e%d.a.%s", g.intn(1000, 99999), provider)
		}
		g.taken[target] = true
		pool := g.intn(20, 60)
		names = append(names,
			Name{Name: alias, Kind: CNAME, Target: target, TTL: uint32(g.intn(300, 3600))},
			Name{Name: target, Kind: Flux, Pool: pool, PerAnswer: g.intn(4, 8), TTL: uint32(g.intn(20, 60)),
				Operators: []string{operators[provider]}, Prefixes: pickOf(g, []int{1, 2, 0})})
		query = append(query, alias)
	}
	return names, query
}

// genSaaS is a global service with regional endpoints in 2-3 networks
// (its own and the clouds it also runs in): a stable set of 8-24
// addresses, TTL 60-300 s, answered 2-4 at a time or all at once in
// rotated order.
func genSaaS(g *gen, n int) (names []Name, query []string) {
	networks := append(slices.Clone(cloudOperators), cdnOperators...)
	for range n {
		name := g.pick("api", "login", "sso", "app", "auth", "console", "gateway", "sync") + "." + g.domain(g.benignSLD, benignTLDs)
		pool, ops := g.intn(8, 24), g.sample(networks, g.intn(2, 3))
		ttl := uint32(g.intn(60, 300))
		if g.chance(0.5) {
			names = append(names, Name{Name: name, Kind: Flux, Pool: pool, PerAnswer: g.intn(2, 4), TTL: ttl, Operators: ops})
		} else {
			names = append(names, Name{Name: name, Kind: RoundRobin, IPs: ipStrings(operatorPool4(name, ops, pool, 0)), TTL: ttl})
		}
	}
	return names, queryNames(names)
}

// genFixedRR is plain round robin over 2-8 hosting addresses in 1-2 /16s,
// TTL 60-3600 s.
func genFixedRR(g *gen, n int) (names []Name, query []string) {
	for range n {
		name := g.host(g.domain(g.benignSLD, benignTLDs), []string{"", "www", "shop", "mail", "news", "blog"})
		ips := prefixPool4(name, name, g.intn(2, 8), g.intn(1, 2))
		names = append(names, Name{Name: name, Kind: RoundRobin, IPs: ipStrings(ips), TTL: uint32(g.intn(60, 3600))})
	}
	return names, queryNames(names)
}

// genMultiHost is organisations' hosts: registered domains of 12-30 names
// each, every name one fixed address, the organisation's addresses in
// 3-5 /16s of its own; TTL 60-300 s. n names in all.
func genMultiHost(g *gen, n int) (names []Name, query []string) {
	for len(names) < n {
		org := g.domain(g.benignSLD, benignTLDs)
		hosts := min(g.intn(12, 30), n-len(names))
		ips := prefixPool4(org, org, hosts, g.intn(3, 5))
		for i := range hosts {
			name := fmt.Sprintf("%s%d.%s", g.pick("host", "srv", "app", "vpn", "git", "mail", "wiki"), i, org)
			names = append(names, Name{Name: name, Kind: Static, IPs: []string{ips[i].String()}, TTL: uint32(g.intn(60, 300))})
		}
	}
	return names, queryNames(names)
}

// genDualStack is a fixed set answered in full, 2-4 IPv4 addresses in as
// many /16s and 2-4 IPv6 in as many /32s; clients ask A and AAAA.
func genDualStack(g *gen, n int) (names []Name, query []string) {
	for range n {
		name := g.host(g.domain(g.benignSLD, benignTLDs), []string{"", "www", "portal", "api"})
		k := g.intn(2, 4)
		ips := append(prefixPool4(name, name, k, k), prefixPool6(name, name, k, k)...)
		names = append(names, Name{Name: name, Kind: Static, IPs: ipStrings(ips), TTL: uint32(g.intn(60, 300))})
	}
	return names, queryNames(names)
}

// genFailover switches once, after 5-30 answers, from a primary site's 1-3
// addresses to a disaster-recovery site's as many, in another /16; TTL
// 30-120 s. With one address per site it is the classic 2-IP failover.
func genFailover(g *gen, n int) (names []Name, query []string) {
	for range n {
		name := g.pick("vpn", "portal", "app", "www", "mail", "remote") + "." + g.domain(g.benignSLD, benignTLDs)
		size := g.intn(1, 3)
		ips := append(prefixPool4(name+"#primary", name+"#primary", size, 1), prefixPool4(name+"#dr", name+"#dr", size, 1)...)
		names = append(names, Name{Name: name, Kind: Failover, IPs: ipStrings(ips), PerAnswer: size,
			SwitchAfter: g.intn(5, 30), TTL: uint32(g.intn(30, 120))})
	}
	return names, queryNames(names)
}

// genSinkhole is malicious-looking domains taken over by 2-4 sinkhole
// vendors, each with 2-6 addresses in its /24: each domain answers 1-2 of
// its vendor's addresses, fixed or rotating over them, TTL 60-300 s.
func genSinkhole(g *gen, n int) (names []Name, query []string) {
	vendors := make([][]string, g.intn(2, 4))
	for i := range vendors {
		net24 := prefixPool4(fmt.Sprintf("sinkhole-vendor-%d", i), fmt.Sprintf("sinkhole-vendor-%d", i), 1, 1)[0]
		hosts := g.r.Perm(254)[:g.intn(2, 6)]
		for _, h := range hosts {
			vendors[i] = append(vendors[i], net.IPv4(net24[0], net24[1], net24[2], byte(h+1)).String())
		}
	}
	for range n {
		name := g.host(g.domain(g.fluxSLD, fluxTLDs), fluxSubs)
		v := pickOf(g, vendors)
		per, ttl := g.intn(1, 2), uint32(g.intn(60, 300))
		if g.chance(0.5) {
			start := g.r.IntN(len(v) - per + 1)
			names = append(names, Name{Name: name, Kind: Static, IPs: v[start : start+per], TTL: ttl})
		} else {
			names = append(names, Name{Name: name, Kind: Flux, IPs: v, PerAnswer: per, TTL: ttl})
		}
	}
	return names, queryNames(names)
}

// genInternalRR is split-horizon round robin: 2-8 private addresses under
// a company's public .com name, TTL 60-1200 s.
func genInternalRR(g *gen, n int) (names []Name, query []string) {
	for range n {
		d := g.domain(func() string { return g.benignSLD() + g.pick("", "-corp", "-internal", "-int") }, []string{"com"})
		name := g.pick("intranet", "fs", "ad", "git", "wiki", "vpn", "ldap", "build", "jira") + "." + d
		var ips []string
		ten := g.chance(0.5)
		a, b := g.r.IntN(256), g.r.IntN(256)
		for _, h := range g.r.Perm(254)[:g.intn(2, 8)] {
			if ten {
				ips = append(ips, fmt.Sprintf("10.%d.%d.%d", a, b, h+1))
			} else {
				ips = append(ips, fmt.Sprintf("172.%d.%d.%d", 16+a%16, b, h+1))
			}
		}
		names = append(names, Name{Name: name, Kind: RoundRobin, IPs: ips, TTL: uint32(g.intn(60, 1200))})
	}
	return names, queryNames(names)
}

// genCloudAutoscale is a name pointing straight at one large cloud's
// rotating load-balancer or autoscaling addresses: a pool of 20-200 of its
// addresses, over as many of its /16s, 1-8 per answer, TTL 60 s (as
// cloud load balancers answer) or 30-300 s.
func genCloudAutoscale(g *gen, n int) (names []Name, query []string) {
	for range n {
		name := g.host(g.domain(g.benignSLD, benignTLDs), []string{"", "www", "api", "app", "lb", "shop", "edge", "ingress"})
		ttl := uint32(60)
		if g.chance(0.3) {
			ttl = uint32(g.intn(30, 300))
		}
		names = append(names, Name{Name: name, Kind: Flux, Pool: g.intn(20, 200), PerAnswer: g.intn(1, 8), TTL: ttl,
			Operators: []string{g.pick(cloudOperators...)}})
	}
	return names, queryNames(names)
}

// ntpZones are zones of the NTP Pool as operating systems and devices
// configure them: N.<vendor>.pool.ntp.org, N.pool.ntp.org, and the country
// and continent zones.
var ntpVendors = []string{"debian", "android", "ubuntu", "centos", "fedora", "rhel", "opensuse", "arch", "freebsd", "openbsd", "gentoo", "pfsense", "openwrt", "amazon", "netgear", "tplink", "asus", "synology"}
var ntpCountries = []string{"de", "us", "uk", "fr", "nl", "ch", "jp", "br", "in", "au", "ca", "europe", "north-america", "asia", "south-america", "oceania"}

// genNTPPool is the NTP Pool with its real names: four volunteer servers
// per answer, from a zone of 200-800 at homes and small hosters in many
// networks, TTL 130 s, A and AAAA.
func genNTPPool(g *gen, n int) (names []Name, query []string) {
	for tries := 0; len(names) < n && tries < 100*n; tries++ { // there are about 160 names
		var name string
		switch g.r.IntN(3) {
		case 0:
			name = fmt.Sprintf("%d.%s.pool.ntp.org", g.r.IntN(4), g.pick(ntpVendors...))
		case 1:
			name = fmt.Sprintf("%d.pool.ntp.org", g.r.IntN(4))
			if g.chance(0.5) {
				name = "pool.ntp.org"
			}
		default:
			name = g.pick(ntpCountries...) + ".pool.ntp.org"
			if g.chance(0.5) {
				name = fmt.Sprintf("%d.%s", g.r.IntN(4), name)
			}
		}
		if g.taken[name] {
			continue
		}
		g.taken[name] = true
		names = append(names, Name{Name: name, Kind: Flux, Pool: g.intn(200, 800), PerAnswer: 4, TTL: 130, IPv6: true})
	}
	return names, queryNames(names)
}

// cryptoSeeds are real DNS seeds of crypto-currency networks.
var cryptoSeeds = []string{
	"seed.bitcoin.sipa.be", "dnsseed.bluematt.me", "dnsseed.bitcoin.dashjr-list-of-p2p-nodes.us", "seed.bitcoinstats.com",
	"seed.bitcoin.jonasschnelli.ch", "seed.btc.petertodd.net", "seed.bitcoin.sprovoost.nl", "dnsseed.emzy.de",
	"seed.bitcoin.wiz.biz", "seed.mainnet.achownodes.xyz", "testnet-seed.bitcoin.jonasschnelli.ch", "seed.tbtc.petertodd.net",
	"seed.testnet.bitcoin.sprovoost.nl", "seed.testnet4.bitcoin.sprovoost.nl", "seed.signet.bitcoin.sprovoost.nl",
	"seed-a.litecoin.loshan.co.uk", "dnsseed.thrasher.io", "dnsseed.litecointools.com", "dnsseed.litecoinpool.org",
	"seed.multidoge.org", "seed2.multidoge.org", "dnsseed.dash.org", "dnsseed.z.cash", "dnsseed.str4d.xyz",
	"mainnet.seeder.zfnd.org", "seed.flowee.cash", "seed-bch.bitcoinforks.org", "btccash-seeder.bitcoinunlimited.info",
	"seed.bchd.cash", "seeds.moneroseeds.se", "seeds.moneroseeds.ch", "seed.peercoin.net", "seed.digibyte.io",
	"seed-raven.ravencoin.org", "nodes.lightning.directory", "lseed.bitcoinstats.com",
}

// genCryptoSeeds is crypto-currency DNS seeds with their real names, and
// the service-bit subdomains Bitcoin nodes ask (x9.seed.bitcoin.sipa.be):
// 20-25 peer addresses per answer from 300-2000 peers in many networks,
// TTL 60 s.
func genCryptoSeeds(g *gen, n int) (names []Name, query []string) {
	for i := 0; len(names) < n && i < 100*n; i++ { // there are about 250 names
		name := cryptoSeeds[i%len(cryptoSeeds)]
		if i >= len(cryptoSeeds) {
			name = g.pick("x1", "x5", "x9", "xd", "x49", "x809") + "." + name
		}
		if g.taken[name] {
			continue
		}
		g.taken[name] = true
		names = append(names, Name{Name: name, Kind: Flux, Pool: g.intn(300, 2000), PerAnswer: g.intn(20, 25), TTL: 60})
	}
	return names, queryNames(names)
}

// Name generation.

var (
	// fluxTLDs mixes common and suspicious TLDs (repeats weight the draw).
	fluxTLDs = []string{"com", "com", "com", "net", "net", "org", "info", "top", "ru", "xyz", "biz", "io", "cc", "online", "su", "pw", "site", "club"}
	// benignTLDs are mostly common, with a few that suspicious-TLD lists name.
	benignTLDs = []string{"com", "com", "com", "com", "net", "net", "io", "org", "co", "de", "app", "cloud", "dev", "info", "ru", "xyz"}
	fluxSubs   = []string{"", "", "www", "login", "secure", "cdn", "update", "api", "mail", "portal", "files", "dl", "m", "auth", "panel"}
	syllables  = strings.Fields("ka ro mi ne tal vor lin sa qu zen bri dor fa ly mo pex tri un vel xo ar cor den el gra hub io jet kle lum nor ox pra rix sol tor ul vex wyn zo ba ce di go")
	words      = strings.Fields("secure login update cloud mail bank pay shop account verify support service online portal data sync media news track app web net link host files drive photo video stream game wallet promo deal trade smart fast global")
)

// gen draws names and numbers for one class.
type gen struct {
	r     *rand.Rand
	taken map[string]bool // registered domains and CNAME targets handed out, across classes
}

// intn returns a number in [lo, hi].
func (g *gen) intn(lo, hi int) int { return lo + g.r.IntN(hi-lo+1) }

func (g *gen) chance(p float64) bool { return g.r.Float64() < p }

func pickOf[T any](g *gen, xs []T) T { return xs[g.r.IntN(len(xs))] }

// sample returns k distinct elements of xs, in a random order.
func (g *gen) sample(xs []string, k int) []string {
	out := slices.Clone(xs)
	g.r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out[:min(k, len(out))]
}

func (g *gen) pick(xs ...string) string { return pickOf(g, xs) }

// brand is a pronounceable label of lo to hi syllables.
func (g *gen) brand(lo, hi int) string {
	var b strings.Builder
	for range g.intn(lo, hi) {
		b.WriteString(g.pick(syllables...))
	}
	return b.String()
}

// fluxSLD draws a second-level label as attackers register them: short or
// long made-up words, word combinations, or DGA-like strings.
func (g *gen) fluxSLD() string {
	switch g.r.IntN(5) {
	case 0:
		return g.brand(1, 2)
	case 1:
		return g.brand(3, 5)
	case 2:
		s := g.pick(words...) + "-" + g.pick(words...)
		if g.chance(0.4) {
			s += "-" + g.pick(words...)
		}
		return s
	case 3:
		return g.pick(words...) + g.brand(1, 2)
	default:
		return g.randomString(7, 16)
	}
}

// benignSLD draws a second-level label as companies choose them.
func (g *gen) benignSLD() string {
	switch g.r.IntN(4) {
	case 0:
		return g.brand(1, 2)
	case 1:
		return g.brand(3, 4)
	case 2:
		return g.brand(1, 2) + g.pick(words...)
	default:
		return g.brand(1, 2) + "-" + g.pick("group", "labs", "systems", "digital", "health", "bank", "media", "tech")
	}
}

// randomString is lo to hi random lower-case letters and digits.
func (g *gen) randomString(lo, hi int) string {
	const alnum = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, g.intn(lo, hi))
	for i := range b {
		b[i] = alnum[g.r.IntN(len(alnum))]
	}
	if b[0] >= '0' && b[0] <= '9' { // keep it looking like a name
		b[0] = 'a' + b[0] - '0'
	}
	return string(b)
}

// randomLabel is a random subdomain label as flux wildcards get them:
// hex ids, alphanumeric tokens, or a word with a number.
func (g *gen) randomLabel() string {
	switch g.r.IntN(3) {
	case 0:
		return fmt.Sprintf("%016x", g.r.Uint64())[:g.intn(8, 16)]
	case 1:
		return g.randomString(5, 12)
	default:
		return fmt.Sprintf("%s%d", g.pick(words...), g.r.IntN(10000))
	}
}

// domain returns a registered domain sld.tld not handed out before; sld
// draws a new label each time it is called.
func (g *gen) domain(sld func() string, tlds []string) string {
	for range 100000 {
		if d := sld() + "." + g.pick(tlds...); !g.taken[d] {
			g.taken[d] = true
			return d
		}
	}
	panic("fluxsim: scenario names exhausted") // far beyond any sensible perClass
}

// domainOf is the registered domain (last two labels) of host.
func (g *gen) domainOf(host string) string {
	return strings.TrimSuffix(registeredParent(fqdn(host)), ".")
}

// host puts one of subs ("" for none) in front of domain d.
func (g *gen) host(d string, subs []string) string {
	if s := g.pick(subs...); s != "" {
		return s + "." + d
	}
	return d
}

// queryNames is the names themselves: what clients query when every
// domain is queried by its own name.
func queryNames(names []Name) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = n.Name
	}
	return out
}

func ipStrings(ips []net.IP) []string {
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	return out
}
