// Package testenv gives tests what they need from outside Go: the
// ip-location-db ASN tables and Debian's tools. scripts/test.sh provides
// them and sets FLUXGUARD_REQUIRE_DATA; without it, a test that lacks one
// is skipped, with it, it fails.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// ASNData returns the path of the ip-location-db ASN tables
// (FLUXGUARD_ASN_DATA).
func ASNData(t testing.TB) string {
	t.Helper()
	path := os.Getenv("FLUXGUARD_ASN_DATA")
	if path == "" {
		missing(t, "FLUXGUARD_ASN_DATA is not set (the ASN tables)")
	}
	return path
}

// Tool returns the path of the command name.
func Tool(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		missing(t, name+" is not installed")
	}
	return path
}

func missing(t testing.TB, what string) {
	t.Helper()
	if os.Getenv("FLUXGUARD_REQUIRE_DATA") != "" {
		t.Fatal(what + ": run scripts/test.sh, which provides it")
	}
	t.Skip(what + ": scripts/test.sh provides it and runs this test")
}
