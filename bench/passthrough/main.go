// Command passthrough is CoreDNS with every standard plugin and one more,
// passthrough, placed where fluxguard goes (immediately before cache),
// which only calls the next plugin. bench/run.sh runs it for
// PLUGIN=passthrough: what any plugin in fluxguard's place costs a query
// before it does anything.
package main

import (
	"context"
	"fmt"
	"os"
	"slices"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	_ "github.com/coredns/coredns/core/plugin" // all standard plugins
	"github.com/coredns/coredns/coremain"
	"github.com/coredns/coredns/plugin"
	"github.com/miekg/dns"

	"github.com/fluxguard/fluxguard"
)

const pluginName = "passthrough"

// passthrough calls the next plugin, as fluxguard does for a query it
// does not inspect.
type passthrough struct{ next plugin.Handler }

// ServeDNS implements plugin.Handler.
func (p passthrough) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	return p.next.ServeDNS(ctx, w, r)
}

// Name implements plugin.Handler.
func (passthrough) Name() string { return pluginName }

// setup parses "passthrough", which takes no arguments and no block.
func setup(c *caddy.Controller) error {
	c.Next()
	if c.NextArg() || c.NextBlock() {
		return plugin.Error(pluginName, c.ArgErr())
	}
	dnsserver.GetConfig(c).AddPlugin(func(next plugin.Handler) plugin.Handler { return passthrough{next} })
	return nil
}

// inFluxguardsPlace returns directives with passthrough where
// fluxguard.InsertDirective puts fluxguard.
func inFluxguardsPlace(directives []string) ([]string, error) {
	d, err := fluxguard.InsertDirective(directives)
	if err != nil {
		return nil, err
	}
	d[slices.Index(d, "fluxguard")] = pluginName
	return d, nil
}

func main() {
	d, err := inFluxguardsPlace(dnsserver.Directives)
	if err != nil {
		fmt.Fprintln(os.Stderr, "passthrough:", err)
		os.Exit(1)
	}
	dnsserver.Directives = d
	plugin.Register(pluginName, setup)
	coremain.Run()
}
