package fluxguard

import (
	_ "embed"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/fluxguard/fluxguard/internal/engine"
	"github.com/fluxguard/fluxguard/internal/owner"
)

// The report page's bounds: the names it lists, and the addresses and
// clients it shows of each; a name's detail shows all it has (at most
// max_ips_per_name and max_clients_per_name), and /report every name.
const (
	pageNames   = 200
	pageAddrs   = 8
	pageClients = 5
)

// pageTime is how the page shows times, in UTC.
const pageTime = "2006-01-02 15:04:05Z"

//go:embed reportpage.html
var reportPageHTML string

// reportPage renders the report page ("list") and a name's detail
// ("detail"). html/template escapes every value: names come from traffic.
var reportPage = template.Must(template.New("report").Funcs(template.FuncMap{
	"pathEscape": url.PathEscape,
	"utc":        func(t time.Time) string { return t.UTC().Format(pageTime) },
}).Parse(reportPageHTML))

// pageList is what the report page shows.
type pageList struct {
	Now                 time.Time
	Flagged, Suspicious int // in all
	Names               []pageName
	Omitted             int // names beyond pageNames, not listed
}

// pageName is one name on the report page, or in its detail.
type pageName struct {
	engine.Detail
	Level       string
	Reasons     []string
	Addrs       []pageAddr
	MoreAddrs   int // addresses not shown
	Clients     []string
	MoreClients int // clients not shown
}

// pageAddr is an address and the network the score counts it in.
type pageAddr struct {
	Addr, Network string
	LastSeen      time.Time
}

// pageDetail is a name's detail: why it is flagged, and what is done
// with it.
type pageDetail struct {
	Now     time.Time
	Name    string
	Found   bool // the name is suspicious or flagged
	Status  string
	Blocked bool
	Covered string // the registered domain ("*.example.com") whose hold covers the name, if any
	Detail  *pageName
	Why     []reasonLine
	Terms   []termLine // the default profile's score, term by term
	Seed    bool       // the seed profile: a point per reason
}

// reasonLine is a reason and what it means for the name.
type reasonLine struct{ Name, Text string }

// termLine is a term of the score: what it is, and its value.
type termLine struct{ Label, Value string }

// reportSource is what a report server serves: an instance's engine, and
// its action, to tell whether flagged names are blocked.
type reportSource struct {
	eng        *engine.Engine
	action     action
	blockRcode int
}

// source returns what f's report server serves.
func (f *Fluxguard) source() *reportSource {
	return &reportSource{eng: f.eng, action: f.cfg.action, blockRcode: f.cfg.blockRcode}
}

// servePage writes the report page: the flagged names, then the
// suspicious ones, by score, at most pageNames of them.
func (rs *reportServer) servePage(w http.ResponseWriter, _ *http.Request) {
	page := pageList{Now: time.Now()}
	var shown []engine.Detail
	shown, page.Flagged, page.Suspicious = rs.src.Load().eng.Top(pageNames)
	page.Omitted = page.Flagged + page.Suspicious - len(shown)
	for _, d := range shown {
		page.Names = append(page.Names, newPageName(d, pageAddrs, pageClients))
	}
	render(w, http.StatusOK, "list", page)
}

// serveName writes a name's detail: its verdict, the reasons and the
// score's terms, its addresses and clients, and whether it is blocked.
func (rs *reportServer) serveName(w http.ResponseWriter, r *http.Request) {
	src := rs.src.Load()
	name := r.PathValue("name")
	domain, aggregate := strings.CutPrefix(name, "*.")
	domain = engine.Normalize(domain)
	name = domain
	if aggregate {
		name = "*." + domain
	}
	page := pageDetail{Now: time.Now(), Name: name}
	d, found := src.eng.Detail(name)
	// An exact name is held by its own evidence, a deny rule, the intel
	// list or its registered domain's hold; an aggregate by its own.
	v, held := d.Verdict, found && !d.HoldUntil.IsZero()
	if !aggregate {
		v, held = src.eng.Held(domain)
	}
	if found {
		p := newPageName(d, len(d.Addresses), len(d.ClientList))
		page.Found, page.Detail = true, &p
		page.Why = explainReasons(d, src.eng.Config())
		page.Terms = scoreTerms(d)
		page.Seed = src.eng.Config().Profile == engine.ProfileSeed
	}
	if held && !aggregate && v.Reasons&engine.ReasonRegisteredDomain != 0 {
		page.Covered = "*." + engine.RegisteredDomain(domain)
	} else if held && !found {
		page.Why = explainReasons(engine.Detail{Verdict: v}, src.eng.Config()) // a deny rule or the intel list
	}
	page.Status, page.Blocked = src.status(d.Verdict.Level, v, held)
	status := http.StatusOK
	if !found && !held {
		status = http.StatusNotFound
	}
	render(w, status, "detail", page)
}

// status tells what becomes of a name at level, held (or not) with
// verdict v, and whether it is blocked.
func (src *reportSource) status(level engine.Level, v engine.Verdict, held bool) (string, bool) {
	if !held {
		if level == engine.LevelSuspicious {
			return "Suspicious: watched, not blocked; it is flagged when its score reaches the threshold.", false
		}
		return "Neither suspicious nor flagged now: its answers pass untouched.", false
	}
	until := "until its hold ends, unless its answers flag it again"
	switch {
	case v.Reasons&engine.ReasonDenied != 0:
		until = "while the deny rule is in force"
	case v.Reasons&engine.ReasonIntel != 0:
		until = "while it is on the intel domain list"
	case v.HoldLeft > 0:
		until = "until " + time.Now().Add(v.HoldLeft).UTC().Format(pageTime) + ", when its hold ends, unless its answers flag it again"
	}
	switch src.action {
	case actionBlock:
		return fmt.Sprintf("Blocked: answered %s with EDE 15 (Blocked), without going upstream, %s.", dns.RcodeToString[src.blockRcode], until), true
	case actionSinkhole:
		return "Blocked: answered with the sinkhole addresses and EDE 15 (Blocked), without going upstream, " + until + ".", true
	}
	return "Flagged, not blocked: action log (monitor mode) only logs, tags and counts it, " + until + ".", false
}

// newPageName shows d with at most addrs of its addresses and clients of
// its clients.
func newPageName(d engine.Detail, addrs, clients int) pageName {
	p := pageName{Detail: d, Level: d.Verdict.Level.String(), Reasons: reasonList(d.Verdict.Reasons)}
	for _, a := range d.Addresses[:min(addrs, len(d.Addresses))] {
		p.Addrs = append(p.Addrs, pageAddr{Addr: a.Addr.String(), Network: networkName(a), LastSeen: a.LastSeen})
	}
	p.MoreAddrs = len(d.Addresses) - len(p.Addrs)
	p.Clients = d.ClientList[:min(clients, len(d.ClientList))]
	p.MoreClients = len(d.ClientList) - len(p.Clients)
	return p
}

// networkName names a's network, with its operator's name when it is
// one of the embedded table's.
func networkName(a engine.Address) string {
	if op, ok := owner.OperatorOfASN(a.ASN); ok {
		return a.Network() + " " + op.Name
	}
	return a.Network()
}

// reasonList splits r into its reasons' names.
func reasonList(r engine.Reasons) []string {
	if r == 0 {
		return nil
	}
	return strings.Split(r.String(), ",")
}

// explainReasons says what each of d's reasons means for its name, with
// the figures behind it and the settings of cfg they are measured against.
func explainReasons(d engine.Detail, cfg engine.Config) []reasonLine {
	v := d.Verdict
	var out []reasonLine
	for _, name := range reasonList(v.Reasons) {
		var text string
		switch name {
		case "suspicious_tld":
			text = fmt.Sprintf("its top-level domain .%s is on the suspicious list", d.TLD)
		case "short_sld":
			text = fmt.Sprintf("its second-level label has at most short_sld (%d) characters", cfg.ShortSLD)
		case "many_ips":
			text = fmt.Sprintf("%d addresses in the window, at least many_ips (%d)", v.UniqueIPs, cfg.ManyIPs)
		case "many_clients":
			text = fmt.Sprintf("%d clients asked for it, at least many_clients (%d)", v.Clients, cfg.ManyClients)
		case "denied":
			text = "a deny rule names it or a parent: flagged without evidence"
		case "prefix_diversity":
			text = fmt.Sprintf("its addresses spread over %.1f effective networks (2^entropy of their owners or /16 prefixes), %d or more", v.Networks, engine.DiverseNetworks)
		case "rotating":
			text = fmt.Sprintf("%d addresses in the window, at least twice its largest answers, A and AAAA (%d): the set rotates", v.UniqueIPs, d.MaxAnswer)
		case "short_ttl":
			text = fmt.Sprintf("its answers' mean TTL is %d s, at most %s", v.TTL, span(engine.ShortTTL))
		case "ns_churn":
			text = fmt.Sprintf("its registered domain's name servers rotate: more than %d seen (double flux)", engine.UsualNS)
		case "registered_domain":
			text = "the evidence is its registered domain's, over all the names seen under it"
		case "ns_diversity":
			text = fmt.Sprintf("its name servers' addresses spread over more than %d networks", engine.UsualNSNetworks)
		case "churn":
			text = fmt.Sprintf("its addresses churn far beyond its answers' size (%d addresses; its largest answers, A and AAAA, hold %d) in several networks", v.UniqueIPs, d.MaxAnswer)
		case "shared_pool":
			text = "its answers brought addresses of names flagged in the window, in at least two networks: that halves the score a candidate needs"
		case "seed_rule":
			text = fmt.Sprintf("the seed rule flags it too on its own evidence (%d addresses, its name), and they rotated through %d times its largest answers outside the CDNs', the large clouds' and the large services' networks: that halves the score a candidate needs", v.UniqueIPs, engine.SeedRotation)
		case "intel":
			text = "it is on the intel domain list (intel_domains)"
		case "known_bad_addr":
			text = "its answers brought addresses on the intel address list (intel_addrs)"
		case "fleet":
			text = "another replica of the fleet flagged it, and shares its hold (shared)"
		default:
			text = "see the README's Metadata section"
		}
		out = append(out, reasonLine{name, text})
	}
	return out
}

// span writes a number of seconds in whole hours or minutes, as people do.
func span(seconds int) string {
	switch {
	case seconds%3600 == 0:
		return fmt.Sprintf("%d hours", seconds/3600)
	case seconds%60 == 0:
		return fmt.Sprintf("%d minutes", seconds/60)
	}
	return fmt.Sprintf("%d s", seconds)
}

// scoreTerms shows d's score as the default profile computes it, term by
// term in order (see engine.ScoreTerms); none when it did not score it.
func scoreTerms(d engine.Detail) []termLine {
	t := d.Terms
	if t == (engine.ScoreTerms{}) {
		return nil
	}
	rotation := "the set does not rotate"
	if t.Rotation == 1 {
		rotation = "the set rotates"
	}
	ttl := fmt.Sprintf("mean TTL at most %s", span(engine.ShortTTL))
	switch t.TTL {
	case engine.MidTTLWeight:
		ttl = fmt.Sprintf("mean TTL up to %s", span(engine.LongTTL))
	case 0:
		ttl = fmt.Sprintf("mean TTL over %s: not evidence", span(engine.LongTTL))
	}
	lines := []termLine{
		{fmt.Sprintf("effective networks (%.2f), weighted", d.Verdict.Networks), fmt.Sprintf("%.2f", t.Networks)},
		{"× rotation: " + rotation, fmt.Sprintf("× %g", t.Rotation)},
	}
	add := func(label string, value float64) {
		if value != 0 {
			lines = append(lines, termLine{label, fmt.Sprintf("+ %.2f", value)})
		}
	}
	add("+ churn", t.Churn)
	lines = append(lines, termLine{"× TTL: " + ttl, fmt.Sprintf("× %g", t.TTL)})
	add("+ name servers beyond 4", t.NS)
	add("+ name-server networks beyond 2", t.NSNetworks)
	add("+ suspicious TLD", t.TLD)
	return append(lines, termLine{fmt.Sprintf("= score (threshold %g)", d.Threshold), fmt.Sprintf("%g", d.Verdict.Score)})
}

// render writes the page template name with data.
func render(w http.ResponseWriter, status int, name string, data any) {
	var b strings.Builder
	if err := reportPage.ExecuteTemplate(&b, name, data); err != nil {
		log.Errorf("report page: %v", err)
		http.Error(w, "fluxguard: report page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write([]byte(b.String()))
}
