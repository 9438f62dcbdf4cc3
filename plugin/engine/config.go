package engine

import (
	"fmt"
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

// Config holds the engine's tunables. DefaultConfig returns the seed rule's values.
type Config struct {
	Window     time.Duration // lookback window (lookbackWindow)
	MinIPs     int           // minimum unique public IPs to be a candidate (minUniqueIPThreshold)
	MinQueries int           // minimum answered queries to be a candidate (minQueryCount)
	Profile    string        // scoring profile: ProfileDefault or ProfileSeed
	Threshold  float64       // score at or above which a candidate is flagged; 0 for the profile's default
	Weights    Weights       // the default profile's weights
	Hold       time.Duration // how long a flagged name stays flagged after its last flagging answer

	CDNSuffixes     []string       // names under these are never tracked
	InternalTLDs    []string       // names under these top-level labels are never tracked
	ExcludeSuffixes []string       // further suffixes never tracked (the rule's Microsoft list)
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

	Now func() time.Time // clock; when nil, time.Now read every 100ms (seconds are all the engine needs)
}

// DefaultConfig returns the seed rule's semantics and defaults.
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
}

// DefaultWeights are the default profile's documented weights.
var DefaultWeights = Weights{Prefix: 1, NS: 1, TLD: 1, Domain: 1.5}

// DefaultMaxNames caps tracked names at about 256 MiB of resident memory,
// as measured with bench/run.sh flood (Go heap plus GC headroom).
const DefaultMaxNames = 200_000

// Validate reports the first value that cannot work.
func (c *Config) Validate() error {
	switch {
	case c.Window < time.Minute:
		return fmt.Errorf("window %s must be at least 1m", c.Window)
	case c.Hold <= 0:
		return fmt.Errorf("hold %s must be positive", c.Hold)
	case c.Profile != ProfileDefault && c.Profile != ProfileSeed:
		return fmt.Errorf("unknown profile %q", c.Profile)
	case c.MinIPs < 1, c.MinQueries < 1, c.Threshold < 0, c.ShortSLD < 1, c.ManyIPs < 1, c.ManyClients < 1:
		return fmt.Errorf("thresholds must be positive")
	case c.Weights.Prefix < 0 || c.Weights.NS < 0 || c.Weights.TLD < 0 || c.Weights.Domain < 1:
		return fmt.Errorf("weights must be positive, and the domain factor at least 1")
	case c.MaxNames < 1 || c.MaxIPsPerName < 1 || c.MaxClientsPerName < 1:
		return fmt.Errorf("caps must be positive")
	case c.MaxIPsPerName > 1024 || c.MaxClientsPerName > 1024:
		return fmt.Errorf("per-name caps must be at most 1024")
	}
	return nil
}
