// Command coredns-fluxguard is a complete CoreDNS binary, with every standard
// plugin, and the fluxguard plugin placed immediately before cache in the
// plugin chain.
package main

import (
	"fmt"
	"os"

	"github.com/coredns/coredns/core/dnsserver"
	_ "github.com/coredns/coredns/core/plugin" // all standard plugins
	"github.com/coredns/coredns/coremain"

	"github.com/fluxguard/fluxguard"
)

func main() {
	d, err := fluxguard.InsertDirective(dnsserver.Directives)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fluxguard:", err)
		os.Exit(1)
	}
	dnsserver.Directives = d
	coremain.Run()
}
