package engine

import (
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Rule is one allow or deny entry: a name, which covers its children too,
// valid until Until (forever when zero), e.g. for a change window.
type Rule struct {
	Name  string
	Until time.Time
}

// Policy is the operator's allow and deny policy, and threat
// intelligence (see Intel). An allow always wins: an allowed name is
// never tracked, flagged or blocked. A denied name is flagged without
// evidence. Engine.SetPolicy swaps it at run time.
type Policy struct {
	allow     ruleSet
	deny      ruleSet
	allowNets []netip.Prefix
	intel     ruleSet  // names flagged without evidence, with ReasonIntel
	bad       *addrSet // addresses known bad, or nil
}

// NewPolicy compiles allow and deny rules and allowed networks: an answer
// whose public addresses all lie in allowNets is allowed.
func NewPolicy(allow, deny []Rule, allowNets []netip.Prefix) *Policy {
	return &Policy{allow: newRuleSet(allow), deny: newRuleSet(deny), allowNets: allowNets}
}

// ruleSet maps names to the unix time their rule ends (0: never).
type ruleSet map[string]int64

func newRuleSet(rules []Rule) ruleSet {
	s := ruleSet{}
	for _, r := range rules {
		name := Normalize(r.Name)
		if name == "" {
			continue
		}
		until := int64(0)
		if !r.Until.IsZero() {
			until = r.Until.Unix()
		}
		// Of two rules for a name, the longer lasting wins.
		if old, ok := s[name]; ok && (old == 0 || until != 0 && until < old) {
			continue
		}
		s[name] = until
	}
	return s
}

// match reports whether name or a parent has a rule in force at now.
func (s ruleSet) match(name string, now int64) bool {
	if len(s) == 0 {
		return false
	}
	for {
		if until, ok := s[name]; ok && (until == 0 || now < until) {
			return true
		}
		i := strings.IndexByte(name, '.')
		if i < 0 {
			return false
		}
		name = name[i+1:]
	}
}

// sameAllows reports whether p allows the same names and networks as old.
func (p *Policy) sameAllows(old *Policy) bool {
	return maps.Equal(p.allow, old.allow) && slices.Equal(p.allowNets, old.allowNets)
}

// allowed reports whether name, or any name on its CNAME chain, is allowed.
func (p *Policy) allowed(name string, chain []string, now int64) bool {
	if p.allow.match(name, now) {
		return true
	}
	for _, c := range chain {
		if p.allow.match(c, now) {
			return true
		}
	}
	return false
}

// netsAllowed reports whether the public addresses of an answer, those that
// evidence reports, are all in p's allowed networks, and there is one.
func (p *Policy) netsAllowed(addrs []netip.Addr, evidence func(netip.Addr) bool) bool {
	if len(p.allowNets) == 0 {
		return false
	}
	public := false
	for _, a := range addrs {
		if !evidence(a) {
			continue
		}
		public = true
		in := false
		for _, n := range p.allowNets {
			if n.Contains(a.Unmap()) {
				in = true
				break
			}
		}
		if !in {
			return false
		}
	}
	return public
}
