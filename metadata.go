package fluxguard

import (
	"context"
	"strconv"

	"github.com/coredns/coredns/plugin/metadata"
	"github.com/coredns/coredns/request"

	"github.com/fluxguard/fluxguard/internal/engine"
)

// Metadata labels, set for every inspected A/AAAA answer. They need the
// metadata plugin in the server block.
const (
	metaLevel   = pluginName + "/level"
	metaScore   = pluginName + "/score"
	metaReasons = pluginName + "/reasons"
)

// verdictMeta carries one request's verdict to the metadata functions,
// which plugins such as log evaluate after the chain returns.
type verdictMeta struct {
	v   engine.Verdict
	set bool
}

type verdictMetaKey struct{}

// Metadata implements metadata.Provider. The metadata plugin calls it
// before the chain runs; without that plugin fluxguard costs nothing here.
func (f *Fluxguard) Metadata(ctx context.Context, _ request.Request) context.Context {
	if !f.labelsWanted.Load() { // a store on every query would bounce the cache line between cores
		f.labelsWanted.Store(true)
	}
	vm := &verdictMeta{}
	metadata.SetValueFunc(ctx, metaLevel, vm.level)
	metadata.SetValueFunc(ctx, metaScore, vm.score)
	metadata.SetValueFunc(ctx, metaReasons, vm.reasons)
	return context.WithValue(ctx, verdictMetaKey{}, vm)
}

// setMetadata records v for the metadata functions of ctx's request. It
// looks for them only once the metadata plugin has asked for them: the
// look-up walks the whole context.
func (f *Fluxguard) setMetadata(ctx context.Context, v engine.Verdict) {
	if !f.labelsWanted.Load() {
		return
	}
	if vm, ok := ctx.Value(verdictMetaKey{}).(*verdictMeta); ok {
		vm.v, vm.set = v, true
	}
}

// unset is what the labels read for requests fluxguard did not inspect,
// as the log plugin prints an absent label.
const unset = "-"

// level is the verdict's level or, for a name that is not tracked, why:
// "allowed", "excluded" or "no_public_addrs".
func (vm *verdictMeta) level() string {
	switch {
	case !vm.set:
		return unset
	case vm.v.Skip != engine.SkipNone:
		return vm.v.Skip.String()
	}
	return vm.v.Level.String()
}

func (vm *verdictMeta) score() string {
	if !vm.set || vm.v.Skip != engine.SkipNone {
		return unset
	}
	return strconv.FormatFloat(vm.v.Score, 'g', -1, 64)
}

func (vm *verdictMeta) reasons() string {
	if !vm.set || vm.v.Skip != engine.SkipNone || vm.v.Reasons == 0 {
		return unset
	}
	return vm.v.Reasons.String()
}
