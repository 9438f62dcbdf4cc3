package fluxguard

import (
	"context"
	"strconv"

	"github.com/coredns/coredns/plugin/metadata"

	"github.com/fluxguard/fluxguard/plugin/engine"
)

// Metadata labels set for every inspected A/AAAA answer. They need the
// metadata plugin in the server block; without it setting them is a no-op.
const (
	metaLevel   = pluginName + "/level"
	metaScore   = pluginName + "/score"
	metaReasons = pluginName + "/reasons"
)

// setMetadata publishes v for the plugins that read metadata after the
// chain returns, such as log. For a name that is not tracked the level is
// why: "allowed", "excluded" or "no_public_addrs".
func setMetadata(ctx context.Context, v engine.Verdict) {
	level := v.Level.String()
	if v.Skip != engine.SkipNone {
		level = v.Skip.String()
	}
	if !metadata.SetValueFunc(ctx, metaLevel, func() string { return level }) {
		return // no metadata plugin
	}
	metadata.SetValueFunc(ctx, metaScore, func() string { return strconv.Itoa(v.Score) })
	metadata.SetValueFunc(ctx, metaReasons, func() string { return v.Reasons.String() })
}
