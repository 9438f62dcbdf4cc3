package fluxguard

import (
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/fluxguard/fluxguard/internal/owner"
	"github.com/oschwald/geoip2-golang/v2"
)

// openASN opens the ASN database that asn_db names and returns its lookup
// for the engine: an address's autonomous system number, 0 when the
// database does not know it. The path chooses the format: a MaxMind
// GeoLite2-ASN-format .mmdb, an ip-location-db ASN table (.csv or .csv.gz),
// or a directory holding ip-location-db's asn-ipv4.csv and asn-ipv6.csv, as
// the npm package @ip-location-db/asn unpacks. A CSV table is read into
// memory, so its close does nothing.
func openASN(path string) (func(netip.Addr) uint32, func() error, error) {
	lower := strings.ToLower(path)
	switch {
	case strings.HasSuffix(lower, ".mmdb"):
		return openMMDB(path)
	case strings.HasSuffix(lower, ".csv"), strings.HasSuffix(lower, ".csv.gz"):
	default:
		fi, err := os.Stat(path)
		if err != nil {
			return nil, nil, err
		}
		if !fi.IsDir() {
			return nil, nil, fmt.Errorf("%s is neither a MaxMind .mmdb, an ip-location-db .csv or .csv.gz, nor a directory holding asn-ipv4.csv and asn-ipv6.csv", path)
		}
	}
	t, err := owner.Open(path)
	if err != nil {
		return nil, nil, err
	}
	return t.Lookup, func() error { return nil }, nil
}

// openMMDB opens a MaxMind GeoLite2-ASN-format database.
func openMMDB(path string) (func(netip.Addr) uint32, func() error, error) {
	db, err := geoip2.Open(path)
	if err != nil {
		return nil, nil, err
	}
	if _, err := db.ASN(netip.IPv4Unspecified()); err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("%s is not an ASN database: %w", path, err)
	}
	lookup := func(a netip.Addr) uint32 {
		r, err := db.ASN(a)
		if err != nil {
			return 0
		}
		return uint32(r.AutonomousSystemNumber)
	}
	return lookup, db.Close, nil
}
