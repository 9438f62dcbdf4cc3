package fluxguard

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/transfer"
	"github.com/miekg/dns"

	"github.com/fluxguard/fluxguard/internal/engine"
	"github.com/fluxguard/fluxguard/internal/owner"
)

const pluginName = "fluxguard"

func init() { plugin.Register(pluginName, setup) }

func setup(c *caddy.Controller) error {
	cfg, err := parse(c)
	if err != nil {
		return plugin.Error(pluginName, err)
	}
	if err := cfg.openASN(); err != nil {
		return plugin.Error(pluginName, err)
	}
	cfg.server = blockServer(dnsserver.GetConfig(c))
	f, err := newFluxguard(cfg, stateKey(c))
	if err != nil {
		cfg.close()
		return plugin.Error(pluginName, err)
	}
	f.before = blockNamesOf(c).before
	c.OnStartup(func() error {
		// The transfer plugin of the server block sends the rpz zone's
		// NOTIFY; the view is known once the servers are made.
		if t, ok := dnsserver.GetConfig(c).Handler("transfer").(*transfer.Transfer); ok {
			f.xfer = t
		}
		f.view = dnsserver.GetConfig(c).ViewName
		blockNamesOf(c).before = nil // every block has it: see ownState
		return nil
	})
	c.OnStartup(f.start)
	c.OnShutdown(f.stop)
	c.OnFinalShutdown(f.finalShutdown)
	c.OnRestartFailed(f.restartFailed)
	// The plugins set up so far come before fluxguard in the chain.
	f.onWorkers = len(dnsserver.GetConfig(c).Plugin) > 0
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

// actionNames are the actions' names, by action.
var actionNames = [...]string{actionLog: "log", actionBlock: "block", actionSinkhole: "sinkhole"}

// config is a parsed fluxguard block.
type config struct {
	zones          []string
	engine         engine.Config
	action         action
	rootZone       bool // zones hold the root: every name is in them (read beside action, on the query path)
	blockRcode     int
	sinkhole       []netip.Addr
	sinkholeTTL    uint32 // of the answers downstreams cache (sinkhole addresses, the negative SOA), cut to the hold
	metricsDomains int
	server         string // the metrics label of the block's first server (blockServer)
	report         string // listen address of the JSON report, "" for none
	stateFile      string // where state is saved across restarts, "" for none
	stateInterval  time.Duration
	asnDB          asnSource    // asn_db, opened by setup after parsing
	closeASN       func() error // closes the asn_db database, once open
	// owners makes the engine's network-owner lookup from asn_db's (nil
	// without it): owner.Lookup, which adds the embedded operator table.
	owners    func(asn func(netip.Addr) uint32) func(netip.Addr) uint32
	resolveNS float64     // NS queries a second for suspicious domains; 0 for none
	allowFile *policyFile // reloaded on change
	denyFile  *policyFile
	rpz       *rpzConfig    // the Response Policy Zone of the held names, or nil
	shared    *sharedConfig // the fleet's Redis, or nil
	// intel_domains and intel_addrs, reloaded on change, and what they
	// compile to (nil without them).
	intelDomains, intelAddrs *intelFile
	intel                    *engine.Intel
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

// parse reads the fluxguard block of a server block into a config. It
// reads each option's arguments; the values are checked by the engine's
// Validate, after each option so that an error names its line, and by
// parseOption for the plugin's own.
func parse(c *caddy.Controller) (config, error) {
	cfg := defaultConfig()
	for i := 0; c.Next(); i++ {
		if i > 0 {
			return cfg, c.Err(plugin.ErrOnce.Error())
		}
		cfg.zones = plugin.OriginsFromArgsOrServerBlock(c.RemainingArgs(), c.ServerBlockKeys)
		cfg.rootZone = slices.Contains(cfg.zones, ".")
		given := map[string]int{} // option (weight: with its term) → its line
		for c.NextBlock() {
			if err := parseOption(c, &cfg, given); err != nil {
				return cfg, err
			}
			if err := cfg.engine.ValidateEach(); err != nil {
				return cfg, c.Err(err.Error())
			}
		}
		// Options that depend on each other, once all are read.
		if err := cfg.engine.Validate(); err != nil {
			return cfg, c.Err(err.Error())
		}
	}
	cfg.compileIntel()
	return cfg, nil
}

// repeatable are the options whose values add up when given again.
var repeatable = map[string]bool{"allow": true, "deny": true, "allow_nets": true, "ignore_nets": true}

// once refuses a's option when given earlier in the block (given: each
// option's line), unless repeatable: the later one would silently replace
// it (a second action, allow_file or report). weight is given once per
// term.
func (a optionArgs) once(given map[string]int) error {
	opt := a.opt
	if repeatable[opt] {
		return nil
	}
	if opt == "weight" {
		opt += " " + a.args[0]
	}
	if line, ok := given[opt]; ok {
		return a.c.Errf("%s: given already on line %d", opt, line)
	}
	given[opt] = a.c.Line()
	return nil
}

// parseOption parses the option under the cursor into cfg; given holds
// the lines of the options read before it (see once).
func parseOption(c *caddy.Controller, cfg *config, given map[string]int) error {
	a := optionArgs{c: c, opt: c.Val(), args: c.RemainingArgs()}
	if len(a.args) == 0 && a.opt != "resolve_ns" {
		return c.ArgErr()
	}
	if err := a.once(given); err != nil {
		return err
	}
	ec := &cfg.engine
	var err error
	switch a.opt {
	case "profile":
		ec.Profile, err = a.one()
	case "window":
		ec.Window, err = a.duration()
	case "hold":
		ec.Hold, err = a.duration()
	case "min_ips":
		ec.MinIPs, err = a.integer()
	case "min_queries":
		ec.MinQueries, err = a.integer()
	case "query_count":
		ec.QueryCount, err = a.one()
	case "threshold":
		ec.Threshold, err = a.number()
		if err == nil && ec.Threshold == 0 { // 0 would mean the profile's default
			err = c.Errf("threshold: %q is not a positive number", a.args[0])
		}
	case "weight":
		err = a.weight(&ec.Weights)
	case "short_sld":
		ec.ShortSLD, err = a.integer()
	case "many_ips":
		ec.ManyIPs, err = a.integer()
	case "many_clients":
		ec.ManyClients, err = a.integer()
	case "max_names":
		ec.MaxNames, err = a.integer()
	case "max_ips_per_name":
		ec.MaxIPsPerName, err = a.integer()
	case "max_clients_per_name":
		ec.MaxClientsPerName, err = a.integer()
	case "suspicious_tlds":
		ec.SuspiciousTLDs = a.names()
	case "cdn_suffixes":
		ec.CDNSuffixes = a.names()
	case "internal_tlds":
		ec.InternalTLDs = a.names()
	case "exclude_suffixes":
		ec.ExcludeSuffixes = a.names()
	case "pool_suffixes":
		if ec.PoolSuffixes = a.names(); len(a.args) == 1 && a.args[0] == "none" {
			ec.PoolSuffixes = []string{}
		}
	case "allow", "deny", "ignore_nets", "allow_nets", "allow_file", "deny_file":
		err = a.policy(cfg)
	case "intel_domains", "intel_addrs":
		err = a.intel(cfg)
	case "metrics_domains":
		cfg.metricsDomains, err = a.integer()
		if err == nil && cfg.metricsDomains < 1 {
			err = c.Errf("metrics_domains: %d is not a positive integer", cfg.metricsDomains)
		}
	case "action":
		cfg.action, err = a.action()
	case "block_rcode":
		cfg.blockRcode, err = a.rcode()
	case "sinkhole":
		cfg.sinkhole, err = a.addrs()
	case "sinkhole_ttl":
		cfg.sinkholeTTL, err = a.ttl()
	case "state_file":
		cfg.stateFile, err = a.stateFile()
	case "state_interval":
		if cfg.stateInterval, err = a.duration(); err == nil && cfg.stateInterval < time.Second {
			err = c.Errf("state_interval: %s is shorter than 1s", cfg.stateInterval)
		}
	case "resolve_ns":
		cfg.resolveNS, err = a.rate()
	case "asn_db":
		cfg.asnDB.path, err = a.one()
		cfg.asnDB.file, cfg.asnDB.line = c.File(), c.Line()
	case "report":
		cfg.report, err = a.report()
	case "rpz":
		cfg.rpz, err = a.rpz()
	case "shared":
		cfg.shared, err = a.shared()
		ec.Share = err == nil
	default:
		return c.Errf("unknown option %q", a.opt)
	}
	return err
}

// openASN opens the database asn_db names, if any, for the engine's
// lookups. Setup calls it once the block is parsed, so that no later
// parse error leaves it open.
func (cfg *config) openASN() error {
	if cfg.asnDB.path == "" {
		return nil
	}
	lookup, closeDB, err := openASN(cfg.asnDB.path)
	if err != nil {
		return fmt.Errorf("%s:%d - asn_db: %v", cfg.asnDB.file, cfg.asnDB.line, err)
	}
	cfg.engine.ASN, cfg.closeASN = lookup, closeDB
	return nil
}

// close releases what openASN opened.
func (cfg *config) close() {
	if cfg.closeASN != nil {
		cfg.closeASN()
		cfg.closeASN = nil
	}
}

// asnSource is asn_db's path and where the Corefile gives it.
type asnSource struct {
	path, file string
	line       int
}

func (a action) String() string {
	if a < 0 || int(a) >= len(actionNames) {
		return "unknown"
	}
	return actionNames[a]
}
