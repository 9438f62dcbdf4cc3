//go:build !race

package main

// raceEnabled tells that the test runs with -race.
const raceEnabled = false
