package fluxguard

import (
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"
	"github.com/miekg/dns"

	"github.com/fluxguard/fluxguard/internal/engine"
)

func TestSetup(t *testing.T) {
	c := caddy.NewTestController("dns", `fluxguard {
		action block
	}`)
	if err := setup(c); err != nil {
		t.Fatalf("Expected no errors, but got: %v", err)
	}
	plugins := dnsserver.GetConfig(c).Plugin
	if len(plugins) != 1 {
		t.Fatalf("Expected 1 plugin in the chain, got %d", len(plugins))
	}
	f, ok := plugins[0](nil).(*Fluxguard)
	if !ok {
		t.Fatalf("Expected the plugin to be a *Fluxguard, got %T", plugins[0](nil))
	}
	// Its state is kept for a reload under the block's key: forget it, or
	// the next test's setup of an unnamed block adopts it.
	defer f.finalShutdown()
	if f.Name() != "fluxguard" {
		t.Errorf("Expected name fluxguard, got %q", f.Name())
	}
	if f.cfg.action != actionBlock {
		t.Errorf("Expected action block, got %s", f.cfg.action)
	}

	c = caddy.NewTestController("dns", `fluxguard {
		window 10s
	}`)
	err := setup(c)
	if err == nil {
		t.Fatal("Expected errors, but got none")
	}
	if !strings.HasPrefix(err.Error(), "plugin/fluxguard: ") || !strings.Contains(err.Error(), "window") {
		t.Errorf("Expected a plugin/fluxguard error naming window, got: %v", err)
	}
}

// TestSetupOnWorkers checks that queries go to stack workers when other
// plugins come before fluxguard in the chain, and only then.
func TestSetupOnWorkers(t *testing.T) {
	for _, before := range []int{0, 1, 3} {
		c := caddy.NewTestController("dns", `fluxguard`)
		for range before {
			dnsserver.GetConfig(c).AddPlugin(func(next plugin.Handler) plugin.Handler { return next })
		}
		if err := setup(c); err != nil {
			t.Fatalf("Expected no errors, but got: %v", err)
		}
		plugins := dnsserver.GetConfig(c).Plugin
		f := plugins[len(plugins)-1](nil).(*Fluxguard)
		f.finalShutdown()
		if want := before > 0; f.onWorkers != want {
			t.Errorf("Expected onWorkers %t with %d plugins before fluxguard, got %t", want, before, f.onWorkers)
		}
	}
}

func TestParseDefaults(t *testing.T) {
	c := caddy.NewTestController("dns", `fluxguard`)
	cfg, err := parse(c)
	if err != nil {
		t.Fatalf("Expected no errors, but got: %v", err)
	}
	if !reflect.DeepEqual(cfg.engine, engine.DefaultConfig()) {
		t.Errorf("Expected engine config %+v, got %+v", engine.DefaultConfig(), cfg.engine)
	}
	if cfg.action != actionLog {
		t.Errorf("Expected action log, got %s", cfg.action)
	}
	if cfg.blockRcode != dns.RcodeNameError {
		t.Errorf("Expected block_rcode REFUSED, got %s", dns.RcodeToString[cfg.blockRcode])
	}
	if want := []netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified()}; !slices.Equal(cfg.sinkhole, want) {
		t.Errorf("Expected sinkhole %v, got %v", want, cfg.sinkhole)
	}
	if cfg.sinkholeTTL != 10 {
		t.Errorf("Expected sinkhole_ttl 10, got %d", cfg.sinkholeTTL)
	}
	if cfg.metricsDomains != 100 {
		t.Errorf("Expected metrics_domains 100, got %d", cfg.metricsDomains)
	}
	if cfg.report != "" {
		t.Errorf("Expected no report address, got %q", cfg.report)
	}
	if len(cfg.zones) != 0 {
		t.Errorf("Expected no zones without args or server block keys, got %v", cfg.zones)
	}
	// The defaults must be a working engine configuration.
	if _, err := newFluxguard(cfg, ""); err != nil {
		t.Errorf("Expected the default config to build, got: %v", err)
	}
}

func TestParseZones(t *testing.T) {
	tests := []struct {
		name  string
		input string
		keys  []string
		want  []string
	}{
		{"from args", `fluxguard example.org Example.NET.`, nil, []string{"example.org.", "example.net."}},
		{"from args, keys ignored", `fluxguard example.org`, []string{"example.com.:53"}, []string{"example.org."}},
		{"from server block keys", `fluxguard`, []string{"example.org.:53", "dns://example.net.:1053"}, []string{"example.org.", "example.net."}},
		{"root from server block key", `fluxguard {
			action log
		}`, []string{"dns://.:53"}, []string{"."}},
		{"root from args", `fluxguard .`, nil, []string{"."}},
		{"root among others", `fluxguard example.org .`, nil, []string{"example.org.", "."}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := caddy.NewTestController("dns", tc.input)
			c.ServerBlockKeys = tc.keys
			cfg, err := parse(c)
			if err != nil {
				t.Fatalf("Expected no errors, but got: %v", err)
			}
			if !slices.Equal(cfg.zones, tc.want) {
				t.Errorf("Expected zones %v, got %v", tc.want, cfg.zones)
			}
			if root := slices.Contains(tc.want, "."); cfg.rootZone != root {
				t.Errorf("Expected rootZone %v for zones %v, got %v", root, tc.want, cfg.rootZone)
			}
		})
	}
}

func TestParseOptions(t *testing.T) {
	prefixes := func(s ...string) []netip.Prefix {
		out := make([]netip.Prefix, len(s))
		for i, p := range s {
			out[i] = netip.MustParsePrefix(p)
		}
		return out
	}
	addrs := func(s ...string) []netip.Addr {
		out := make([]netip.Addr, len(s))
		for i, a := range s {
			out[i] = netip.MustParseAddr(a)
		}
		return out
	}
	tests := []struct {
		name  string
		input string
		check func(config) any // returns the field under test
		want  any
	}{
		{"profile seed", "profile seed", func(c config) any { return c.engine.Profile }, engine.ProfileSeed},
		{"profile default", "profile default", func(c config) any { return reflect.DeepEqual(c.engine, engine.DefaultConfig()) }, true},
		{"weight", "weight prefix 1.5\nweight domain 2", func(c config) any { return c.engine.Weights },
			engine.Weights{Prefix: 1.5, NS: 1, TLD: 1, Domain: 2, Churn: 1}},
		{"weight churn", "weight churn 0", func(c config) any { return c.engine.Weights.Churn }, 0.0},
		{"pool_suffixes replaces", "pool_suffixes Pool.Example.", func(c config) any { return c.engine.PoolSuffixes }, []string{"pool.example"}},
		{"pool_suffixes none", "pool_suffixes none", func(c config) any { return c.engine.PoolSuffixes }, []string{}},
		{"query_count rows", "query_count rows", func(c config) any { return c.engine.QueryCount }, engine.CountRows},
		{"window", "window 5m", func(c config) any { return c.engine.Window }, 5 * time.Minute},
		{"window at 1m", "window 1m", func(c config) any { return c.engine.Window }, time.Minute},
		{"hold", "hold 90s", func(c config) any { return c.engine.Hold }, 90 * time.Second},
		{"min_ips", "min_ips 7", func(c config) any { return c.engine.MinIPs }, 7},
		{"min_queries", "min_queries 9", func(c config) any { return c.engine.MinQueries }, 9},
		{"threshold", "threshold 3", func(c config) any { return c.engine.Threshold }, 3.0},
		{"fractional threshold", "threshold 7.5", func(c config) any { return c.engine.Threshold }, 7.5},
		{"short_sld", "short_sld 4", func(c config) any { return c.engine.ShortSLD }, 4},
		{"many_ips", "many_ips 20", func(c config) any { return c.engine.ManyIPs }, 20},
		{"many_clients", "many_clients 11", func(c config) any { return c.engine.ManyClients }, 11},
		{"max_names", "max_names 1000", func(c config) any { return c.engine.MaxNames }, 1000},
		{"max_ips_per_name", "max_ips_per_name 1024", func(c config) any { return c.engine.MaxIPsPerName }, 1024},
		{"max_clients_per_name", "max_clients_per_name 8", func(c config) any { return c.engine.MaxClientsPerName }, 8},
		{"metrics_domains", "metrics_domains 25", func(c config) any { return c.metricsDomains }, 25},
		{"cdn_suffixes replaces", "cdn_suffixes CDN.Example. edge.example", func(c config) any { return c.engine.CDNSuffixes }, []string{"cdn.example", "edge.example"}},
		{"internal_tlds replaces", "internal_tlds intranet", func(c config) any { return c.engine.InternalTLDs }, []string{"intranet"}},
		{"exclude_suffixes replaces", "exclude_suffixes example.com example.net.", func(c config) any { return c.engine.ExcludeSuffixes }, []string{"example.com", "example.net"}},
		{"suspicious_tlds replaces", "suspicious_tlds TK zip", func(c config) any { return c.engine.SuspiciousTLDs }, []string{"tk", "zip"}},
		{"allow", "allow Good.Example.", func(c config) any { return c.engine.Allow }, []engine.Rule{{Name: "good.example"}}},
		{"allow with a leading dot", "allow .partner.example", func(c config) any { return c.engine.Allow }, []engine.Rule{{Name: "partner.example"}}},
		{"allow is additive", "allow a.example b.example\nallow c.example", func(c config) any { return c.engine.Allow },
			[]engine.Rule{{Name: "a.example"}, {Name: "b.example"}, {Name: "c.example"}}},
		{"allow until", "allow drill.example until 2026-12-01T06:00:00Z", func(c config) any { return c.engine.Allow },
			[]engine.Rule{{Name: "drill.example", Until: time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC)}}},
		{"deny until date", "deny a.tk b.tk until 2027-01-01", func(c config) any { return c.engine.Deny },
			[]engine.Rule{{Name: "a.tk", Until: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}, {Name: "b.tk", Until: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}}},
		{"resolve_ns", "resolve_ns", func(c config) any { return c.resolveNS }, float64(defaultResolveRate)},
		{"resolve_ns rate", "resolve_ns 0.5", func(c config) any { return c.resolveNS }, 0.5},
		{"allow_nets", "allow_nets 13.32.0.0/15 2600:9000::/28", func(c config) any { return c.engine.AllowNets },
			[]netip.Prefix{netip.MustParsePrefix("13.32.0.0/15"), netip.MustParsePrefix("2600:9000::/28")}},
		{"ignore_nets masked and additive", "ignore_nets 45.1.2.3/16 2001:db8::1/32\nignore_nets 8.8.8.0/24", func(c config) any { return c.engine.IgnoreNets }, prefixes("45.1.0.0/16", "2001:db8::/32", "8.8.8.0/24")},
		{"action log", "action log", func(c config) any { return c.action }, actionLog},
		{"action block", "action block", func(c config) any { return c.action }, actionBlock},
		{"action sinkhole", "action sinkhole", func(c config) any { return c.action }, actionSinkhole},
		{"action is case-insensitive", "action BLOCK", func(c config) any { return c.action }, actionBlock},
		{"block_rcode REFUSED", "block_rcode REFUSED", func(c config) any { return c.blockRcode }, dns.RcodeRefused},
		{"block_rcode NXDOMAIN", "block_rcode NXDOMAIN", func(c config) any { return c.blockRcode }, dns.RcodeNameError},
		{"block_rcode is case-insensitive", "block_rcode nxdomain", func(c config) any { return c.blockRcode }, dns.RcodeNameError},
		{"sinkhole replaces and unmaps", "sinkhole 192.0.2.53 ::ffff:192.0.2.54 2001:db8::53", func(c config) any { return c.sinkhole }, addrs("192.0.2.53", "192.0.2.54", "2001:db8::53")},
		{"sinkhole_ttl", "sinkhole_ttl 30s", func(c config) any { return c.sinkholeTTL }, uint32(30)},
		{"sinkhole_ttl minimum", "sinkhole_ttl 1s", func(c config) any { return c.sinkholeTTL }, uint32(1)},
		{"sinkhole_ttl maximum", "sinkhole_ttl 24h", func(c config) any { return c.sinkholeTTL }, uint32(86400)},
		{"report", "report 127.0.0.1:9253", func(c config) any { return c.report }, "127.0.0.1:9253"},
		{"shared", "shared redis://127.0.0.1:6379", func(c config) any { return *c.shared },
			sharedConfig{urls: []string{"redis://127.0.0.1:6379"}, prefix: defaultSharedPrefix, flush: defaultSharedFlush}},
		{"shared sets the engine's Share", "shared redis://127.0.0.1:6379", func(c config) any { return c.engine.Share }, true},
		{"shared with options", "shared rediss://fluxguard@redis.example:6380/2 prefix prod password_env HOME flush 500ms",
			func(c config) any { return *c.shared },
			sharedConfig{urls: []string{"rediss://fluxguard@redis.example:6380/2"}, prefix: "prod", passwordEnv: "HOME", flush: 500 * time.Millisecond}},
		{"shared sentinel", "shared redis://10.0.0.1:26379 redis://10.0.0.2:26379 sentinel mymaster",
			func(c config) any { return *c.shared },
			sharedConfig{urls: []string{"redis://10.0.0.1:26379", "redis://10.0.0.2:26379"}, sentinel: "mymaster", prefix: defaultSharedPrefix, flush: defaultSharedFlush}},
		{"shared cluster", "shared redis://10.0.0.1:7000 cluster", func(c config) any { return c.shared.cluster }, true},
		{"report any host", "report :9253", func(c config) any { return c.report }, ":9253"},
		{"rpz", "rpz RPZ.Example", func(c config) any { return *c.rpz }, rpzConfig{zone: "rpz.example.", max: defaultRPZMax, refresh: defaultRPZRefresh}},
		{"rpz max refresh", "rpz rpz.example. refresh 30s max 500", func(c config) any { return *c.rpz }, rpzConfig{zone: "rpz.example.", max: 500, refresh: 30 * time.Second}},
		{"rpz ip", "rpz rpz.example ip max 500", func(c config) any { return *c.rpz }, rpzConfig{zone: "rpz.example.", max: 500, refresh: defaultRPZRefresh, ip: true}},
		{"rpz ip last", "rpz rpz.example refresh 30s ip", func(c config) any { return *c.rpz }, rpzConfig{zone: "rpz.example.", max: defaultRPZMax, refresh: 30 * time.Second, ip: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := caddy.NewTestController("dns", "fluxguard {\n"+tc.input+"\n}")
			cfg, err := parse(c)
			if err != nil {
				t.Fatalf("Expected no errors, but got: %v", err)
			}
			if got := tc.check(cfg); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Expected %v, got %v", tc.want, got)
			}
			if _, err := newFluxguard(cfg, ""); err != nil {
				t.Errorf("Expected the parsed config to build, got: %v", err)
			}
		})
	}
}

// TestParseAllOptions parses a block with every option at once and checks
// that the options do not interfere with each other.
func TestParseAllOptions(t *testing.T) {
	c := caddy.NewTestController("dns", `fluxguard example.org {
		profile seed
		window 30m
		hold 2h
		min_ips 6
		min_queries 4
		threshold 3
		short_sld 5
		many_ips 12
		many_clients 6
		max_names 5000
		max_ips_per_name 50
		max_clients_per_name 10
		metrics_domains 10
		cdn_suffixes cdn.example
		internal_tlds lan
		exclude_suffixes corp.example
		suspicious_tlds tk
		allow good.example
		ignore_nets 45.0.0.0/8
		action sinkhole
		block_rcode NXDOMAIN
		sinkhole 192.0.2.1
		sinkhole_ttl 1m
		report localhost:9254
		state_file /tmp/fluxguard.state
		state_interval 2m
		rpz rpz.example max 100
	}`)
	cfg, err := parse(c)
	if err != nil {
		t.Fatalf("Expected no errors, but got: %v", err)
	}
	want := config{
		zones: []string{"example.org."},
		engine: engine.Config{
			Profile: engine.ProfileSeed, Weights: engine.DefaultWeights,
			Window: 30 * time.Minute, MinIPs: 6, MinQueries: 4, Threshold: 3, Hold: 2 * time.Hour,
			CDNSuffixes: []string{"cdn.example"}, InternalTLDs: []string{"lan"}, ExcludeSuffixes: []string{"corp.example"},
			Allow: []engine.Rule{{Name: "good.example"}}, IgnoreNets: []netip.Prefix{netip.MustParsePrefix("45.0.0.0/8")},
			SuspiciousTLDs: []string{"tk"}, ShortSLD: 5, ManyIPs: 12, ManyClients: 6,
			MaxNames: 5000, MaxIPsPerName: 50, MaxClientsPerName: 10,
		},
		action:         actionSinkhole,
		blockRcode:     dns.RcodeNameError,
		sinkhole:       []netip.Addr{netip.MustParseAddr("192.0.2.1")},
		sinkholeTTL:    60,
		metricsDomains: 10,
		report:         "localhost:9254",
		stateFile:      "/tmp/fluxguard.state",
		stateInterval:  2 * time.Minute,
		rpz:            &rpzConfig{zone: "rpz.example.", max: 100, refresh: defaultRPZRefresh},
	}
	if cfg.owners == nil {
		t.Error("no network-owner lookup")
	}
	cfg.owners = nil // functions never compare equal
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("Expected\n%+v\ngot\n%+v", want, cfg)
	}
}

// TestParseDoesNotAliasDefaults checks that options replacing a seed list do
// not write into the package-level seed slices.
func TestParseDoesNotAliasDefaults(t *testing.T) {
	before := slices.Clone(engine.SeedSuspiciousTLDs)
	c := caddy.NewTestController("dns", "fluxguard {\nsuspicious_tlds zip\nallow a.example\n}")
	if _, err := parse(c); err != nil {
		t.Fatalf("Expected no errors, but got: %v", err)
	}
	if !slices.Equal(engine.SeedSuspiciousTLDs, before) {
		t.Errorf("Expected seed suspicious TLDs unchanged, got %v", engine.SeedSuspiciousTLDs)
	}
	if len(engine.DefaultConfig().Allow) != 0 {
		t.Errorf("Expected no default allowlist, got %v", engine.DefaultConfig().Allow)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name   string
		option string // the line 3 of the block
		want   []string
	}{
		{"unknown option", "nosuch 1", []string{`unknown option "nosuch"`}},
		{"bad profile", "profile aggressive", []string{"profile", `"aggressive"`}},
		{"bad window", "window soon", []string{"window", `"soon"`}},
		{"window without unit", "window 10", []string{"window", `"10"`}},
		{"zero window", "window 0s", []string{"window", "positive"}},
		{"negative window", "window -5m", []string{"window", "positive"}},
		{"short window", "window 59s", []string{"window", "shorter than 1m"}},
		{"bad hold", "hold forever", []string{"hold", `"forever"`}},
		{"zero hold", "hold 0s", []string{"hold", "positive"}},
		{"negative hold", "hold -1h", []string{"hold", "positive"}},
		{"hold above a week", "hold 169h", []string{"hold", "longer than 168h0m0s"}},
		{"hold under a second", "hold 500ms", []string{"hold", "shorter than 1s"}},
		{"window above a week", "window 1193047h", []string{"window", "longer than 168h0m0s"}},
		{"report port out of range", "report 127.0.0.1:99999", []string{"report", "not a host:port"}},
		{"state_file a directory", "state_file /tmp", []string{"state_file", "not a regular file"}},
		{"bad min_ips", "min_ips five", []string{"min_ips", "not a positive integer"}},
		{"zero min_ips", "min_ips 0", []string{"min_ips", "not a positive integer"}},
		{"negative min_ips", "min_ips -1", []string{"min_ips", "not a positive integer"}},
		{"zero min_queries", "min_queries 0", []string{"min_queries", "not a positive integer"}},
		{"zero threshold", "threshold 0", []string{"threshold", "not a positive number"}},
		{"negative threshold", "threshold -2", []string{"threshold", "not a positive number"}},
		{"NaN threshold", "threshold NaN", []string{"threshold", "not a positive number"}},
		{"infinite threshold", "threshold +Inf", []string{"threshold", "not a positive number"}},
		{"unknown weight", "weight asn 2", []string{"weight", `unknown weight "asn"`}},
		{"negative weight", "weight ns -1", []string{"weight", "not a number >= 0"}},
		{"NaN weight", "weight prefix nan", []string{"weight", "not a number >= 0"}},
		{"infinite weight", "weight domain inf", []string{"weight", "not a number >= 0"}},
		{"weight without value", "weight ns", []string{"weight takes a name and a value"}},
		{"domain weight below 1", "weight domain 0.5", []string{"weight", "below 1"}},
		{"unknown query_count", "query_count events", []string{"query_count", `"events" is neither`}},
		{"zero short_sld", "short_sld 0", []string{"short_sld", "not a positive integer"}},
		{"zero many_ips", "many_ips 0", []string{"many_ips", "not a positive integer"}},
		{"zero many_clients", "many_clients 0", []string{"many_clients", "not a positive integer"}},
		{"zero max_names", "max_names 0", []string{"max_names", "not a positive integer"}},
		{"float max_names", "max_names 1.5", []string{"max_names", "not a positive integer"}},
		{"zero max_ips_per_name", "max_ips_per_name 0", []string{"max_ips_per_name", "not a positive integer"}},
		{"max_ips_per_name above cap", "max_ips_per_name 1025", []string{"max_ips_per_name", "above 1024"}},
		{"zero max_clients_per_name", "max_clients_per_name 0", []string{"max_clients_per_name", "not a positive integer"}},
		{"max_clients_per_name above cap", "max_clients_per_name 4096", []string{"max_clients_per_name", "above 1024"}},
		{"zero metrics_domains", "metrics_domains 0", []string{"metrics_domains", "not a positive integer"}},
		{"bad ignore_nets", "ignore_nets 10.0.0.0/8 10.0.0.1", []string{"ignore_nets", `"10.0.0.1"`}},
		{"bad ignore_nets mask", "ignore_nets 10.0.0.0/33", []string{"ignore_nets", `"10.0.0.0/33"`}},
		{"bad action", "action drop", []string{"action", `"drop"`}},
		{"bad block_rcode", "block_rcode SERVFAIL", []string{"block_rcode", `"SERVFAIL"`}},
		{"bad sinkhole", "sinkhole 0.0.0.0 sinkhole.example", []string{"sinkhole", `"sinkhole.example"`}},
		{"bad sinkhole CIDR", "sinkhole 192.0.2.0/24", []string{"sinkhole", `"192.0.2.0/24"`}},
		{"bad sinkhole_ttl", "sinkhole_ttl 10", []string{"sinkhole_ttl", `"10"`}},
		{"zero sinkhole_ttl", "sinkhole_ttl 0s", []string{"sinkhole_ttl", "positive"}},
		{"sinkhole_ttl below range", "sinkhole_ttl 500ms", []string{"sinkhole_ttl", "outside 1s..24h"}},
		{"sinkhole_ttl above range", "sinkhole_ttl 25h", []string{"sinkhole_ttl", "outside 1s..24h"}},
		{"allow until without time", "allow a.example until", []string{"allow", "'until' must come last"}},
		{"allow until bad time", "allow a.example until soon", []string{"allow", `"soon" is not an RFC 3339 time`}},
		{"allow wildcard", "allow *.a.example", []string{"allow", `"*.a.example": a rule covers its name's subdomains already; write "a.example"`}},
		{"deny not a name", "deny bad..example", []string{"deny", `"bad..example" is not a host name (international names in punycode: xn--...)`}},
		{"allow a URL", "allow http://partner.example/", []string{"allow", `"http://partner.example/" is not a host name`}},
		{"allow host:port", "allow partner.example:443", []string{"allow", `"partner.example:443" is not a host name`}},
		{"allow an address", "allow 10.0.0.0/8", []string{"allow", `"10.0.0.0/8" is an address: allow_nets takes networks`}},
		{"deny only until", "deny until 2027-01-01", []string{"deny", "no name before 'until'"}},
		{"bad resolve_ns", "resolve_ns fast", []string{"resolve_ns", `"fast" is not a rate`}},
		{"resolve_ns too many", "resolve_ns 1 2", []string{"resolve_ns takes at most one argument"}},
		{"bad allow_nets", "allow_nets 13.32.0.0/33", []string{"allow_nets", "not a CIDR prefix"}},
		{"missing allow_file", "allow_file /nonexistent/allow.txt", []string{"allow_file", "no such file"}},
		{"missing intel_domains", "intel_domains /nonexistent/domains.txt", []string{"intel_domains", "no such file"}},
		{"missing intel_addrs", "intel_addrs /nonexistent/addrs.txt", []string{"intel_addrs", "no such file"}},
		{"state_file in a missing directory", "state_file /nonexistent/dir/fg.state", []string{"state_file", "does not exist"}},
		{"bad state_interval", "state_interval often", []string{"state_interval", `"often"`}},
		{"short state_interval", "state_interval 500ms", []string{"state_interval", "shorter than 1s"}},
		{"report without port", "report localhost", []string{"report", `"localhost"`}},
		{"report bad address", "report http://localhost:9253/report", []string{"report", "not a host:port"}},
		{"shared without URL", "shared prefix x", []string{"shared", "expect a redis:// or rediss:// URL first"}},
		{"shared other scheme", "shared http://127.0.0.1:6379", []string{"shared", `"http://127.0.0.1:6379" is not a redis:// or rediss:// URL`}},
		{"shared password in URL", "shared redis://user:secret@127.0.0.1:6379", []string{"shared", "carries a password", "password_file", "user:xxxxx@"}},
		{"shared two URLs", "shared redis://a:6379 redis://b:6379", []string{"shared", "several URLs need 'sentinel MASTER' or 'cluster'"}},
		{"shared sentinel and cluster", "shared redis://a:6379 sentinel m cluster", []string{"shared", "exclude each other"}},
		{"shared both passwords", "shared redis://a:6379 password_env HOME password_file /etc/hostname", []string{"shared", "exclude each other"}},
		{"shared missing password_file", "shared redis://a:6379 password_file /nonexistent/pw", []string{"shared", "password_file", "no such file"}},
		{"shared unset password_env", "shared redis://a:6379 password_env FLUXGUARD_TEST_UNSET", []string{"shared", "password_env", "is not set"}},
		{"shared tls_ca without TLS", "shared redis://a:6379 tls_ca /etc/hostname", []string{"shared", "tls_ca needs rediss://"}},
		{"shared tls_ca not PEM", "shared rediss://a:6379 tls_ca /etc/hostname", []string{"shared", "no certificate"}},
		{"shared bad database", "shared redis://a:6379/x", []string{"shared", "invalid database"}},
		{"shared short flush", "shared redis://a:6379 flush 10ms", []string{"shared", "flush", "within 100ms..1m"}},
		{"shared unknown argument", "shared redis://a:6379 db 2", []string{"shared", `unknown argument "db"`}},
		{"shared value missing", "shared redis://a:6379 prefix", []string{"shared", `"prefix" takes a value`}},
		{"rpz root", "rpz .", []string{"rpz", `"." is not a zone name`}},
		{"rpz bad name", "rpz a..example", []string{"rpz", `"a..example" is not a zone name`}},
		{"rpz max without value", "rpz rpz.example max", []string{"rpz", `"max" takes a value`}},
		{"rpz zero max", "rpz rpz.example max 0", []string{"rpz", "max", `"0" is not a positive integer`}},
		{"rpz short refresh", "rpz rpz.example refresh 500ms", []string{"rpz", "refresh", "within 1s..24h"}},
		{"rpz unknown argument", "rpz rpz.example ttl 5s", []string{"rpz", `unknown argument "ttl"`}},
		{"rpz ip with a value", "rpz rpz.example ip on", []string{"rpz", `unknown argument "on"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			testParseError(t, "fluxguard {\n\t# the option is on line 3\n\t"+tc.option+"\n}", tc.want...)
		})
	}
}

// TestParseTogether checks the options refused with another: given twice
// (the later would silently replace the first), or a count above the cap
// of the list it counts, which would turn a rule off.
func TestParseTogether(t *testing.T) {
	tests := []struct {
		name  string
		block string
		want  []string
	}{
		{"action twice", "action block\n\taction log", []string{"Testfile:3", "action: given already on line 2"}},
		{"allow_file twice", "allow_file /etc/hostname\n\tallow_file /etc/hosts", []string{"Testfile:3", "allow_file: given already on line 2"}},
		{"report twice", "report 127.0.0.1:9253\n\treport 127.0.0.1:9254", []string{"Testfile:3", "report: given already on line 2"}},
		{"a weight's term twice", "weight ns 2\n\tweight ns 3", []string{"Testfile:3", "weight ns: given already on line 2"}},
		{"min_ips above max_ips_per_name", "min_ips 150", []string{"min_ips: 150 is above max_ips_per_name (100)"}},
		{"many_ips above max_ips_per_name", "max_ips_per_name 8", []string{"many_ips: 10 is above max_ips_per_name (8)"}},
		{"many_clients above max_clients_per_name", "many_clients 30", []string{"many_clients: 30 is above max_clients_per_name (20)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(caddy.NewTestController("dns", "fluxguard {\n\t"+tc.block+"\n}"))
			if err == nil {
				t.Fatal("Expected an error, got none")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Expected the error to contain %q, got: %v", w, err)
				}
			}
		})
	}
	// The options that add up, and a count set before its cap.
	ok := "fluxguard {\n\tallow a.example\n\tallow b.example\n\tweight ns 2\n\tweight tld 2\n\t" +
		"max_clients_per_name 3\n\tmany_clients 2\n\tmax_ips_per_name 200\n\tmin_ips 150\n}"
	if _, err := parse(caddy.NewTestController("dns", ok)); err != nil {
		t.Errorf("Expected no error for %q, got: %v", ok, err)
	}
}

// TestParseArgCount checks that every option fails without arguments and
// that the one-argument options fail with two.
func TestParseArgCount(t *testing.T) {
	all := []string{
		"profile", "window", "hold", "min_ips", "min_queries", "threshold", "short_sld", "many_ips",
		"many_clients", "max_names", "max_ips_per_name", "max_clients_per_name", "metrics_domains",
		"cdn_suffixes", "internal_tlds", "exclude_suffixes", "suspicious_tlds", "allow", "ignore_nets",
		"action", "block_rcode", "sinkhole", "sinkhole_ttl", "report", "state_file", "state_interval",
		"deny", "allow_nets", "allow_file", "deny_file", "asn_db", "pool_suffixes", "query_count", "rpz",
		"intel_domains", "intel_addrs", "shared",
	}
	for _, opt := range all {
		t.Run(opt+" without args", func(t *testing.T) {
			testParseError(t, "fluxguard {\n\t# the option is on line 3\n\t"+opt+"\n}", "Wrong argument count", "'"+opt+"'")
		})
	}
	oneArg := map[string]string{
		"profile": "seed", "window": "5m", "hold": "5m", "min_ips": "5", "min_queries": "3", "threshold": "2",
		"short_sld": "8", "many_ips": "10", "many_clients": "5", "max_names": "10", "max_ips_per_name": "10",
		"max_clients_per_name": "10", "metrics_domains": "10", "action": "block", "block_rcode": "REFUSED",
		"sinkhole_ttl": "10s", "report": ":9253", "state_file": "/tmp/fg.state", "state_interval": "1m", "query_count": "rows",
		"intel_domains": "/tmp/domains.txt", "intel_addrs": "/tmp/addrs.txt",
	}
	for opt, arg := range oneArg {
		t.Run(opt+" with extra args", func(t *testing.T) {
			testParseError(t, "fluxguard {\n\t# the option is on line 3\n\t"+opt+" "+arg+" "+arg+"\n}", opt+" takes exactly one argument")
		})
	}
}

func TestParseTwoBlocks(t *testing.T) {
	testParseError(t, "fluxguard {\n}\nfluxguard", plugin.ErrOnce.Error())
	testParseError(t, "fluxguard example.org\n\n fluxguard example.net", plugin.ErrOnce.Error())
}

// testParseError parses input, which must fail on line 3, and checks that the
// error names that line and holds every one of want.
func testParseError(t *testing.T, input string, want ...string) {
	t.Helper()
	c := caddy.NewTestController("dns", input)
	_, err := parse(c)
	if err == nil {
		t.Fatalf("Expected errors for %q, but got none", input)
	}
	msg := err.Error()
	if !strings.Contains(msg, "Testfile:3 - Error during parsing") {
		t.Errorf("Expected the error to name Testfile:3, got: %v", err)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("Expected the error to contain %q, got: %v", w, err)
		}
	}
}
