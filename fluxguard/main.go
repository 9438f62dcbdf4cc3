// Command fluxguard is a complete CoreDNS binary, with every standard
// plugin, and the fluxguard plugin placed immediately before cache in the
// plugin chain.
package main

import (
	"fmt"
	"os"
	"slices"

	"github.com/coredns/coredns/core/dnsserver"
	_ "github.com/coredns/coredns/core/plugin" // all standard plugins
	"github.com/coredns/coredns/coremain"

	_ "github.com/fluxguard/fluxguard" // registers the fluxguard plugin
)

func main() {
	d, err := insertBefore(dnsserver.Directives, "fluxguard", "cache")
	if err != nil {
		fmt.Fprintln(os.Stderr, "fluxguard:", err)
		os.Exit(1)
	}
	dnsserver.Directives = d
	coremain.Run()
}

// insertBefore returns directives with name placed immediately before
// anchor. The chain runs in this order, so fluxguard sees every answer,
// cache hits included, and its replies bypass cache.
func insertBefore(directives []string, name, anchor string) ([]string, error) {
	if slices.Contains(directives, name) {
		return nil, fmt.Errorf("directive %q is already in the plugin list", name)
	}
	i := slices.Index(directives, anchor)
	if i < 0 {
		return nil, fmt.Errorf("directive %q not found in the plugin list; fluxguard must run before it", anchor)
	}
	return slices.Insert(slices.Clone(directives), i, name), nil
}
