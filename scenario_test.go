package fluxguard

import (
	"context"
	"fmt"
	"io"
	golog "log"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/pkg/nonwriter"
	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"

	"github.com/fluxguard/fluxguard/internal/engine"
	"github.com/fluxguard/fluxguard/internal/fluxsim"
	"github.com/fluxguard/fluxguard/internal/testenv"
)

// The scenario suite runs the real handler, in block mode, in front of a
// TTL cache and fluxsim's scenario classes (fluxsim.Scenarios), over
// simulated traffic on a fake clock, and reports per class and profile the
// share of domains flagged, how long it took and after how many answers.
//
// Traffic: a population of scenarioClients clients. Each domain first
// appears at a random time in the first scenarioAppear; it is queried by 1
// to scenarioMaxClients of the clients, each starting within scenarioMaxGap
// of its appearance and then asking again every scenarioMinGap to
// scenarioMaxGap (uniform, redrawn each time) until scenarioDuration. Each
// query asks one of the class's query types (A; AAAA only for ipv6) for
// the domain's next query name: its own name, or for a wildcard domain the
// next of its random subdomains, so each of those is asked once or twice.
// Queries carry EDNS0 (1232 bytes). Everything is seeded: every run sees
// the same traffic, and both profiles see exactly the same queries.
//
// A client sees a domain as detected when one of its queries is answered
// REFUSED (action block, block_rcode REFUSED: no upstream answer is
// REFUSED); the time to detect runs from the domain's first
// query, and the answers to detect are those its clients got before.
const (
	scenarioPerClass   = 50
	scenarioClients    = 50
	scenarioMaxClients = 8
	scenarioDuration   = 2 * time.Hour
	scenarioAppear     = 30 * time.Minute
	scenarioMinGap     = time.Minute
	scenarioMaxGap     = 10 * time.Minute
	scenarioEDNSSize   = 1232

	// Targets of the default profile, per class.
	targetDetection = 98.0 // % of fast-flux domains flagged, at least
	targetFP        = 1.0  // % of benign domains flagged, at most
)

// scenarioStart is the fake clock's origin.
var scenarioStart = time.Date(2025, 3, 3, 8, 0, 0, 0, time.UTC)

// scenarioProfiles are compared side by side: the default profile with
// the embedded table of operators' networks alone, then with asn_db
// holding the full ip-location-db table (FLUXGUARD_ASN_DATA), and the seed
// profile. Only the default profile's targets are asserted: the seed
// profile is there to show its known false positives (and misses).
var scenarioProfiles = []struct {
	name, options string
	assert        bool
	prefixesOnly  bool // networks are /16 prefixes: no operator table, no ASNs
}{
	{"default", "", true, false},
	{"default+asn_db", "asn_db " + asnDataEnv, true, false},
	{"default, /16 only", "", false, true},
	{"seed", "profile seed", false, false},
}

// asnDataEnv names the environment variable holding the path of the
// ip-location-db ASN tables (scripts/test.sh downloads them); it stands
// for the path in a profile's options.
const asnDataEnv = "FLUXGUARD_ASN_DATA"

// alwaysBenign are the classes no profile but the seed one may ever flag:
// the public pools.
var alwaysBenign = map[string]bool{"ntp-pool": true, "crypto-seeds": true}

func TestScenarios(t *testing.T) {
	classes, domains, served := scenarioSuite(t)
	traffic := simulateTraffic(classes, domains)

	var (
		mu      sync.Mutex
		results = map[string][][]domainResult{} // profile -> class -> domain
	)
	t.Run("profiles", func(t *testing.T) {
		for _, p := range scenarioProfiles {
			t.Run(p.name, func(t *testing.T) {
				t.Parallel()
				options := p.options
				if strings.Contains(options, asnDataEnv) {
					options = strings.ReplaceAll(options, asnDataEnv, testenv.ASNData(t))
				}
				var mod func(*config)
				if p.prefixesOnly {
					mod = func(c *config) { c.owners = func(func(netip.Addr) uint32) func(netip.Addr) uint32 { return nil } }
				}
				run, err := scenarioHandler(mod, options, "action block", "block_rcode REFUSED")
				if err != nil {
					t.Fatal(err)
				}
				res, _ := runScenario(t, run, served, domains, traffic)
				mu.Lock()
				results[p.name] = res
				mu.Unlock()
				if p.assert {
					checkTargets(t, classes, domains, res)
				}
			})
		}
	})

	if def, seed := results["default"], results["seed"]; def != nil && seed != nil {
		atLeastSeed(t, classes, domains, def, seed)
	}
	table := scenarioTable(classes, results, len(traffic))
	t.Log("\n" + table)
	if path := os.Getenv("SCENARIO_TABLE"); path != "" {
		if err := os.WriteFile(path, []byte(table), 0o644); err != nil {
			t.Errorf("writing SCENARIO_TABLE: %v", err)
		}
	}
}

// scenarioSuite returns the suite's classes, their domains and every name
// to serve, and silences the log for t: flagging logs a line per domain.
func scenarioSuite(t *testing.T) ([]fluxsim.Class, [][]simDomain, []fluxsim.Name) {
	out := golog.Writer()
	golog.SetOutput(io.Discard)
	t.Cleanup(func() { golog.SetOutput(out) })

	classes := fluxsim.Scenarios(scenarioPerClass)
	domains := make([][]simDomain, len(classes))
	var served []fluxsim.Name
	for i, c := range classes {
		domains[i] = scenarioDomains(c)
		served = append(served, c.Names...)
	}
	return classes, domains, served
}

// simDomain is one domain of a class as clients see it.
type simDomain struct {
	name  string   // the served name: a domain, or the parent of a wildcard
	query []string // the names clients ask for it, in turn
}

// scenarioDomains groups a class's query names by the served name that
// answers them (the name itself, or the wildcard it is under), in order.
func scenarioDomains(c fluxsim.Class) []simDomain {
	served := make(map[string]bool, len(c.Names))
	for _, n := range c.Names {
		served[n.Name] = true
	}
	var out []simDomain
	index := map[string]int{}
	for _, q := range c.Query {
		d := q
		for d != "" && !served[d] {
			_, d, _ = strings.Cut(d, ".")
		}
		i, ok := index[d]
		if !ok {
			i = len(out)
			index[d] = i
			out = append(out, simDomain{name: d})
		}
		out[i].query = append(out[i].query, q)
	}
	return out
}

// simQuery is one query of the simulated traffic.
type simQuery struct {
	at            time.Duration // since scenarioStart
	class, domain int
	client        int
	name          string
	qtype         uint16
}

// simulateTraffic returns the seeded traffic over all domains, in time order.
func simulateTraffic(classes []fluxsim.Class, domains [][]simDomain) []simQuery {
	r := rand.New(rand.NewPCG(2025, 1568))
	uniform := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(r.Int64N(int64(hi-lo)+1)) }
	var all []simQuery
	for ci, c := range classes {
		qtypes := c.QTypes
		if len(qtypes) == 0 {
			qtypes = []uint16{dns.TypeA}
		}
		for di, d := range domains[ci] {
			appear := uniform(0, scenarioAppear)
			var qs []simQuery
			for _, client := range r.Perm(scenarioClients)[:1+r.IntN(scenarioMaxClients)] {
				for at := appear + uniform(0, scenarioMaxGap); at < scenarioDuration; at += uniform(scenarioMinGap, scenarioMaxGap) {
					qs = append(qs, simQuery{at: at, class: ci, domain: di, client: client})
				}
			}
			slices.SortStableFunc(qs, func(a, b simQuery) int { return int(a.at - b.at) })
			for k := range qs {
				qs[k].name, qs[k].qtype = d.query[k%len(d.query)], qtypes[r.IntN(len(qtypes))]
			}
			all = append(all, qs...)
		}
	}
	slices.SortStableFunc(all, func(a, b simQuery) int { return int(a.at - b.at) })
	return all
}

// scenarioHandler builds the handler with options (one a line) and then
// mod, if any, on a fake clock that runScenario moves.
func scenarioHandler(mod func(*config), options ...string) (*scenarioRun, error) {
	corefile := fmt.Sprintf("fluxguard . {\n %s\n}", strings.Join(options, "\n "))
	cfg, err := parse(caddy.NewTestController("dns", corefile))
	if err != nil {
		return nil, err
	}
	if mod != nil {
		mod(&cfg)
	}
	run := &scenarioRun{now: scenarioStart}
	cfg.engine.Now = func() time.Time { return run.now }
	if run.f, err = newFluxguard(cfg, ""); err != nil {
		return nil, err
	}
	return run, nil
}

// scenarioRun is one profile's handler and its fake clock. The handler
// starts no goroutine (start is not called), so the clock is read and
// moved by the test's goroutine only.
type scenarioRun struct {
	f   *Fluxguard
	now time.Time
}

// domainResult is what the clients of one domain saw.
type domainResult struct {
	queried bool
	first   time.Duration // first query, since scenarioStart
	flagged bool          // some query was answered REFUSED
	at      time.Duration // the first REFUSED answer
	answers int           // answers the clients got before it
	shared  bool          // the name was flagged on the shared_pool evidence
}

// runScenario plays traffic through run's handler, in front of a TTL cache
// and a fresh fluxsim server (served in-process, no listener), and returns
// each domain's result, and the resolver's log of the answers.
func runScenario(t *testing.T, run *scenarioRun, served []fluxsim.Name, domains [][]simDomain, traffic []simQuery) ([][]domainResult, []dnsEvent) {
	sim, err := fluxsim.New(served)
	if err != nil {
		t.Fatal(err)
	}
	cache := &ttlCache{next: sim, now: func() time.Time { return run.now }, entries: map[cacheKey]cacheEntry{}}
	run.f.Next = plugin.HandlerFunc(cache.ServeDNS)
	ctx := newContext(serverLabel(t))

	res := make([][]domainResult, len(domains))
	for i := range domains {
		res[i] = make([]domainResult, len(domains[i]))
	}
	clients := make([]*test.ResponseWriter, scenarioClients)
	for i := range clients {
		clients[i] = &test.ResponseWriter{RemoteIP: fmt.Sprintf("10.20.%d.%d", i/200, 10+i%200)}
	}
	events := make([]dnsEvent, 0, len(traffic))
	for _, q := range traffic {
		run.now = scenarioStart.Add(q.at)
		r := new(dns.Msg).SetQuestion(q.name, q.qtype)
		r.SetEdns0(scenarioEDNSSize, false)
		rec := dnstest.NewRecorder(clients[q.client])
		if _, err := run.f.ServeDNS(ctx, rec, r); err != nil || rec.Msg == nil {
			t.Fatalf("%s %s: no answer (%v)", q.name, dns.TypeToString[q.qtype], err)
		}
		ev := eventOf(q, clients[q.client].RemoteIP, rec.Msg)
		_, ev.held = run.f.eng.Held(ev.name)
		events = append(events, ev)
		d := &res[q.class][q.domain]
		if !d.queried {
			d.queried, d.first = true, q.at
		}
		switch {
		case d.flagged:
		case rec.Msg.Rcode == dns.RcodeRefused:
			d.flagged, d.at = true, q.at
			v, _ := run.f.eng.Held(events[len(events)-1].name)
			d.shared = v.Reasons&engine.ReasonSharedPool != 0
		default:
			d.answers++
		}
	}
	return res, events
}

// ttlCache stands for the cache plugin behind fluxguard: it answers a name
// and type from its last upstream answer, TTLs counted down, until the
// answer's lowest TTL has passed on the fake clock, so that fluxguard sees
// what it sees in a real chain: cache hits repeat the cached addresses.
// Only NOERROR answers with records are cached.
type ttlCache struct {
	next    dns.Handler
	now     func() time.Time
	entries map[cacheKey]cacheEntry
}

type cacheKey struct {
	name  string
	qtype uint16
}

type cacheEntry struct {
	msg             *dns.Msg
	stored, expires time.Time
}

func (c *ttlCache) ServeDNS(_ context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	key := cacheKey{strings.ToLower(r.Question[0].Name), r.Question[0].Qtype}
	now := c.now()
	if e, ok := c.entries[key]; ok && now.Before(e.expires) {
		m := e.msg.Copy()
		m.Id, m.Question = r.Id, r.Question
		age := uint32(now.Sub(e.stored) / time.Second)
		for _, section := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
			for _, rr := range section {
				if rr.Header().Rrtype != dns.TypeOPT {
					rr.Header().Ttl -= age
				}
			}
		}
		return dns.RcodeSuccess, w.WriteMsg(m)
	}
	nw := nonwriter.New(w)
	c.next.ServeDNS(nw, r)
	if nw.Msg == nil {
		return dns.RcodeServerFailure, nil
	}
	if ttl, ok := minTTL(nw.Msg); ok && nw.Msg.Rcode == dns.RcodeSuccess && len(nw.Msg.Answer) > 0 {
		c.entries[key] = cacheEntry{msg: nw.Msg.Copy(), stored: now, expires: now.Add(ttl)}
	}
	return dns.RcodeSuccess, w.WriteMsg(nw.Msg)
}

// minTTL is the lowest TTL of m's records (OPT aside), as cache keeps a
// message for.
func minTTL(m *dns.Msg) (time.Duration, bool) {
	lowest, found := uint32(0), false
	for _, section := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range section {
			if h := rr.Header(); h.Rrtype != dns.TypeOPT && (!found || h.Ttl < lowest) {
				lowest, found = h.Ttl, true
			}
		}
	}
	return time.Duration(lowest) * time.Second, found && lowest > 0
}

// classStats summarizes one class under one profile.
type classStats struct {
	domains, flagged int
	ttd              []time.Duration // time to detect of the flagged domains
	answers          []int           // answers before detection of the flagged domains
	sharedAnswers    []int           // the same, of the domains flagged on shared_pool
}

func statsOf(res []domainResult) classStats {
	s := classStats{domains: len(res)}
	for _, d := range res {
		if d.flagged {
			s.flagged++
			s.ttd = append(s.ttd, d.at-d.first)
			s.answers = append(s.answers, d.answers)
			if d.shared {
				s.sharedAnswers = append(s.sharedAnswers, d.answers)
			}
		}
	}
	return s
}

// rate is the percentage of the class's domains flagged.
func (s classStats) rate() float64 {
	if s.domains == 0 {
		return 0
	}
	return 100 * float64(s.flagged) / float64(s.domains)
}

// percent prints p without decimals when it is whole, else with one (a
// 99.5% must not print as 100%).
func percent(p float64) string {
	if p == float64(int(p)) {
		return fmt.Sprintf("%d%%", int(p))
	}
	return fmt.Sprintf("%.1f%%", p)
}

// median returns the lower median of xs, which must not be empty.
func median[T int | time.Duration](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

// checkTargets asserts the default profile's targets, class by class,
// naming a few of the domains that miss them.
func checkTargets(t *testing.T, classes []fluxsim.Class, domains [][]simDomain, res [][]domainResult) {
	t.Helper()
	for i, c := range classes {
		s := statsOf(res[i])
		var wrong []string // missed flux domains, or flagged benign ones
		for j, d := range res[i] {
			if d.flagged != c.Flux && len(wrong) < 5 {
				wrong = append(wrong, domains[i][j].name)
			}
		}
		switch {
		case c.Flux && s.rate() < targetDetection:
			t.Errorf("class %s: detected %d of %d fast-flux domains (%.1f%%), want at least %.0f%%; missed e.g. %s",
				c.Name, s.flagged, s.domains, s.rate(), targetDetection, strings.Join(wrong, " "))
		case !c.Flux && s.rate() > targetFP:
			t.Errorf("class %s: flagged %d of %d benign domains (%.1f%% false positives), want at most %.0f%%; e.g. %s",
				c.Name, s.flagged, s.domains, s.rate(), targetFP, strings.Join(wrong, " "))
		case alwaysBenign[c.Name] && s.flagged > 0:
			t.Errorf("class %s: flagged %d public pool names, want none; e.g. %s", c.Name, s.flagged, strings.Join(wrong, " "))
		}
	}
}

// atLeastSeed asserts that the default profile detects every fast-flux
// domain the seed profile detects: no flux the reference rule would
// catch slips past.
func atLeastSeed(t *testing.T, classes []fluxsim.Class, domains [][]simDomain, def, seed [][]domainResult) {
	t.Helper()
	for i, c := range classes {
		if !c.Flux {
			continue
		}
		var missed []string
		for j := range seed[i] {
			if seed[i][j].flagged && !def[i][j].flagged {
				missed = append(missed, domains[i][j].name)
			}
		}
		if len(missed) > 0 {
			t.Errorf("class %s: the seed profile detected %d domains the default profile missed: %s", c.Name, len(missed), strings.Join(missed, " "))
		}
	}
}

// scenarioTable renders the profiles' results side by side as Markdown.
func scenarioTable(classes []fluxsim.Class, results map[string][][]domainResult, queries int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Scenario suite: %d domains per class, %d clients, %g h simulated, %d queries; "+
		"detected = fast-flux domains flagged, FP = benign domains flagged; TTD = median time from a "+
		"domain's first query to its first blocked answer, and median answers its clients got before.\n\n",
		scenarioPerClass, scenarioClients, scenarioDuration.Hours(), queries)
	b.WriteString("| class | kind |")
	for _, p := range scenarioProfiles {
		fmt.Fprintf(&b, " %s: detected / FP | %s: TTD |", p.name, p.name)
	}
	b.WriteString(" shared_pool: detected, answers |")
	b.WriteString("\n|---|---|")
	for range scenarioProfiles {
		b.WriteString("---:|---:|")
	}
	b.WriteString("---:|")
	b.WriteString("\n")
	for i, c := range classes {
		kind, what := "benign", "FP"
		if c.Flux {
			kind, what = "flux", "detected"
		}
		fmt.Fprintf(&b, "| %s | %s |", c.Name, kind)
		for _, p := range scenarioProfiles {
			res, ok := results[p.name]
			if !ok {
				b.WriteString(" n/a | n/a |")
				continue
			}
			s := statsOf(res[i])
			fmt.Fprintf(&b, " %s %s (%d/%d) |", what, percent(s.rate()), s.flagged, s.domains)
			if s.flagged == 0 {
				b.WriteString(" – |")
			} else {
				fmt.Fprintf(&b, " %.0f min, %d answers |", median(s.ttd).Minutes(), median(s.answers))
			}
		}
		if res := results["default"]; res == nil {
			b.WriteString(" n/a |")
		} else if s := statsOf(res[i]); len(s.sharedAnswers) > 0 {
			fmt.Fprintf(&b, " %d, median %d answers |", len(s.sharedAnswers), median(s.sharedAnswers))
		} else {
			b.WriteString(" – |")
		}
		b.WriteString("\n")
	}
	return b.String()
}
