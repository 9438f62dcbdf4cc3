package engine

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// observeStable observes name's stable answer (see stableAnswer) three
// times, a second apart: a candidate without name servers yet.
func observeStable(e *Engine, clk *fakeClock, name string) {
	for range 3 {
		clk.add(time.Second)
		e.Observe(&Observation{Name: name, Addrs: stableAnswer(), MinTTL: 300})
	}
}

// stableAnswer is a benign multi-address name's answer: a fixed set of 6
// addresses in 2 networks (a candidate: 5 addresses or more).
func stableAnswer() []netip.Addr {
	var a []netip.Addr
	for i := range 6 {
		a = append(a, netip.AddrFrom4([4]byte{104, byte(64 + i%2), 0, byte(10 + i)}))
	}
	return a
}

// TestClassicDoubleFlux checks classic double flux: the same two name
// servers' names (ns1, ns2.evil-pay.com) at each resolution of the
// domain's NS, with new glue in new networks. The addresses rotate: their
// networks count (ns_diversity) though the names do not.
func TestClassicDoubleFlux(t *testing.T) {
	clk := &fakeClock{t: at("10:00:00")}
	e := newTestEngine(t, clk, func(c *Config) { c.Profile = ProfileDefault })
	const name = "login.evil-pay.com"
	observeStable(e, clk, name)
	for i := range 6 { // the NS TTL passes: the same two names, new addresses
		clk.add(time.Minute)
		glue := addrs(fmt.Sprintf("%d.%d.0.1", 60+i, 10+i), fmt.Sprintf("%d.%d.0.1", 120+i, 20+i))
		e.ObserveNS("evil-pay.com", []string{name}, []string{"ns1.evil-pay.com", "ns2.evil-pay.com"}, glue)
	}
	clk.add(time.Second)
	v := e.Observe(&Observation{Name: name, Addrs: stableAnswer(), MinTTL: 300})
	if n := countSince(listOf(t, e.st, name, nsIPsOf), 0); n != 12 {
		t.Fatalf("setup: %d name server addresses recorded, want 12", n)
	}
	if v.Reasons&ReasonNSDiversity == 0 {
		t.Errorf("name servers whose addresses fluxed over 12 networks in 6 resolutions: no ns_diversity (%v, score %v, %s)", v.Level, v.Score, v.Reasons)
	}
}

// TestNSMoveIsNotRotation checks that a zone that moves from one DNS
// provider (4 name servers) to another (4 others), once, shows no NS
// churn: a benign, stable multi-address name under it stays unflagged,
// though resolve_ns saw both sets in the window.
func TestNSMoveIsNotRotation(t *testing.T) {
	clk := &fakeClock{t: at("10:00:00")}
	e := newTestEngine(t, clk, func(c *Config) { c.Profile = ProfileDefault })
	const name = "www.bigshop.com"
	observeStable(e, clk, name)
	provider := func(p int) (ns []string, glue []netip.Addr) {
		for i := range 4 {
			ns = append(ns, fmt.Sprintf("ns%d.provider%d.net", i+1, p))
			glue = append(glue, netip.AddrFrom4([4]byte{byte(30 + 40*p + 10*i), byte(5 + i), 0, 53}))
		}
		return ns, glue
	}
	ns, glue := provider(0) // before the migration
	e.ObserveNS("bigshop.com", []string{name}, ns, glue)
	clk.add(10 * time.Minute)
	before := e.Observe(&Observation{Name: name, Addrs: stableAnswer(), MinTTL: 300})
	ns, glue = provider(1) // after it: resolved again once the NS TTL passed
	e.ObserveNS("bigshop.com", []string{name}, ns, glue)
	clk.add(time.Second)
	after := e.Observe(&Observation{Name: name, Addrs: stableAnswer(), MinTTL: 300})
	if after.Level == LevelFlagged || after.Reasons&(ReasonNSChurn|ReasonNSDiversity) != 0 {
		t.Errorf("a stable name whose zone moved to another DNS provider once: before %v score %v %s; after %v score %v %s",
			before.Level, before.Score, before.Reasons, after.Level, after.Score, after.Reasons)
	}
}

// TestNSSubzoneAndDomain checks that two stable sets seen in turn are no
// rotation: www.shop.bigbank.com's answers carry its delegated zone's 4
// name servers, and resolve_ns its registered domain's 8.
func TestNSSubzoneAndDomain(t *testing.T) {
	clk := &fakeClock{t: at("10:00:00")}
	e := newTestEngine(t, clk, func(c *Config) { c.Profile = ProfileDefault })
	const name = "www.shop.bigbank.com"
	sub := []string{"ns-1.awsdns-01.org", "ns-2.awsdns-02.co.uk", "ns-3.awsdns-03.com", "ns-4.awsdns-04.net"}
	var parent []string
	var glue []netip.Addr
	for i := range 8 {
		parent = append(parent, fmt.Sprintf("a%d-64.akam.net", i+1))
		glue = append(glue, netip.AddrFrom4([4]byte{byte(23 + 10*i), byte(61 + i), 0, 64}))
	}
	var v Verdict
	for range 3 {
		clk.add(time.Second)
		v = e.Observe(&Observation{Name: name, Addrs: stableAnswer(), MinTTL: 300, NS: sub})
	}
	before := v
	e.ObserveNS("bigbank.com", []string{name}, parent, glue)
	for range 3 {
		clk.add(time.Second)
		v = e.Observe(&Observation{Name: name, Addrs: stableAnswer(), MinTTL: 300, NS: sub})
	}
	if v.Level == LevelFlagged || v.Reasons&ReasonNSChurn != 0 {
		t.Errorf("two stable NS sets (the subzone's 4, the registered domain's 8): before resolve_ns %v score %v %s; after %v score %v %s",
			before.Level, before.Score, before.Reasons, v.Level, v.Score, v.Reasons)
	}
}
