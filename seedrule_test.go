package fluxguard

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// dnsEvent is one line of a resolver's query log, as the seed rule reads
// Azure's DnsEvents: an answered query with the addresses it got.
type dnsEvent struct {
	at     time.Duration // since scenarioStart
	name   string        // the question name, without the trailing dot
	qtype  uint16
	client string
	rcode  int
	ips    []string // the answer's A and AAAA addresses
	held   bool     // fluxguard held (flagged) the name after this answer
}

// eventOf is the log line of query q from client, answered m.
func eventOf(q simQuery, client string, m *dns.Msg) dnsEvent {
	ev := dnsEvent{at: q.at, name: strings.TrimSuffix(q.name, "."), qtype: q.qtype, client: client, rcode: m.Rcode}
	for _, rr := range m.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			ev.ips = append(ev.ips, rr.A.String())
		case *dns.AAAA:
			ev.ips = append(ev.ips, rr.AAAA.String())
		}
	}
	return ev
}

// The seed rule's lists and filters, copied from its text (the Sentinel
// query quoted in docs/seed-rule.md).
var (
	ruleCDNDomains = []string{".akamaiedge.net", ".akamaitechnologies.com", ".cloudfront.net",
		".fastly.net", ".cloudflare.net", ".edgesuite.net", ".azureedge.net", ".trafficmanager.net",
		".amazonaws.com", ".googleusercontent.com", ".gstatic.com"}
	ruleInternal   = regexp.MustCompile(`\.(local|internal|corp|lan|home|arpa)$`)
	ruleMicrosoft  = []string{".microsoft.com", ".windows.com", ".office.com", ".azure.com", ".live.com"}
	rulePrivate    = regexp.MustCompile(`^(10\.|192\.168\.|172\.(1[6-9]|2[0-9]|3[01])\.|127\.|::1|0\.0\.0\.0)`)
	ruleSuspicious = strings.Fields("tk pw cc ws top xyz ru cn info online click link gq ml cf")
)

// ruleDetection is what the rule reports of a name: a row of its output.
type ruleDetection struct {
	uniqueIPs, queries, clients, score int
}

// seedRule runs the rule's logic over the log, as a scheduled query run
// after every event with its 1-hour lookback, and returns for each name it
// ever reports the highest SuspicionScore it gave it.
func seedRule(events []dnsEvent) map[string]ruleDetection {
	byName := map[string][]dnsEvent{}
	for _, ev := range events {
		if ruleKeeps(ev) {
			byName[ev.name] = append(byName[ev.name], ev)
		}
	}
	out := map[string]ruleDetection{}
	for name, evs := range byName {
		for last := range evs {
			d, ok := summarize(name, evs, last)
			if best, seen := out[name]; ok && (!seen || d.score > best.score) {
				out[name] = d
			}
		}
	}
	return out
}

// ruleKeeps applies the rule's filters on events before mv-expand.
func ruleKeeps(ev dnsEvent) bool {
	if ev.qtype != dns.TypeA && ev.qtype != dns.TypeAAAA || ev.rcode != dns.RcodeSuccess || len(ev.ips) == 0 {
		return false
	}
	name := strings.ToLower(ev.name) // has_any and endswith ignore case
	for _, s := range ruleCDNDomains {
		if hasTerm(name, s) {
			return false
		}
	}
	for _, s := range ruleMicrosoft {
		if strings.HasSuffix(name, s) {
			return false
		}
	}
	return !ruleInternal.MatchString(ev.name) // matches regex does not
}

// hasTerm is KQL's has for a term such as ".cloudfront.net", which starts
// with a delimiter: the term found where no letter or digit follows it.
func hasTerm(name, term string) bool {
	for i := strings.Index(name, term); i >= 0; {
		end := i + len(term)
		if end == len(name) || !isAlnum(name[end]) {
			return true
		}
		j := strings.Index(name[i+1:], term)
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return false
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c >= 'A' && c <= 'Z'
}

// summarize is the rule's summarize ... by Name over the lookback window
// ending at evs[last], and its where clauses and SuspicionScore.
func summarize(name string, evs []dnsEvent, last int) (ruleDetection, bool) {
	ips, clients := map[string]bool{}, map[string]bool{}
	rows := 0
	for _, ev := range evs[:last+1] {
		if ev.at <= evs[last].at-time.Hour {
			continue
		}
		for _, ip := range ev.ips { // mv-expand, then the private filter
			if ip = strings.TrimSpace(ip); ip != "" && !rulePrivate.MatchString(ip) {
				ips[ip], clients[ev.client] = true, true
				rows++
			}
		}
	}
	d := ruleDetection{uniqueIPs: len(ips), queries: rows, clients: len(clients)}
	if d.uniqueIPs < 5 || d.queries < 3 {
		return d, false
	}
	parts := strings.Split(name, ".")
	tld, sld := parts[len(parts)-1], parts[max(len(parts)-2, 0)]
	if slices.Contains(ruleSuspicious, strings.ToLower(tld)) {
		d.score++
	}
	if len(sld) <= 8 {
		d.score++
	}
	if d.uniqueIPs >= 10 {
		d.score++
	}
	if d.clients >= 5 {
		d.score++
	}
	return d, true
}

// TestSeedRuleAgreement runs the seed profile, in monitor mode, over the
// scenario suite's traffic, and the rule's logic, re-implemented from its
// text, over the resolver's log of the same run, and checks that they
// report the same names: those the rule scores at the seed profile's
// threshold (2) or above against those the profile flagged.
func TestSeedRuleAgreement(t *testing.T) {
	classes, domains, served := scenarioSuite(t)
	run, err := scenarioHandler(nil, "profile seed", "action log")
	if err != nil {
		t.Fatal(err)
	}
	_, events := runScenario(t, run, served, domains, simulateTraffic(classes, domains))

	profile := map[string]bool{}
	for _, ev := range events {
		if ev.held {
			profile[ev.name] = true
		}
	}
	rule := map[string]bool{}
	for name, d := range seedRule(events) {
		if d.score >= 2 {
			rule[name] = true
		}
	}
	both, union := 0, len(rule)
	var onlyRule, onlyProfile []string
	for name := range rule {
		if profile[name] {
			both++
		} else {
			onlyRule = append(onlyRule, name)
		}
	}
	for name := range profile {
		if !rule[name] {
			union++
			onlyProfile = append(onlyProfile, name)
		}
	}
	agreement := 100 * float64(both) / float64(max(union, 1))
	t.Logf("rule %d names, seed profile %d, both %d: agreement %.1f%% (only the rule: %d, only the profile: %d)",
		len(rule), len(profile), both, agreement, len(onlyRule), len(onlyProfile))
	if len(rule) < 100 || agreement < 95 {
		slices.Sort(onlyRule)
		slices.Sort(onlyProfile)
		t.Errorf("agreement %.1f%% on %d names, want at least 95%% of at least 100; only the rule e.g. %v; only the profile e.g. %v",
			agreement, union, onlyRule[:min(5, len(onlyRule))], onlyProfile[:min(5, len(onlyProfile))])
	}
}
