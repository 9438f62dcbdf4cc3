package fluxguard

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/miekg/dns"

	"github.com/fluxguard/fluxguard/internal/engine"
)

// maxIntelEntries bounds what one intel file loads: the entries beyond
// are ignored, and reported.
const maxIntelEntries = 1_000_000

// Prefixes of the intel address list no wider than these, so that a
// stray line cannot mark whole regions of the Internet.
const (
	minIntelBits4 = 8
	minIntelBits6 = 16
)

// intelFile is a threat-intelligence list, intel_domains or intel_addrs:
// one entry a line, a domain name or an IP address or CIDR prefix; '#'
// starts a comment.
type intelFile struct {
	watchedFile
	addrs bool // an address list, else a domain list
	names []string
	nets  []netip.Prefix
	cut   int // entries beyond maxIntelEntries, ignored
}

// read (re)loads the file; on error the previous content stays in force.
func (in *intelFile) read() error {
	var names []string
	var nets []netip.Prefix
	cut := 0
	err := in.readLines(func(line int, fields []string) error {
		if len(names)+len(nets) >= maxIntelEntries {
			cut++
			return nil
		}
		if !in.addrs {
			name, err := parseIntelName(fields)
			if err != nil {
				return fmt.Errorf("%s:%d: %v", in.path, line, err)
			}
			names = append(names, name)
			return nil
		}
		p, err := parseIntelPrefix(fields)
		if err != nil {
			return fmt.Errorf("%s:%d: %v", in.path, line, err)
		}
		nets = append(nets, p)
		return nil
	})
	if err != nil {
		return err
	}
	in.names, in.nets, in.cut = names, nets, cut
	return nil
}

// parseIntelName reads a line of a domain list: a domain name, which
// covers its subdomains; a leading "*." says so too, and is dropped. A
// public suffix (com, co.uk, github.io) is refused, as addresses wider
// than /8 are: a stray line of a feed would cover every domain under it.
func parseIntelName(fields []string) (string, error) {
	want := errors.New("want a domain name")
	if len(fields) != 1 {
		return "", want
	}
	name := engine.Normalize(strings.TrimPrefix(fields[0], "*."))
	if _, err := netip.ParseAddr(name); err == nil || name == "" || strings.ContainsAny(name, "*/:@") {
		return "", want
	}
	if _, ok := dns.IsDomainName(name); !ok {
		return "", want
	}
	if engine.RegisteredDomain(name) == "" {
		return "", fmt.Errorf("%s is a public suffix: it would cover every domain under it", name)
	}
	return name, nil
}

// parseIntelPrefix reads a line of an address list: an IP address or a
// CIDR prefix, no wider than minIntelBits4 (IPv6 minIntelBits6).
func parseIntelPrefix(fields []string) (netip.Prefix, error) {
	if len(fields) != 1 {
		return netip.Prefix{}, errors.New("want an IP address or a CIDR prefix")
	}
	p, err := parseNetwork(fields[0])
	if err != nil {
		return netip.Prefix{}, err
	}
	if a := p.Addr(); a.Is4() && p.Bits() < minIntelBits4 || !a.Is4() && p.Bits() < minIntelBits6 {
		return netip.Prefix{}, fmt.Errorf("%s is wider than /%d (IPv6 /%d)", p, minIntelBits4, minIntelBits6)
	}
	return p, nil
}

// loaded describes what the file holds, for logs.
func (in *intelFile) loaded() string {
	n, what := len(in.names), "names"
	if in.addrs {
		n, what = len(in.nets), "addresses and prefixes"
	}
	s := fmt.Sprintf("%d %s", n, what)
	if in.cut > 0 {
		s += fmt.Sprintf("; %d more beyond the first %d ignored", in.cut, maxIntelEntries)
	}
	return s
}

// compileIntel compiles the intel files into the engine's form, nil
// without them.
func (cfg *config) compileIntel() {
	if cfg.intelDomains == nil && cfg.intelAddrs == nil {
		cfg.intel = nil
		return
	}
	var names []string
	var nets []netip.Prefix
	if in := cfg.intelDomains; in != nil {
		names = in.names
	}
	if in := cfg.intelAddrs; in != nil {
		nets = in.nets
	}
	cfg.intel = engine.NewIntel(names, nets)
}

// reloadIntel rereads changed intel files, and reports whether any was;
// a file that fails to read is reported and its previous content kept.
func (f *Fluxguard) reloadIntel() bool {
	changed := false
	for _, in := range []*intelFile{f.cfg.intelDomains, f.cfg.intelAddrs} {
		if in == nil || !in.changed() {
			continue
		}
		if err := in.read(); err != nil {
			log.Errorf("intel file not reloaded: %v", err)
			continue
		}
		log.Infof("intel file %s reloaded: %s", in.path, in.loaded())
		changed = true
	}
	if changed {
		f.cfg.compileIntel()
	}
	return changed
}
