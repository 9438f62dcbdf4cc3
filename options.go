package fluxguard

import (
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coredns/caddy"
	"github.com/miekg/dns"

	"github.com/fluxguard/fluxguard/internal/engine"
)

// optionArgs reads the arguments of the option under the cursor. Its
// errors name the option, and the Controller's name the line.
type optionArgs struct {
	c    *caddy.Controller
	opt  string
	args []string
}

func (a optionArgs) one() (string, error) {
	if len(a.args) != 1 {
		return "", a.c.Errf("%s takes exactly one argument", a.opt)
	}
	return a.args[0], nil
}

// integer reads an integer >= 0; the engine's Validate checks ranges.
func (a optionArgs) integer() (int, error) {
	s, err := a.one()
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(s, 10, 31)
	if err != nil {
		return 0, a.c.Errf("%s: %q is not a positive integer", a.opt, s)
	}
	return int(n), nil
}

// number reads a finite number >= 0.
func (a optionArgs) number() (float64, error) {
	s, err := a.one()
	if err != nil {
		return 0, err
	}
	f, ok := finite(s)
	if !ok {
		return 0, a.c.Errf("%s: %q is not a positive number", a.opt, s)
	}
	return f, nil
}

// finite parses s as a finite number >= 0: NaN compares false with every
// bound, and would turn a check off.
func finite(s string) (float64, bool) {
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil && f >= 0 && !math.IsInf(f, 1)
}

func (a optionArgs) duration() (time.Duration, error) {
	s, err := a.one()
	if err != nil {
		return 0, err
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, a.c.Errf("%s: %q is not a positive duration", a.opt, s)
	}
	return d, nil
}

// names reads domain names, normalized.
func (a optionArgs) names() []string {
	out := make([]string, len(a.args))
	for i, s := range a.args {
		out[i] = engine.Normalize(s)
	}
	return out
}

// weight reads "weight NAME VALUE" into w.
func (a optionArgs) weight(w *engine.Weights) error {
	if len(a.args) != 2 {
		return a.c.Errf("weight takes a name and a value")
	}
	f, ok := finite(a.args[1])
	if !ok {
		return a.c.Errf("weight: %q is not a number >= 0", a.args[1])
	}
	dst := map[string]*float64{"prefix": &w.Prefix, "ns": &w.NS, "tld": &w.TLD, "churn": &w.Churn, "domain": &w.Domain}[a.args[0]]
	if dst == nil {
		return a.c.Errf("weight: unknown weight %q; expect 'prefix', 'ns', 'tld', 'churn' or 'domain'", a.args[0])
	}
	*dst = f
	return nil
}

// policy reads the allow and deny options into cfg.
func (a optionArgs) policy(cfg *config) error {
	ec := &cfg.engine
	switch a.opt {
	case "allow", "deny":
		rules, err := parseRules(a.args)
		if err != nil {
			return a.c.Errf("%s: %v", a.opt, err)
		}
		if a.opt == "allow" {
			ec.Allow = append(ec.Allow, rules...)
		} else {
			ec.Deny = append(ec.Deny, rules...)
		}
	case "ignore_nets", "allow_nets":
		nets, err := parsePrefixes(a.args)
		if err != nil {
			return a.c.Errf("%s: %v", a.opt, err)
		}
		if a.opt == "ignore_nets" {
			ec.IgnoreNets = append(ec.IgnoreNets, nets...)
		} else {
			ec.AllowNets = append(ec.AllowNets, nets...)
		}
	case "allow_file", "deny_file":
		s, err := a.one()
		if err != nil {
			return err
		}
		pf := &policyFile{watchedFile: watchedFile{path: s}, allow: a.opt == "allow_file"}
		if err := pf.read(); err != nil {
			return a.c.Errf("%s: %v", a.opt, err)
		}
		if a.opt == "allow_file" {
			cfg.allowFile = pf
		} else {
			cfg.denyFile = pf
		}
	}
	return nil
}

// intel reads intel_domains and intel_addrs into cfg.
func (a optionArgs) intel(cfg *config) error {
	s, err := a.one()
	if err != nil {
		return err
	}
	in := &intelFile{watchedFile: watchedFile{path: s}, addrs: a.opt == "intel_addrs"}
	if err := in.read(); err != nil {
		return a.c.Errf("%s: %v", a.opt, err)
	}
	if in.cut > 0 {
		log.Warningf("%s %s: %s", a.opt, in.path, in.loaded())
	}
	if in.addrs {
		cfg.intelAddrs = in
	} else {
		cfg.intelDomains = in
	}
	return nil
}

func (a optionArgs) action() (action, error) {
	s, err := a.one()
	if err != nil {
		return 0, err
	}
	act := slices.Index(actionNames[:], strings.ToLower(s))
	if act < 0 {
		return 0, a.c.Errf("action: unknown action %q; expect 'log', 'block' or 'sinkhole'", s)
	}
	return action(act), nil
}

func (a optionArgs) rcode() (int, error) {
	s, err := a.one()
	if err != nil {
		return 0, err
	}
	switch strings.ToUpper(s) {
	case "REFUSED":
		return dns.RcodeRefused, nil
	case "NXDOMAIN":
		return dns.RcodeNameError, nil
	}
	return 0, a.c.Errf("block_rcode: %q; expect 'REFUSED' or 'NXDOMAIN'", s)
}

// addrs reads IP addresses, IPv4-mapped ones as IPv4.
func (a optionArgs) addrs() ([]netip.Addr, error) {
	out := make([]netip.Addr, 0, len(a.args))
	for _, s := range a.args {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return nil, a.c.Errf("%s: %q is not an IP address", a.opt, s)
		}
		out = append(out, ip.Unmap())
	}
	return out, nil
}

// ttl reads a TTL as a duration between a second and a day.
func (a optionArgs) ttl() (uint32, error) {
	d, err := a.duration()
	switch {
	case err != nil:
		return 0, err
	case d <= 0:
		return 0, a.c.Errf("%s: %s is not a positive duration", a.opt, d)
	case d < time.Second || d > 24*time.Hour:
		return 0, a.c.Errf("%s: %s is outside 1s..24h", a.opt, d)
	}
	return uint32(d / time.Second), nil
}

// stateFile reads a path whose directory exists.
func (a optionArgs) stateFile() (string, error) {
	s, err := a.one()
	if err != nil {
		return "", err
	}
	if fi, err := os.Stat(filepath.Dir(s)); err != nil || !fi.IsDir() {
		return "", a.c.Errf("%s: directory of %q does not exist", a.opt, s)
	}
	if fi, err := os.Stat(s); err == nil && !fi.Mode().IsRegular() {
		return "", a.c.Errf("%s: %q is not a regular file", a.opt, s)
	}
	abs, err := filepath.Abs(s)
	if err != nil {
		return "", a.c.Errf("%s: %v", a.opt, err)
	}
	if other, ok := a.claim(stateFileClaims{}, abs); ok {
		return "", a.c.Errf("%s: %s is already the state file of %s; give each its own", a.opt, s, other)
	}
	return s, nil
}

// stateFileClaims keys, in the caddy instance's storage, the state files
// of its server blocks, each with the block's stateKey: two blocks saving
// to one file would each overwrite the other's state.
type stateFileClaims struct{}

// claim records, under kind in the caddy instance's storage, that what
// (an address, a file) is the server block's, or returns the block
// that has it already.
func (a optionArgs) claim(kind any, what string) (other string, taken bool) {
	claims, _ := a.c.Get(kind).(map[string]string)
	if claims == nil {
		claims = map[string]string{}
		a.c.Set(kind, claims)
	}
	key := stateKey(a.c)
	if other, ok := claims[what]; ok && other != key {
		return blockOf(other), true
	}
	claims[what] = key
	return "", false
}

// blockOf names the server block of stateKey key for an error: its keys,
// and which of the blocks of those keys it is when it is not the first.
func blockOf(key string) string {
	keys := keysOf(key)
	if n, _ := strconv.Atoi(key[len(keys)+1:]); n > 0 {
		return keys + " (block " + strconv.Itoa(n+1) + " of those keys)"
	}
	return keys
}

// rate reads resolve_ns's optional rate, defaultResolveRate without one.
func (a optionArgs) rate() (float64, error) {
	switch len(a.args) {
	case 0:
		return defaultResolveRate, nil
	case 1:
	default:
		return 0, a.c.Errf("%s takes at most one argument", a.opt)
	}
	f, err := strconv.ParseFloat(a.args[0], 64)
	if err != nil || f <= 0 || f > 1000 {
		return 0, a.c.Errf("%s: %q is not a rate between 0 and 1000 queries a second", a.opt, a.args[0])
	}
	return f, nil
}

func (a optionArgs) hostPort() (string, error) {
	s, err := a.one()
	if err != nil {
		return "", err
	}
	_, port, err := net.SplitHostPort(s)
	if err == nil {
		_, err = strconv.ParseUint(port, 10, 16)
	}
	if err != nil {
		return "", a.c.Errf("%s: %q is not a host:port address", a.opt, s)
	}
	return s, nil
}

// report reads the report's address, which no other server block of the
// Corefile may serve its own report on.
func (a optionArgs) report() (string, error) {
	addr, err := a.hostPort()
	if err != nil {
		return "", err
	}
	if other, ok := a.claim(reportClaims{}, addr); ok {
		return "", a.c.Errf("%s: %s is already the report address of %s; give each its own", a.opt, addr, other)
	}
	return addr, nil
}

// reportClaims keys, in the caddy instance's storage, the report
// addresses of its server blocks, each with the block's stateKey.
type reportClaims struct{}

// rpz reads "rpz ZONE [max N] [refresh DURATION] [ip]".
func (a optionArgs) rpz() (*rpzConfig, error) {
	c := &rpzConfig{max: defaultRPZMax, refresh: defaultRPZRefresh}
	zone := dns.Fqdn(strings.ToLower(a.args[0]))
	if _, ok := dns.IsDomainName(zone); !ok || zone == "." {
		return nil, a.c.Errf("%s: %q is not a zone name", a.opt, a.args[0])
	}
	c.zone = zone
	for rest := a.args[1:]; len(rest) > 0; {
		switch key := rest[0]; {
		case key == "ip":
			c.ip = true
			rest = rest[1:]
			continue
		case key != "max" && key != "refresh":
			return nil, a.c.Errf("%s: unknown argument %q; expect 'max', 'refresh' or 'ip'", a.opt, key)
		case len(rest) < 2:
			return nil, a.c.Errf("%s: %q takes a value", a.opt, key)
		}
		key, val := rest[0], rest[1]
		rest = rest[2:]
		if key == "max" {
			n, err := strconv.ParseUint(val, 10, 31)
			if err != nil || n == 0 {
				return nil, a.c.Errf("%s: max: %q is not a positive integer", a.opt, val)
			}
			c.max = int(n)
			continue
		}
		d, err := time.ParseDuration(val)
		if err != nil || d < time.Second || d > 24*time.Hour {
			return nil, a.c.Errf("%s: refresh: %q is not a duration within 1s..24h", a.opt, val)
		}
		c.refresh = d
	}
	return c, nil
}
