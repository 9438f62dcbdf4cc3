// Package engine is fluxguard's detection engine: observations of DNS answers
// go in, verdicts come out. It keeps per-name IP churn state over a sliding
// window in a sharded, size-capped store and scores each name with a scoring
// profile: the default one, or the seed rule's.
//
// The package has no CoreDNS import, so it can be tested and benchmarked with
// plain Go values and a fake clock.
package engine
