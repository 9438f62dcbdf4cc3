package engine

import (
	"fmt"
	"math"
	"net/netip"
	"time"
)

// Seed-rule defaults, taken verbatim from the reference Sentinel rule.
var (
	// SeedCDNSuffixes are the rule's KnownCDNDomains.
	SeedCDNSuffixes = []string{
		"akamaiedge.net", "akamaitechnologies.com", "cloudfront.net",
		"fastly.net", "cloudflare.net", "edgesuite.net",
		"azureedge.net", "trafficmanager.net", "amazonaws.com",
		"googleusercontent.com", "gstatic.com",
	}
	// SeedInternalTLDs are the rule's internal/trusted top-level labels.
	SeedInternalTLDs = []string{"local", "internal", "corp", "lan", "home", "arpa"}
	// SeedExcludeSuffixes are the rule's Microsoft cloud suffixes.
	SeedExcludeSuffixes = []string{"microsoft.com", "windows.com", "office.com", "azure.com", "live.com"}
	// SeedSuspiciousTLDs are the rule's suspicious top-level domains.
	SeedSuspiciousTLDs = []string{"tk", "pw", "cc", "ws", "top", "xyz", "ru", "cn", "info", "online", "click", "link", "gq", "ml", "cf"}
)

// KnownPools are public volunteer and peer pools whose names rotate many
// addresses in many networks with short TTLs by design: the NTP Pool, with
// all its zones, and the DNS seeds of crypto-currency networks, which
// answer with the addresses of peers. They are not fast flux, and the
// default profile never tracks them (see Config.PoolSuffixes).
var KnownPools = []string{
	// The NTP Pool: N.pool.ntp.org, the country, continent and vendor
	// zones (2.debian.pool.ntp.org, 2.android.pool.ntp.org, ...).
	"pool.ntp.org",
	// Bitcoin (mainnet, testnet, testnet4, signet), from Bitcoin Core's
	// chain parameters.
	"seed.bitcoin.sipa.be", "dnsseed.bluematt.me", "dnsseed.bitcoin.dashjr-list-of-p2p-nodes.us",
	"seed.bitcoinstats.com", "seed.bitcoin.jonasschnelli.ch", "seed.btc.petertodd.net",
	"seed.bitcoin.sprovoost.nl", "dnsseed.emzy.de", "seed.bitcoin.wiz.biz", "seed.mainnet.achownodes.xyz",
	"testnet-seed.bitcoin.jonasschnelli.ch", "seed.tbtc.petertodd.net", "seed.testnet.bitcoin.sprovoost.nl",
	"testnet-seed.bluematt.me", "seed.testnet.achownodes.xyz", "seed.testnet4.bitcoin.sprovoost.nl",
	"seed.testnet4.wiz.biz", "seed.signet.bitcoin.sprovoost.nl", "seed.signet.achownodes.xyz",
	// Lightning Network node seeds.
	"nodes.lightning.directory", "lseed.bitcoinstats.com", "lseed.darosior.ninja",
	// Litecoin, Dogecoin, Dash, Zcash, Bitcoin Cash, Monero, Namecoin,
	// Peercoin, DigiByte, Ravencoin.
	"seed-a.litecoin.loshan.co.uk", "dnsseed.thrasher.io", "dnsseed.litecointools.com", "dnsseed.litecoinpool.org",
	"dnsseed.koin-project.com", "seed.multidoge.org", "seed2.multidoge.org",
	"dnsseed.dash.org", "dnsseed.dashdot.io",
	"dnsseed.z.cash", "dnsseed.str4d.xyz", "mainnet.seeder.zfnd.org", "mainnet.is.yolo.money",
	"seed.flowee.cash", "seed-bch.bitcoinforks.org", "btccash-seeder.bitcoinunlimited.info", "seed.bchd.cash",
	"seed.bch.loping.net", "dnsseed.electroncash.de",
	"seeds.moneroseeds.se", "seeds.moneroseeds.ae.org", "seeds.moneroseeds.ch", "seeds.moneroseeds.li",
	"seed.namecoin.libreisp.se", "nmc.seed.quisquis.de", "seed.nmc.markasoftware.com",
	"seed.peercoin.net", "seed2.peercoin.net", "seed.peercoin-library.org",
	"seed.digibyte.io", "seed1.digibyte.io", "seed2.digibyte.io", "seed3.digibyte.io",
	"seed-raven.bitactivate.com", "seed-raven.ravencoin.com", "seed-raven.ravencoin.org",
	// BitTorrent DHT bootstrap routers.
	"router.bittorrent.com", "router.utorrent.com", "dht.transmissionbt.com", "dht.libtorrent.org",
}

// Config holds the engine's tunables; DefaultConfig returns their defaults.
type Config struct {
	Window     time.Duration // lookback window (lookbackWindow)
	MinIPs     int           // minimum unique public IPs to be a candidate (minUniqueIPThreshold)
	MinQueries int           // minimum answered queries to be a candidate (minQueryCount)
	QueryCount string        // what MinQueries counts: CountAnswers, CountRows, or "" for the profile's
	Profile    string        // scoring profile: ProfileDefault or ProfileSeed
	Threshold  float64       // score at or above which a candidate is flagged; 0 for the profile's default
	Weights    Weights       // the default profile's weights
	Hold       time.Duration // how long a flagged name stays flagged after its last flagging answer

	CDNSuffixes     []string       // names under these are never tracked
	InternalTLDs    []string       // names under these top-level labels are never tracked
	ExcludeSuffixes []string       // further suffixes never tracked (the rule's Microsoft list)
	PoolSuffixes    []string       // public pools never tracked; nil for the profile's (KnownPools, none for the seed profile)
	Allow           []Rule         // names (and their children) never tracked nor blocked
	Deny            []Rule         // names (and their children) flagged without evidence
	AllowNets       []netip.Prefix // answers entirely in these networks are allowed
	IgnoreNets      []netip.Prefix // addresses in these networks are not evidence

	SuspiciousTLDs []string
	ShortSLD       int // an SLD at most this long scores a point
	ManyIPs        int // this many unique IPs scores a point
	ManyClients    int // this many unique clients scores a point

	MaxNames          int // hard cap on tracked names
	MaxIPsPerName     int // IPAddressList cap (make_set(IPAddress, 100))
	MaxClientsPerName int // ClientList cap (make_set(ClientIP, 20))

	// ASN returns an address's autonomous system number, 0 when unknown;
	// nil when no ASN database is configured. With it, network diversity
	// is measured on ASNs rather than /16 prefixes.
	ASN func(netip.Addr) uint32
	// FrontDoor reports an address that many unrelated names share (a CDN
	// edge, a cloud's load balancer): it never enters the shared-pool index,
	// so that a flux name cannot tie itself to popular names by answering
	// their addresses, and a CNAME chain through an excluded suffix skips
	// only an answer of such addresses (see skippedChain). nil for none.
	FrontDoor func(netip.Addr) bool

	// Share queues what the engine sees for the other replicas of a fleet
	// (see Engine.Outgoing and Engine.Merge).
	Share bool

	Now func() time.Time // clock; when nil, time.Now read every 100ms (seconds are all the engine needs)
}

// DefaultConfig returns the default profile with the seed rule's lists and
// thresholds (min_ips, min_queries, short_sld, many_ips, many_clients).
func DefaultConfig() Config {
	return Config{
		Window:            time.Hour,
		MinIPs:            5,
		MinQueries:        3,
		Profile:           ProfileDefault,
		Weights:           DefaultWeights,
		Hold:              time.Hour,
		CDNSuffixes:       SeedCDNSuffixes,
		InternalTLDs:      SeedInternalTLDs,
		ExcludeSuffixes:   SeedExcludeSuffixes,
		SuspiciousTLDs:    SeedSuspiciousTLDs,
		ShortSLD:          8,
		ManyIPs:           10,
		ManyClients:       5,
		MaxNames:          DefaultMaxNames,
		MaxIPsPerName:     100,
		MaxClientsPerName: 20,
	}
}

// Profiles.
const (
	ProfileDefault = "default" // prefix diversity, rotation, TTL, NS churn, registered-domain aggregation
	ProfileSeed    = "seed"    // the reference Sentinel rule's SuspicionScore
)

// What MinQueries counts. The seed rule counts its rows after mv-expand,
// one per public address of an answer, so that one answer of five
// addresses already passes minQueryCount; the default profile counts
// answers, the stricter reading.
const (
	CountAnswers = "answers"
	CountRows    = "rows"
)

// Default thresholds per profile.
const (
	DefaultThreshold = 8 // the default profile's score
	SeedThreshold    = 2 // the seed profile's SuspicionScore
)

// Weights are the default profile's weights (see score.go).
type Weights struct {
	Prefix float64 // per effective /16 (IPv4) or /32 (IPv6) prefix
	NS     float64 // per name server beyond the first four
	TLD    float64 // for a suspicious TLD
	Domain float64 // a registered domain needs Domain times the threshold
	Churn  float64 // for addresses churning far beyond the answers' size (see churnPoints)
}

// DefaultWeights are the default profile's documented weights.
var DefaultWeights = Weights{Prefix: 1, NS: 1, TLD: 1, Domain: 1.5, Churn: 1}

// DefaultMaxNames caps tracked names so that a full store stays well
// within a cluster DNS pod's memory (docs/kubernetes.md for the limit to set).
const DefaultMaxNames = 200_000

// pools returns the pools the configuration never tracks: its own list,
// or the profile's.
func (c *Config) pools() []string {
	if c.PoolSuffixes == nil && c.Profile != ProfileSeed {
		return KnownPools
	}
	return c.PoolSuffixes
}

// Validate reports the first value that cannot work, named by the Corefile
// option that sets it, so that setup can pass its error on as it is.
func (c *Config) Validate() error {
	if err := c.ValidateEach(); err != nil {
		return err
	}
	// A count a name's capped list can never reach would turn its rule off.
	for _, n := range []struct {
		option, capOption string
		value, cap        int
	}{
		{"min_ips", "max_ips_per_name", c.MinIPs, c.MaxIPsPerName},
		{"many_ips", "max_ips_per_name", c.ManyIPs, c.MaxIPsPerName},
		{"many_clients", "max_clients_per_name", c.ManyClients, c.MaxClientsPerName},
	} {
		if n.value > n.cap {
			return fmt.Errorf("%s: %d is above %s (%d), which a name's list never exceeds", n.option, n.value, n.capOption, n.cap)
		}
	}
	return nil
}

// ValidateEach checks each setting on its own, as a Corefile's lines are
// read; Validate also checks them against each other.
func (c *Config) ValidateEach() error {
	switch {
	case c.Profile != ProfileDefault && c.Profile != ProfileSeed:
		return fmt.Errorf("profile: unknown profile %q; expect %q or %q", c.Profile, ProfileDefault, ProfileSeed)
	case c.Window <= 0:
		return fmt.Errorf("window: %s is not a positive duration", c.Window)
	case c.Window < time.Minute:
		return fmt.Errorf("window: %s is shorter than 1m", c.Window)
	case c.Window > MaxWindow:
		return fmt.Errorf("window: %s is longer than %s", c.Window, MaxWindow)
	case c.Hold <= 0:
		return fmt.Errorf("hold: %s is not a positive duration", c.Hold)
	case c.Hold < time.Second:
		return fmt.Errorf("hold: %s is shorter than 1s", c.Hold)
	case c.Hold > MaxHold:
		return fmt.Errorf("hold: %s is longer than %s; deny blocks for good", c.Hold, MaxHold)
	case c.QueryCount != "" && c.QueryCount != CountAnswers && c.QueryCount != CountRows:
		return fmt.Errorf("query_count: %q is neither %q nor %q", c.QueryCount, CountAnswers, CountRows)
	case !(c.Threshold >= 0) || math.IsInf(c.Threshold, 1):
		return fmt.Errorf("threshold: %g is not a positive number", c.Threshold)
	case !(c.Weights.Domain >= 1) || math.IsInf(c.Weights.Domain, 1):
		return fmt.Errorf("weight: domain %g is below 1", c.Weights.Domain)
	}
	for _, w := range []struct {
		name  string
		value float64
	}{{"prefix", c.Weights.Prefix}, {"ns", c.Weights.NS}, {"tld", c.Weights.TLD}, {"churn", c.Weights.Churn}} {
		if !(w.value >= 0) || math.IsInf(w.value, 1) {
			return fmt.Errorf("weight: %s %g is not a number >= 0", w.name, w.value)
		}
	}
	for _, n := range []struct {
		option     string
		value, max int
	}{
		{"min_ips", c.MinIPs, 0}, {"min_queries", c.MinQueries, 0}, {"short_sld", c.ShortSLD, 0},
		{"many_ips", c.ManyIPs, 0}, {"many_clients", c.ManyClients, 0}, {"max_names", c.MaxNames, 0},
		{"max_ips_per_name", c.MaxIPsPerName, maxPerName}, {"max_clients_per_name", c.MaxClientsPerName, maxPerName},
	} {
		switch {
		case n.value < 1:
			return fmt.Errorf("%s: %d is not a positive integer", n.option, n.value)
		case n.max > 0 && n.value > n.max:
			return fmt.Errorf("%s: %d is above %d", n.option, n.value, n.max)
		}
	}
	return nil
}

// MaxWindow bounds window: a week, as MaxHold.
const MaxWindow = 168 * time.Hour

// MaxHold bounds hold: a hold read from elsewhere (the fleet's Redis) that
// ends later than that is refused as tampered with.
const MaxHold = 7 * 24 * time.Hour

// maxPerName bounds the per-name caps: a name's addresses and clients are
// kept in lists scanned on every new one.
const maxPerName = 1024
