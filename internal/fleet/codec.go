package fleet

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/fluxguard/fluxguard/internal/engine"
)

// A batch is text, one line per name, readable with redis-cli:
//
//	NAME HELD_UNTIL QUERIES MIN_TTL ADDRS CLIENTS
//
// NAME is an exact name or "*." and a registered domain; HELD_UNTIL the
// end of its hold in unix seconds, 0 for none; ADDRS and CLIENTS
// comma-separated addresses, "-" for none.

// Bounds on what a batch may hold; a line past them is invalid, a batch
// past maxBatchBytes is cut at the last line that fits.
const (
	maxBatchBytes = 1 << 20
	maxList       = 64
	maxQueries    = 1 << 24
	maxHoldAhead  = engine.MaxHold + time.Hour // the hour for the replicas' clocks
)

// encode appends the lines of names to buf, up to maxBatchBytes, and
// returns the buffer and how many names it took.
func encode(buf []byte, names []engine.Shared) ([]byte, int) {
	for i, s := range names {
		start := len(buf)
		buf = append(buf, s.Name...)
		buf = append(buf, ' ')
		held := int64(0)
		if !s.HeldUntil.IsZero() {
			held = s.HeldUntil.Unix()
		}
		buf = strconv.AppendInt(buf, held, 10)
		buf = append(buf, ' ')
		buf = strconv.AppendUint(buf, uint64(s.Queries), 10)
		buf = append(buf, ' ')
		buf = strconv.AppendUint(buf, uint64(s.MinTTL), 10)
		buf = appendList(append(buf, ' '), s.Addrs)
		buf = appendList(append(buf, ' '), s.Clients)
		buf = append(buf, '\n')
		if len(buf) > maxBatchBytes {
			return buf[:start], i
		}
	}
	return buf, len(names)
}

func appendList(buf []byte, list []netip.Addr) []byte {
	if len(list) == 0 {
		return append(buf, '-')
	}
	for i, a := range list[:min(len(list), maxList)] {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = a.AppendTo(buf)
	}
	return buf
}

// errLine is decode's error for a line it refuses.
var errLine = errors.New("malformed line")

// decode reads a batch, calling f for each valid line, and returns how
// many lines it refused. Everything in it came from the network: sizes,
// names and addresses are checked, and a bad line never stops the rest.
func decode(batch string, now time.Time, f func(*engine.Shared)) (invalid int) {
	if len(batch) > maxBatchBytes {
		return 1
	}
	for line := range strings.Lines(batch) {
		s, err := decodeLine(strings.TrimSuffix(line, "\n"), now)
		if err != nil {
			invalid++
			continue
		}
		f(&s)
	}
	return invalid
}

func decodeLine(line string, now time.Time) (engine.Shared, error) {
	var s engine.Shared
	fields := strings.Fields(line)
	if len(fields) != 6 {
		return s, errLine
	}
	name, err := decodeName(fields[0])
	if err != nil {
		return s, err
	}
	held, err1 := strconv.ParseInt(fields[1], 10, 64)
	queries, err2 := strconv.ParseUint(fields[2], 10, 32)
	ttl, err3 := strconv.ParseUint(fields[3], 10, 32)
	switch {
	case err1 != nil || err2 != nil || err3 != nil:
		return s, errLine
	case held < 0 || held > now.Add(maxHoldAhead).Unix() || queries > maxQueries:
		return s, fmt.Errorf("%w: out of range", errLine)
	}
	s.Name, s.Queries, s.MinTTL = name, uint32(queries), uint32(ttl)
	if held > 0 {
		s.HeldUntil = time.Unix(held, 0)
	}
	if s.Addrs, err = decodeList(fields[4]); err != nil {
		return s, err
	}
	if s.Clients, err = decodeList(fields[5]); err != nil {
		return s, err
	}
	return s, nil
}

// decodeName checks a shared name: a DNS name of lower-case letters,
// digits, hyphens and underscores, without the root's dot, or "*." and
// one. (A name with other bytes, escaped in text, is not shared.)
func decodeName(name string) (string, error) {
	bare := strings.TrimPrefix(name, "*.")
	if _, ok := dns.IsDomainName(bare); !ok || bare == "" || strings.Trim(bare, nameBytes) != "" ||
		strings.HasPrefix(bare, ".") || strings.HasSuffix(bare, ".") {
		return "", fmt.Errorf("%w: bad name", errLine)
	}
	return name, nil
}

const nameBytes = "abcdefghijklmnopqrstuvwxyz0123456789-_."

func decodeList(field string) ([]netip.Addr, error) {
	if field == "-" {
		return nil, nil
	}
	if strings.Count(field, ",") >= maxList {
		return nil, fmt.Errorf("%w: list too long", errLine)
	}
	var out []netip.Addr
	for a := range strings.SplitSeq(field, ",") {
		ip, err := netip.ParseAddr(a)
		if err != nil || ip.Zone() != "" {
			return nil, fmt.Errorf("%w: bad address", errLine)
		}
		out = append(out, ip)
	}
	return out, nil
}
