package fluxguard

import (
	"fmt"
	"net/netip"

	"github.com/oschwald/geoip2-golang/v2"
)

// openASN opens a MaxMind GeoLite2-ASN-format database and returns its
// lookup for the engine: an address's autonomous system number, 0 when
// the database does not know it.
func openASN(path string) (func(netip.Addr) uint32, func() error, error) {
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
