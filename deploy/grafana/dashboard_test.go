// Package grafana holds fluxguard's Grafana dashboard. Its test parses every
// query of the dashboard and of the alerting rules with Prometheus's own
// PromQL parser, and checks that they read only the metrics fluxguard
// exports (deploy/fluxguard-metrics.txt, which the plugin's tests keep in
// step with the code). It is a module of its own, so that the plugin does
// not depend on Prometheus's server code.
package grafana

import (
	"encoding/json"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

// coreDNSMetrics are CoreDNS's own metrics the alerting rules may read.
var coreDNSMetrics = []string{"coredns_dns_requests_total"}

// exported returns the metrics fluxguard exports, and those of extra.
func exported(t *testing.T, extra ...string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("../fluxguard-metrics.txt")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, n := range append(strings.Fields(string(b)), extra...) {
		names[n] = true
	}
	return names
}

// grafanaVariables are the dashboard's variables and Grafana's own, as
// they can appear in a query, with a value that parses in their place.
var grafanaVariables = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

// checkQuery parses expr and reports a metric it reads that is not in names.
func checkQuery(t *testing.T, where, expr string, names map[string]bool) {
	t.Helper()
	e, err := parser.NewParser(parser.Options{}).ParseExpr(grafanaVariables.Replace(expr))
	if err != nil {
		t.Errorf("%s: %q does not parse: %v", where, expr, err)
		return
	}
	read := 0
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			read++
			if !names[vs.Name] {
				t.Errorf("%s: %q reads %s, which is not exported", where, expr, vs.Name)
			}
		}
		return nil
	})
	if read == 0 {
		t.Errorf("%s: %q reads no metric", where, expr)
	}
}

// labelValues is Grafana's label_values(METRIC, LABEL) variable query.
var labelValues = regexp.MustCompile(`^label_values\((.+),\s*\w+\)$`)

func TestDashboard(t *testing.T) {
	b, err := os.ReadFile("fluxguard-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	names := exported(t)
	queries := 0
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			checkQuery(t, "panel "+p.Title, tg.Expr, names)
			queries++
		}
	}
	server := false
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(map[string]any)
		m := labelValues.FindStringSubmatch(q["query"].(string))
		if m == nil {
			t.Errorf("variable %s: %v is not label_values(METRIC, LABEL)", v.Name, v.Query)
			continue
		}
		checkQuery(t, "variable "+v.Name, m[1], names)
		server = server || v.Name == "server"
	}
	if !server {
		t.Error("no server variable")
	}
	if queries < 7 {
		t.Errorf("%d queries, want the dashboard's 7 panels' at least", queries)
	}
}

func TestRules(t *testing.T) {
	groups, errs := rulefmt.ParseFile("../prometheus/fluxguard-rules.yml", false, model.UTF8Validation,
		parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	names := exported(t, coreDNSMetrics...)
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			checkQuery(t, "alert "+r.Alert, r.Expr, names)
		}
	}
}
