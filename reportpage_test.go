package fluxguard

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"github.com/fluxguard/fluxguard/internal/engine"
)

// pageHandler returns the routes of a report server serving f.
func pageHandler(f *Fluxguard) http.Handler {
	rs := newReportServer("")
	rs.src.Store(f.source())
	return rs.routes()
}

// getPage requests path from h and parses the HTML it returns.
func getPage(t *testing.T, h http.Handler, path string, status int) (*html.Node, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	body := rec.Body.String()
	if rec.Code != status {
		t.Fatalf("GET %s: expected status %d, got %d:\n%s", path, status, rec.Code, body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("GET %s: expected an HTML page, got Content-Type %q", path, ct)
	}
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return doc, body
}

// nodes returns the element nodes under n that match.
func nodes(n *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	for d := range n.Descendants() {
		if d.Type == html.ElementNode && match(d) {
			out = append(out, d)
		}
	}
	return out
}

// text returns the text under n.
func text(n *html.Node) string {
	var b strings.Builder
	for d := range n.Descendants() {
		if d.Type == html.TextNode {
			b.WriteString(d.Data)
		}
	}
	return b.String()
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// checkInert fails when the page holds anything that runs: a script,
// an event handler attribute, a link elsewhere than the report server's
// paths (a javascript: URL), or an element other than those the template
// writes.
func checkInert(t *testing.T, doc *html.Node) {
	t.Helper()
	allowed := map[string]bool{"html": true, "head": true, "body": true, "meta": true, "title": true, "style": true,
		"header": true, "nav": true, "h1": true, "h2": true, "p": true, "a": true, "span": true, "table": true, "thead": true,
		"tbody": true, "tr": true, "th": true, "td": true, "ul": true, "li": true, "dl": true, "dt": true, "dd": true}
	for _, n := range nodes(doc, func(*html.Node) bool { return true }) {
		if !allowed[n.Data] {
			t.Errorf("Expected only the template's elements, got <%s>", n.Data)
		}
		for _, a := range n.Attr {
			if strings.HasPrefix(a.Key, "on") {
				t.Errorf("Expected no event handler, got <%s %s=%q>", n.Data, a.Key, a.Val)
			}
			if u, err := url.Parse(a.Val); a.Key == "href" && (err != nil || u.Scheme != "" || u.Host != "" || !strings.HasPrefix(u.Path, "/")) {
				t.Errorf("Expected links to the report server's paths only, got <%s %s=%q>", n.Data, a.Key, a.Val)
			}
		}
	}
}

// TestReportPageEscapes lists names from hostile traffic and follows
// their links: each shows as the text it is, links to its own detail, and
// injects nothing.
func TestReportPageEscapes(t *testing.T) {
	tests := []struct{ name, hostile string }{
		{"script element", "<script>alert(1)</script>.evil.tk"},
		{"attribute breakout", `x"><img src=x onerror=alert(1)>.evil.tk`},
		{"single quotes", "x' onmouseover='alert(1)'.evil.tk"},
		{"javascript URL", "javascript:alert(1).evil.tk"},
		{"path and query characters", "a/../../report?x=1#frag&y=%2e%2e.evil.tk"},
		{"escaped bytes", `a\000\<b\>.evil.tk`},
		{"template action", "{{.status}}.evil.tk"},
		{"entity", "&lt;b&gt;&amp;.evil.tk"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, _ := newTestFluxguard(t, "fluxguard . {\n profile default\n action block\n}")
			name := engine.Normalize(tc.hostile)
			flagFlux(t, f.eng, name)
			h := pageHandler(f)

			doc, body := getPage(t, h, "/", http.StatusOK)
			checkInert(t, doc)
			if strings.Contains(body, name) && strings.ContainsAny(name, `<>"'&`) {
				t.Errorf("Expected %q escaped, found it raw:\n%s", name, body)
			}
			links := nodes(doc, func(n *html.Node) bool { return n.Data == "a" && text(n) == name })
			if len(links) != 1 {
				t.Fatalf("Expected one link showing %q, got %d:\n%s", name, len(links), body)
			}
			href := attr(links[0], "href")
			u, err := url.Parse(href)
			if err != nil || u.RawQuery != "" || u.Fragment != "" || !strings.HasPrefix(u.Path, "/name/") {
				t.Fatalf("Expected a link to the name's detail, got %q (%v)", href, err)
			}

			doc, body = getPage(t, h, href, http.StatusOK)
			checkInert(t, doc)
			h1 := nodes(doc, func(n *html.Node) bool { return n.Data == "h1" })
			if len(h1) != 1 || text(h1[0]) != name {
				t.Errorf("Expected the detail of %q, got:\n%s", name, body)
			}
			if title := nodes(doc, func(n *html.Node) bool { return n.Data == "title" }); len(title) != 1 || text(title[0]) != name+" - fluxguard" {
				t.Errorf("Expected the title to name %q, got:\n%s", name, body)
			}
		})
	}
}

// TestReportPage checks what the page lists of a flagged, a suspicious and
// a denied name, and its bounds.
func TestReportPage(t *testing.T) {
	f, _ := newTestFluxguard(t, "fluxguard . {\n profile default\n action block\n deny bad.example\n}")
	flagFlux(t, f.eng, "login.fluxy.top")
	for i := range 6 { // suspicious: TTLs over 3 hours weigh nothing
		var addrs []string
		for j := range 2 {
			addrs = append(addrs, fmt.Sprintf("46.%d.0.1", 2*i+j))
		}
		observe(t, f.eng, "slow.example.com", 4*3600, addrs...)
	}
	doc, body := getPage(t, pageHandler(f), "/", http.StatusOK)
	rows := nodes(doc, func(n *html.Node) bool { return n.Data == "tr" && strings.HasPrefix(attr(n, "class"), "row-") })
	if len(rows) != 2 {
		t.Fatalf("Expected 2 names listed, got %d:\n%s", len(rows), body)
	}
	for i, want := range []string{
		"login.fluxy.top flagged 13 / 8 suspicious_tldprefix_diversityrotatingshort_ttl 45.0.0.1 45.0.0.0/16",
		"slow.example.com suspicious 0 / 8 prefix_diversityrotating 46.0.0.1 46.0.0.0/16",
	} {
		got := strings.Join(strings.Fields(text(rows[i])), " ")
		if !strings.HasPrefix(got, want) {
			t.Errorf("Row %d: expected it to start with %q, got %q", i, want, got)
		}
	}
	if got := text(rows[0]); !strings.Contains(got, "and 4 more") || !strings.Contains(got, "10.0.0.1") {
		t.Errorf("Expected 8 of the 12 addresses and the client, got %q", got)
	}
	if !strings.Contains(body, "1 flagged, 1 suspicious names") {
		t.Errorf("Expected the counts, got:\n%s", body)
	}
}

// TestReportPageBounded checks that the page lists at most pageNames
// names, and says how many it leaves out.
func TestReportPageBounded(t *testing.T) {
	f, _ := newTestFluxguard(t, "fluxguard . {\n profile default\n}")
	for i := range pageNames + 7 {
		flagFlux(t, f.eng, fmt.Sprintf("h%d.fluxy.top", i))
	}
	doc, body := getPage(t, pageHandler(f), "/", http.StatusOK)
	if rows := nodes(doc, func(n *html.Node) bool { return n.Data == "tr" && attr(n, "class") == "row-flagged" }); len(rows) != pageNames {
		t.Errorf("Expected %d names listed, got %d", pageNames, len(rows))
	}
	// and their registered domain's aggregate, *.fluxy.top
	if !strings.Contains(body, "8 more names, not listed here") {
		t.Errorf("Expected the names left out counted, got:\n%s", body)
	}
}

// TestReportPageMemory checks that the page's memory grows with what it
// shows, not with the names tracked: it built the detail of every
// suspicious name to show 200, 7 KB a name, over 1 GiB at max_names.
func TestReportPageMemory(t *testing.T) {
	for _, names := range []int{500, 20_000} {
		t.Run(fmt.Sprint(names), func(t *testing.T) {
			f, _ := newTestFluxguard(t, "fluxguard . {\n max_names 200000\n max_ips_per_name 100\n}")
			for i := range names {
				name := fmt.Sprintf("www.site%06d-example.com", i)
				for j := range 3 {
					var a []netip.Addr
					for k := range 7 {
						a = append(a, netip.AddrFrom4([4]byte{byte(45 + k), byte(i >> 8), byte(i), byte(1 + j*7 + k)}))
					}
					f.eng.Observe(&engine.Observation{Name: name, Client: netip.AddrFrom4([4]byte{10, 0, byte(j), 1}), Addrs: a, MinTTL: 30})
				}
			}
			h := pageHandler(f)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
			runtime.ReadMemStats(&after)
			if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), fmt.Sprintf("%d suspicious", names)) {
				t.Fatalf("page: %d, %.300s", rec.Code, rec.Body.String())
			}
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("%d suspicious names: the page allocated %.2f MiB", names, float64(alloc)/(1<<20))
			if alloc > 8<<20 {
				t.Errorf("a page of %d names allocated %.1f MiB for %d names tracked", pageNames, float64(alloc)/(1<<20), names)
			}
		})
	}
}

// TestReportStreamed checks that /report, written a row at a time, is the
// JSON array of the report's rows, empty or not.
func TestReportStreamed(t *testing.T) {
	f, _ := newTestFluxguard(t, "fluxguard . {\n profile default\n}")
	h := pageHandler(f)
	for _, names := range []int{0, 1, 30} {
		for i := range names {
			flagFlux(t, f.eng, fmt.Sprintf("h%d.fluxy%d.top", i, i))
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/report", nil))
		rows := f.eng.Report()
		if rows == nil {
			rows = []engine.Row{}
		}
		want, _ := json.MarshalIndent(rows, "", "  ")
		if got := rec.Body.String(); got != string(want)+"\n" {
			t.Errorf("%d names: /report is\n%.400s\nwant\n%.400s", len(rows), got, want)
		}
	}
}

// TestReportMethods checks that the report server answers GET (and HEAD)
// only: a cross-site POST must not make it walk the state.
func TestReportMethods(t *testing.T) {
	f, _ := newTestFluxguard(t, "fluxguard . {\n}")
	h := pageHandler(f)
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/report", http.StatusOK},
		{http.MethodHead, "/indicators", http.StatusOK},
		{http.MethodPost, "/", http.StatusMethodNotAllowed},
		{http.MethodPost, "/report", http.StatusMethodNotAllowed},
		{http.MethodDelete, "/indicators", http.StatusMethodNotAllowed},
		{http.MethodPut, "/name/x.example", http.StatusMethodNotAllowed},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, strings.NewReader("x=1")))
		if rec.Code != tc.want {
			t.Errorf("%s %s: status %d, want %d", tc.method, tc.path, rec.Code, tc.want)
		}
	}
}

// TestReportPageDetail checks a name's detail: what is done with it under
// each action, why, and its score term by term.
func TestReportPageDetail(t *testing.T) {
	tests := []struct {
		name    string
		options string
		path    string
		status  int
		want    []string // in the page's text, in order
	}{
		{"blocked", "action block", "/name/login.fluxy.top", http.StatusOK, []string{
			"login.fluxy.top", "flagged score 13 (threshold 8)",
			"Blocked: answered NXDOMAIN with EDE 15 (Blocked), without going upstream, until ",
			"Why", "suspicious_tld", "its top-level domain .top is on the suspicious list",
			"prefix_diversity", "its addresses spread over 12.0 effective networks",
			"rotating", "12 addresses in the window, at least twice its largest answers, A and AAAA (4)",
			"short_ttl", "mean TTL is 30 s",
			"Score", "effective networks (12.00), weighted12.00", "× rotation: the set rotates× 1",
			"× TTL: mean TTL at most 5 minutes× 1", "+ suspicious TLD+ 1.00", "= score (threshold 8)13",
			"Addresses12; its largest answers, A and AAAA, 4", "Mean TTL30 s", "Hold", "until",
			"45.0.0.1", "45.0.0.0/16", "45.11.0.1", "Clients", "10.0.0.1",
		}},
		{"REFUSED", "action block\n block_rcode REFUSED", "/name/LOGIN.fluxy.top.", http.StatusOK, []string{
			"Blocked: answered REFUSED with EDE 15"}},
		{"sinkholed", "action sinkhole", "/name/login.fluxy.top", http.StatusOK, []string{
			"Blocked: answered with the sinkhole addresses and EDE 15 (Blocked)"}},
		{"monitor mode", "action log", "/name/login.fluxy.top", http.StatusOK, []string{
			"Flagged, not blocked: action log (monitor mode)", "Why", "Score"}},
		{"denied", "action block\n deny bad.example", "/name/www.bad.example", http.StatusOK, []string{
			"www.bad.example", "Blocked: answered NXDOMAIN", "while the deny rule is in force",
			"denied", "a deny rule names it or a parent"}},
		{"under a flagged registered domain", "action block", "/name/new.evil-wild.com", http.StatusOK, []string{
			"Blocked: answered NXDOMAIN", "Its registered domain is flagged", "*.evil-wild.com"}},
		{"registered domain", "action block", "/name/*.evil-wild.com", http.StatusOK, []string{
			"*.evil-wild.com", "flagged", "Blocked: answered NXDOMAIN", "registered_domain", "threshold 12"}},
		{"unknown", "action block", "/name/www.example.org", http.StatusNotFound, []string{
			"www.example.org", "Neither suspicious nor flagged now"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, _ := newTestFluxguard(t, "fluxguard . {\n profile default\n "+tc.options+"\n}")
			flagFlux(t, f.eng, "login.fluxy.top")
			for i := range 8 { // flux over random subdomains: the registered domain is flagged
				observe(t, f.eng, fmt.Sprintf("x%d.evil-wild.com", i), 30, fmt.Sprintf("47.%d.0.1", 2*i), fmt.Sprintf("47.%d.0.1", 2*i+1))
			}
			doc, body := getPage(t, pageHandler(f), tc.path, tc.status)
			checkInert(t, doc)
			got := text(doc)
			for _, w := range tc.want {
				i := strings.Index(got, w)
				if i < 0 {
					t.Fatalf("Expected %q in the page, in order; page:\n%s", w, body)
				}
				got = got[i+len(w):]
			}
		})
	}
}

// TestExplainReasons checks that every reason is explained.
func TestExplainReasons(t *testing.T) {
	all := engine.Reasons(0)
	for i := range 32 {
		if engine.Reasons(1<<i).String() != "" {
			all |= 1 << i
		}
	}
	lines := explainReasons(engine.Detail{Verdict: engine.Verdict{Reasons: all}}, engine.DefaultConfig())
	if len(lines) != len(reasonList(all)) {
		t.Fatalf("Expected a line per reason, got %+v", lines)
	}
	for _, l := range lines {
		if l.Text == "" || strings.Contains(l.Text, "README") {
			t.Errorf("Reason %s is not explained: %q", l.Name, l.Text)
		}
	}
}

// observe has eng observe an answer of addrs for name, with ttl.
func observe(t *testing.T, eng *engine.Engine, name string, ttl uint32, addrs ...string) {
	t.Helper()
	obs := engine.Observation{Name: name, Client: netip.MustParseAddr("10.0.0.2"), MinTTL: ttl}
	for _, a := range addrs {
		obs.Addrs = append(obs.Addrs, netip.MustParseAddr(a))
	}
	eng.Observe(&obs)
}
