package fluxguard

import (
	"bufio"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/fluxguard/fluxguard/internal/engine"
)

// parseRules reads "NAME... [until TIME]" arguments into rules.
func parseRules(args []string) ([]engine.Rule, error) {
	var until time.Time
	if n := len(args); n >= 2 && args[n-2] == "until" {
		t, err := parseUntil(args[n-1])
		if err != nil {
			return nil, err
		}
		until, args = t, args[:n-2]
	}
	if len(args) == 0 {
		return nil, fmt.Errorf("no name before 'until'")
	}
	rules := make([]engine.Rule, 0, len(args))
	for _, a := range args {
		if a == "until" {
			return nil, fmt.Errorf("'until' must come last, with one time")
		}
		if strings.Contains(a, "*") {
			return nil, fmt.Errorf("%q: a rule covers its name's subdomains already; write %q", a, strings.TrimLeft(a, "*."))
		}
		// ".example.com", as Squid and dnsmasq write "and its subdomains".
		name := strings.TrimPrefix(a, ".")
		if _, err := netip.ParsePrefix(name); err == nil || isAddr(name) {
			return nil, fmt.Errorf("%q is an address: allow_nets takes networks", a)
		}
		if !isHostName(name) {
			return nil, fmt.Errorf("%q is not a host name (international names in punycode: xn--...)", a)
		}
		rules = append(rules, engine.Rule{Name: engine.Normalize(name), Until: until})
	}
	return rules, nil
}

// isHostName reports whether s, with or without its final dot, is a host
// name a rule can match: labels of letters, digits, hyphens and
// underscores, as DNS names in queries are (a URL, host:port or
// user@host would match nothing).
func isHostName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || strings.IndexFunc(label, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
		}) >= 0 {
			return false
		}
	}
	return true
}

// isAddr reports whether s is an IP address.
func isAddr(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

// parseUntil reads an RFC 3339 time or a date (midnight UTC).
func parseUntil(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time or a YYYY-MM-DD date", s)
}

// parsePrefixes reads CIDR prefixes.
func parsePrefixes(args []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(args))
	for _, a := range args {
		p, err := parseNetwork(a)
		if err == nil && !strings.Contains(a, "/") || errors.Is(err, errNotNetwork) {
			err = errors.New("not a CIDR prefix")
		}
		if err != nil {
			return nil, fmt.Errorf("%q: %v", a, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// mappedRange holds the IPv4-mapped IPv6 addresses.
var mappedRange = netip.MustParsePrefix("::ffff:0:0/96")

// errNotNetwork is parseNetwork's error for what is neither an address
// nor a prefix.
var errNotNetwork = errors.New("want an IP address or a CIDR prefix")

// parseNetwork reads an IP address, as its own network, or a CIDR prefix.
// Answers' IPv4 addresses are matched as IPv4: an IPv4-mapped address or
// prefix is read as its IPv4 one, and an IPv6 prefix that spans the
// mapped addresses, which would never match them, is refused.
func parseNetwork(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		a = a.Unmap().WithZone("")
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, errNotNetwork
	}
	switch a := p.Addr(); {
	case a.Is4In6() && p.Bits() >= 96:
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	case a.Is6() && p.Overlaps(mappedRange):
		return netip.Prefix{}, fmt.Errorf("%s spans the IPv4-mapped addresses; write IPv4 prefixes as such", s)
	}
	return p.Masked(), nil
}

// watchedFile is a list file that is reloaded when it changes: one entry a
// line, '#' starting a comment.
type watchedFile struct {
	path    string
	modTime time.Time
	size    int64
}

// changed reports whether the file differs from what was last read.
func (w *watchedFile) changed() bool {
	fi, err := os.Stat(w.path)
	return err != nil || !fi.ModTime().Equal(w.modTime) || fi.Size() != w.size
}

// readLines calls parse with the fields of each line that is not blank or
// a comment, and remembers the file's version only when all went well.
func (w *watchedFile) readLines(parse func(line int, fields []string) error) error {
	f, err := os.Open(w.path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(f)
	line := 1
	for ; sc.Scan(); line++ {
		text, _, _ := strings.Cut(sc.Text(), "#")
		if fields := strings.Fields(text); len(fields) > 0 {
			if err := parse(line, fields); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); errors.Is(err, bufio.ErrTooLong) {
		return fmt.Errorf("%s:%d: a line longer than %d bytes", w.path, line, bufio.MaxScanTokenSize)
	} else if err != nil {
		return fmt.Errorf("%s:%d: %v", w.path, line, err)
	}
	w.modTime, w.size = fi.ModTime(), fi.Size()
	return nil
}

// policyFile is an allow or deny list file: one entry a line, "NAME
// [until TIME]" or, in an allow file, a CIDR prefix.
type policyFile struct {
	watchedFile
	allow bool // an allow file, whose lines may be CIDR prefixes
	rules []engine.Rule
	nets  []netip.Prefix
}

// read (re)loads the file; on error the previous content stays in force.
func (pf *policyFile) read() error {
	var rules []engine.Rule
	var nets []netip.Prefix
	err := pf.readLines(func(line int, fields []string) error {
		switch p, err := parseNetwork(fields[0]); {
		case err == nil && len(fields) == 1:
			if !pf.allow {
				return fmt.Errorf("%s:%d: a CIDR prefix is only allowed, not denied; want 'NAME [until TIME]'", pf.path, line)
			}
			nets = append(nets, p)
			return nil
		case err != nil && !errors.Is(err, errNotNetwork):
			return fmt.Errorf("%s:%d: %v", pf.path, line, err)
		}
		r, err := parseRules(fields)
		if err == nil && len(r) != 1 {
			err = errors.New("one name a line")
		}
		if err != nil {
			want := "'NAME [until TIME]'"
			if pf.allow {
				want += " or a CIDR prefix"
			}
			return fmt.Errorf("%s:%d: %v; want %s", pf.path, line, err, want)
		}
		rules = append(rules, r...)
		return nil
	})
	if err != nil {
		return err
	}
	pf.rules, pf.nets = rules, nets
	return nil
}

// policy is the engine policy of the configuration and its files.
func (cfg *config) policy() *engine.Policy {
	allow, deny, nets := cfg.engine.Allow, cfg.engine.Deny, cfg.engine.AllowNets
	if pf := cfg.allowFile; pf != nil {
		allow = append(append([]engine.Rule(nil), allow...), pf.rules...)
		nets = append(append([]netip.Prefix(nil), nets...), pf.nets...)
	}
	if pf := cfg.denyFile; pf != nil {
		deny = append(append([]engine.Rule(nil), deny...), pf.rules...)
	}
	p := engine.NewPolicy(allow, deny, nets)
	if cfg.intel != nil {
		p = p.WithIntel(cfg.intel)
	}
	return p
}

// reloadPolicy rereads changed policy and intel files and applies them;
// a file that fails to read is reported and its previous content kept.
func (f *Fluxguard) reloadPolicy() {
	changed := f.reloadIntel()
	for _, pf := range []*policyFile{f.cfg.allowFile, f.cfg.denyFile} {
		if pf == nil || !pf.changed() {
			continue
		}
		if err := pf.read(); err != nil {
			log.Errorf("policy file not reloaded: %v", err)
			continue
		}
		log.Infof("policy file %s reloaded: %d names, %d networks", pf.path, len(pf.rules), len(pf.nets))
		changed = true
	}
	if changed {
		f.eng.SetPolicy(f.cfg.policy())
	}
}
