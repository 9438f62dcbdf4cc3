package fluxguard

import (
	"fmt"
	"slices"
)

// InsertDirective returns directives (CoreDNS's plugin order, as in
// dnsserver.Directives) with fluxguard placed immediately before cache, so
// that it sees every answer, cache hits included, and its own replies are
// not cached. It fails when cache is missing or fluxguard is already there.
func InsertDirective(directives []string) ([]string, error) {
	const anchor = "cache"
	if slices.Contains(directives, pluginName) {
		return nil, fmt.Errorf("directive %q is already in the plugin list", pluginName)
	}
	i := slices.Index(directives, anchor)
	if i < 0 {
		return nil, fmt.Errorf("directive %q not found in the plugin list; %s must run before it", anchor, pluginName)
	}
	return slices.Insert(slices.Clone(directives), i, pluginName), nil
}
