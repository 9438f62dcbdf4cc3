//go:build race

package e2e

// raceEnabled tells that the test runs with -race.
const raceEnabled = true
