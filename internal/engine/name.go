package engine

import (
	"strings"

	"golang.org/x/net/publicsuffix"
)

// suffixSet matches a name against a set of domain suffixes on label
// boundaries: "a.b.example" matches "example", "b.example" and itself.
type suffixSet map[string]struct{}

func newSuffixSet(lists ...[]string) suffixSet {
	s := suffixSet{}
	for _, l := range lists {
		for _, n := range l {
			if n = Normalize(n); n != "" {
				s[n] = struct{}{}
			}
		}
	}
	return s
}

// match reports whether name or one of its parents is in the set. It does
// not allocate: candidates are substrings of name.
func (s suffixSet) match(name string) bool {
	if len(s) == 0 {
		return false
	}
	for {
		if _, ok := s[name]; ok {
			return true
		}
		i := strings.IndexByte(name, '.')
		if i < 0 {
			return false
		}
		name = name[i+1:]
	}
}

// Normalize lower-cases a domain name and strips leading and trailing dots,
// the form the engine keys its state by.
func Normalize(name string) string {
	return strings.ToLower(strings.Trim(name, "."))
}

// tldSLD splits name into its last label and the label before it, as the
// seed rule's DomainParts does ("" when there is none).
func tldSLD(name string) (tld, sld string) {
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return name, ""
	}
	tld, rest := name[i+1:], name[:i]
	return tld, rest[strings.LastIndexByte(rest, '.')+1:]
}

// registeredDomain returns name's registered domain (eTLD+1, from the
// public suffix list), or "" when it has none.
func registeredDomain(name string) string {
	d, err := publicsuffix.EffectiveTLDPlusOne(name)
	if err != nil {
		return ""
	}
	return d
}
