package fluxguard

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"
	"github.com/miekg/dns"

	"github.com/fluxguard/fluxguard/internal/owner"
	"github.com/fluxguard/fluxguard/internal/engine"
)

const pluginName = "fluxguard"

func init() { plugin.Register(pluginName, setup) }

func setup(c *caddy.Controller) error {
	cfg, err := parse(c)
	if err != nil {
		return plugin.Error(pluginName, err)
	}
	f, err := newFluxguard(cfg, stateKey(c))
	if err != nil {
		if cfg.closeASN != nil {
			cfg.closeASN()
		}
		return plugin.Error(pluginName, err)
	}
	c.OnStartup(f.start)
	c.OnShutdown(f.stop)
	c.OnFinalShutdown(f.finalShutdown)
	c.OnRestartFailed(f.restartFailed)
	dnsserver.GetConfig(c).AddPlugin(func(next plugin.Handler) plugin.Handler {
		f.Next = next
		return f
	})
	return nil
}

// defaultResolveRate is resolve_ns's rate when none is given.
const defaultResolveRate = 2

// action is what fluxguard does with the answer for a flagged name.
type action int

const (
	actionLog      action = iota // monitor: log, tag and count only
	actionBlock                  // answer NXDOMAIN (or REFUSED) with EDE 15
	actionSinkhole               // answer with the sinkhole addresses and EDE 15
)

var actionNames = map[string]action{"log": actionLog, "block": actionBlock, "sinkhole": actionSinkhole}

// config is a parsed fluxguard block.
type config struct {
	zones          []string
	engine         engine.Config
	action         action
	blockRcode     int
	sinkhole       []netip.Addr
	sinkholeTTL    uint32 // of the answers downstreams cache (sinkhole addresses, the negative SOA), cut to the hold
	metricsDomains int
	report         string // listen address of the JSON report, "" for none
	stateFile      string // where state is saved across restarts, "" for none
	stateInterval  time.Duration
	closeASN       func() error // closes the asn_db database, if any
	// owners makes the engine's network-owner lookup from asn_db's (nil
	// without it): owner.Lookup, which adds the embedded operator table.
	owners    func(asn func(netip.Addr) uint32) func(netip.Addr) uint32
	resolveNS float64     // NS queries a second for suspicious domains; 0 for none
	allowFile *policyFile // reloaded on change
	denyFile  *policyFile
}

func defaultConfig() config {
	return config{
		engine:         engine.DefaultConfig(),
		action:         actionLog,
		blockRcode:     dns.RcodeNameError, // survives forwarders, where REFUSED turns into SERVFAIL (docs/resolvers.md)
		sinkhole:       []netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified()},
		sinkholeTTL:    10,
		metricsDomains: 100,
		stateInterval:  time.Minute,
		owners:         owner.Lookup,
	}
}

func parse(c *caddy.Controller) (cfg config, err error) {
	cfg = defaultConfig()
	defer func() {
		// asn_db is opened as it is parsed: a later error must not leak it.
		if err != nil && cfg.closeASN != nil {
			cfg.closeASN()
			cfg.closeASN = nil
		}
	}()
	blocks := 0
	for c.Next() {
		if blocks++; blocks > 1 {
			return cfg, c.Err("only one fluxguard block per server block")
		}
		cfg.zones = plugin.OriginsFromArgsOrServerBlock(c.RemainingArgs(), c.ServerBlockKeys)
		for c.NextBlock() {
			if err := parseOption(c, &cfg); err != nil {
				return cfg, err
			}
		}
	}
	if err := cfg.engine.Validate(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// parseOption parses the option under the cursor into cfg.
func parseOption(c *caddy.Controller, cfg *config) error {
	opt := c.Val()
	args := c.RemainingArgs()
	if len(args) == 0 && opt != "resolve_ns" {
		return c.ArgErr()
	}
	ec := &cfg.engine
	one := func() (string, error) {
		if len(args) != 1 {
			return "", c.Errf("%s takes exactly one argument", opt)
		}
		return args[0], nil
	}
	positive := func(dst *int) error {
		s, err := one()
		if err != nil {
			return err
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return c.Errf("%s: %q is not a positive integer", opt, s)
		}
		*dst = n
		return nil
	}
	duration := func(dst *time.Duration) error {
		s, err := one()
		if err != nil {
			return err
		}
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return c.Errf("%s: %q is not a positive duration", opt, s)
		}
		*dst = d
		return nil
	}
	names := func() []string {
		out := make([]string, len(args))
		for i, a := range args {
			out[i] = engine.Normalize(a)
		}
		return out
	}

	switch opt {
	case "profile":
		s, err := one()
		if err != nil {
			return err
		}
		if s != engine.ProfileDefault && s != engine.ProfileSeed {
			return c.Errf("profile: unknown profile %q; expect 'default' or 'seed'", s)
		}
		ec.Profile = s
	case "window":
		if err := duration(&ec.Window); err != nil {
			return err
		}
		if ec.Window < time.Minute {
			return c.Errf("window: %s is shorter than 1m", ec.Window)
		}
	case "hold":
		return duration(&ec.Hold)
	case "min_ips":
		return positive(&ec.MinIPs)
	case "min_queries":
		return positive(&ec.MinQueries)
	case "threshold":
		s, err := one()
		if err != nil {
			return err
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || f <= 0 {
			return c.Errf("threshold: %q is not a positive number", s)
		}
		ec.Threshold = f
	case "weight":
		if len(args) != 2 {
			return c.Errf("weight takes a name and a value")
		}
		f, err := strconv.ParseFloat(args[1], 64)
		if err != nil || f < 0 {
			return c.Errf("weight: %q is not a number >= 0", args[1])
		}
		switch args[0] {
		case "prefix":
			ec.Weights.Prefix = f
		case "ns":
			ec.Weights.NS = f
		case "tld":
			ec.Weights.TLD = f
		case "churn":
			ec.Weights.Churn = f
		case "domain":
			if f < 1 {
				return c.Errf("weight: domain %s is below 1", args[1])
			}
			ec.Weights.Domain = f
		default:
			return c.Errf("weight: unknown weight %q; expect 'prefix', 'ns', 'tld', 'churn' or 'domain'", args[0])
		}
	case "short_sld":
		return positive(&ec.ShortSLD)
	case "many_ips":
		return positive(&ec.ManyIPs)
	case "many_clients":
		return positive(&ec.ManyClients)
	case "max_names":
		return positive(&ec.MaxNames)
	case "max_ips_per_name":
		if err := positive(&ec.MaxIPsPerName); err != nil {
			return err
		}
		if ec.MaxIPsPerName > 1024 {
			return c.Errf("max_ips_per_name: %d is above 1024", ec.MaxIPsPerName)
		}
	case "max_clients_per_name":
		if err := positive(&ec.MaxClientsPerName); err != nil {
			return err
		}
		if ec.MaxClientsPerName > 1024 {
			return c.Errf("max_clients_per_name: %d is above 1024", ec.MaxClientsPerName)
		}
	case "metrics_domains":
		return positive(&cfg.metricsDomains)
	case "cdn_suffixes":
		ec.CDNSuffixes = names()
	case "internal_tlds":
		ec.InternalTLDs = names()
	case "exclude_suffixes":
		ec.ExcludeSuffixes = names()
	case "pool_suffixes":
		if ec.PoolSuffixes = names(); len(args) == 1 && args[0] == "none" {
			ec.PoolSuffixes = []string{}
		}
	case "query_count":
		s, err := one()
		if err != nil {
			return err
		}
		if s != engine.CountAnswers && s != engine.CountRows {
			return c.Errf("query_count: %q is neither %q nor %q", s, engine.CountAnswers, engine.CountRows)
		}
		ec.QueryCount = s
	case "suspicious_tlds":
		ec.SuspiciousTLDs = names()
	case "allow", "deny":
		rules, err := parseRules(args)
		if err != nil {
			return c.Errf("%s: %v", opt, err)
		}
		if opt == "allow" {
			ec.Allow = append(ec.Allow, rules...)
		} else {
			ec.Deny = append(ec.Deny, rules...)
		}
	case "ignore_nets", "allow_nets":
		nets, err := parsePrefixes(args)
		if err != nil {
			return c.Errf("%s: %v", opt, err)
		}
		if opt == "ignore_nets" {
			ec.IgnoreNets = append(ec.IgnoreNets, nets...)
		} else {
			ec.AllowNets = append(ec.AllowNets, nets...)
		}
	case "allow_file", "deny_file":
		s, err := one()
		if err != nil {
			return err
		}
		pf := &policyFile{path: s}
		if err := pf.read(); err != nil {
			return c.Errf("%s: %v", opt, err)
		}
		if opt == "allow_file" {
			cfg.allowFile = pf
		} else {
			cfg.denyFile = pf
		}
	case "action":
		s, err := one()
		if err != nil {
			return err
		}
		a, ok := actionNames[strings.ToLower(s)]
		if !ok {
			return c.Errf("action: unknown action %q; expect 'log', 'block' or 'sinkhole'", s)
		}
		cfg.action = a
	case "block_rcode":
		s, err := one()
		if err != nil {
			return err
		}
		switch strings.ToUpper(s) {
		case "REFUSED":
			cfg.blockRcode = dns.RcodeRefused
		case "NXDOMAIN":
			cfg.blockRcode = dns.RcodeNameError
		default:
			return c.Errf("block_rcode: %q; expect 'REFUSED' or 'NXDOMAIN'", s)
		}
	case "sinkhole":
		cfg.sinkhole = cfg.sinkhole[:0:0]
		for _, a := range args {
			ip, err := netip.ParseAddr(a)
			if err != nil {
				return c.Errf("sinkhole: %q is not an IP address", a)
			}
			cfg.sinkhole = append(cfg.sinkhole, ip.Unmap())
		}
	case "sinkhole_ttl":
		var d time.Duration
		if err := duration(&d); err != nil {
			return err
		}
		if d < time.Second || d > 24*time.Hour {
			return c.Errf("sinkhole_ttl: %s is outside 1s..24h", d)
		}
		cfg.sinkholeTTL = uint32(d / time.Second)
	case "state_file":
		s, err := one()
		if err != nil {
			return err
		}
		if fi, err := os.Stat(filepath.Dir(s)); err != nil || !fi.IsDir() {
			return c.Errf("state_file: directory of %q does not exist", s)
		}
		cfg.stateFile = s
	case "state_interval":
		if err := duration(&cfg.stateInterval); err != nil {
			return err
		}
		if cfg.stateInterval < housekeepEvery {
			return c.Errf("state_interval: %s is shorter than %s", cfg.stateInterval, housekeepEvery)
		}
	case "resolve_ns":
		cfg.resolveNS = defaultResolveRate
		if len(args) > 1 {
			return c.Errf("resolve_ns takes at most one argument")
		}
		if len(args) == 1 {
			f, err := strconv.ParseFloat(args[0], 64)
			if err != nil || f <= 0 || f > 1000 {
				return c.Errf("resolve_ns: %q is not a rate between 0 and 1000 queries a second", args[0])
			}
			cfg.resolveNS = f
		}
	case "asn_db":
		s, err := one()
		if err != nil {
			return err
		}
		lookup, closeDB, err := openASN(s)
		if err != nil {
			return c.Errf("asn_db: %v", err)
		}
		ec.ASN, cfg.closeASN = lookup, closeDB
	case "report":
		s, err := one()
		if err != nil {
			return err
		}
		if _, _, err := net.SplitHostPort(s); err != nil {
			return c.Errf("report: %q is not a host:port address", s)
		}
		cfg.report = s
	default:
		return c.Errf("unknown option %q", opt)
	}
	return nil
}

func (a action) String() string {
	for name, v := range actionNames {
		if v == a {
			return name
		}
	}
	return "unknown"
}
