package fluxguard

import (
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coredns/coredns/plugin/transfer"
	"github.com/miekg/dns"

	"github.com/fluxguard/fluxguard/internal/engine"
)

// rpzConfig is the rpz option: the Response Policy Zone of the held names,
// which CoreDNS's transfer plugin serves to other resolvers.
type rpzConfig struct {
	zone    string        // origin, lower case, fully qualified
	max     int           // most entries in the zone: held names (or domains, rules), then addresses
	refresh time.Duration // the SOA's refresh; NOTIFY tells secondaries sooner
	ip      bool          // the held names' addresses become rpz-ip triggers too
}

// Defaults of the rpz option.
const (
	defaultRPZMax     = 10000
	defaultRPZRefresh = time.Minute
)

// RPZ timers and bounds the option does not set.
const (
	rpzRetry    = 10              // seconds, the SOA's retry
	rpzExpire   = 7 * 24 * 3600   // seconds, the SOA's expire: secondaries keep enforcing through an outage
	rpzJournal  = 64              // most differences kept for IXFR
	rpzBatch    = 500             // records per message of a transfer
	rpzUpdate   = time.Second     // how often the zone is compared with the held names
	rpzMname    = "localhost."    // the SOA's MNAME and the NS target, as RPZ zones customarily have
	rpzNXDOMAIN = "."             // the CNAME target of an NXDOMAIN trigger
	rpzPassthru = "rpz-passthru." // the CNAME target of an exception
)

// rpzZone is the zone's content, serial and the journal of its last
// differences. It is safe for concurrent use.
//
// The serial is the second of the zone's last change: a change waits
// for the clock to pass the serial (the zone is compared with the held
// names every second anyway). A new zone's serial is its start's second,
// and its first content comes at once, a second past it at most, and is
// not journaled; so is a change of its timers (configure). So the zone of
// a restarted process gets a serial past any its predecessor served
// (unless the predecessor lived less than a second), and a secondary
// holding the predecessor's last serial gets the whole zone, not
// differences from content it never had.
type rpzZone struct {
	origin  string
	ttl     uint32 // of the triggers and the SOA's minimum: sinkhole_ttl
	refresh uint32

	mu      sync.RWMutex
	serial  uint32
	records map[string]string // owner name → CNAME target
	journal []rpzDiff         // oldest first; consecutive
	changes int               // records in the journal
	fresh   bool              // not updated yet: its first content comes at once, unjournaled
	retimed bool              // its timers changed: the next update advances the serial, unjournaled

	filled atomic.Bool // the allow exceptions fill max: said in the log when it starts
}

// rpzDiff is the difference that took the zone from one serial to the
// next: the records deleted and added (owner name → CNAME target).
type rpzDiff struct {
	from, to uint32
	del, add map[string]string
}

// newRPZZone returns an empty zone whose serial is now's second.
func newRPZZone(c rpzConfig, ttl uint32, now time.Time) *rpzZone {
	return &rpzZone{origin: c.zone, ttl: ttl, refresh: uint32(c.refresh / time.Second),
		serial: uint32(now.Unix()), records: map[string]string{}, fresh: true}
}

// configure gives the zone c's refresh and ttl, the triggers' TTL and the
// SOA's minimum, after a reload that kept it. When they change, the next
// update advances the serial and drops the journal: the differences it
// holds would not carry the new TTL, so secondaries transfer the whole
// zone.
func (z *rpzZone) configure(c rpzConfig, ttl uint32) {
	refresh := uint32(c.refresh / time.Second)
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.ttl != ttl || z.refresh != refresh {
		z.ttl, z.refresh, z.retimed = ttl, refresh, true
	}
}

// rpzOwner reports whether owner can own a record: a name of at most 255
// octets on the wire (an escape such as \DDD is one), measured by packing
// it, since dns.IsDomainName lets names of up to 257 pass.
func rpzOwner(owner string) bool {
	var wire [256]byte
	n, err := dns.PackDomainName(owner, wire[:], 0, nil, false)
	return err == nil && n <= 255
}

// rpzTriggers turns the held names into the zone's records, at most c.max
// entries (an entry is a held name, with its wildcard for a registered
// domain or rule, or an address). The allow exceptions go in first, as
// rpz-passthru, so that a full zone never turns an allow into a block.
// Then the held names, newest first: "name.ZONE CNAME ." answers NXDOMAIN;
// a registered domain or deny rule adds "*.name.ZONE". With c.ip, the
// addresses of the held exact names, read with addrsOf (see
// engine.AppendAddrs), become rpz-ip triggers in the room left, but for
// the non-public ones and those frontDoor reports: a flux name must not
// get a popular address blocked by answering it. It also returns how many
// entries max left out, each address once, addresses counted up to max.
func rpzTriggers(held []engine.HeldName, c rpzConfig, frontDoor func(netip.Addr) bool,
	addrsOf func(buf []netip.Addr, name string) []netip.Addr) (map[string]string, int) {
	out := make(map[string]string, min(len(held), c.max)*2)
	n, leftOut := 0, 0
	add := func(h engine.HeldName, target string) {
		owner := h.Name + "." + c.zone
		switch {
		case !rpzOwner(owner): // too long with the origin: no trigger can say it
		case n >= c.max:
			leftOut++
		default:
			out[owner] = target
			if h.Subdomains && rpzOwner("*."+owner) {
				out["*."+owner] = target
			}
			n++
		}
	}
	for _, h := range held {
		if h.Allowed {
			add(h, rpzPassthru)
		}
	}
	for _, h := range held {
		if !h.Allowed {
			add(h, rpzNXDOMAIN)
		}
	}
	if !c.ip {
		return out, leftOut
	}
	seen := map[netip.Addr]struct{}{} // at most twice max, and a name's list
	var buf []netip.Addr
	for i, addrsLeftOut := 0, 0; i < len(held) && addrsLeftOut < c.max; i++ {
		if h := held[i]; h.Subdomains || h.Allowed {
			continue // their addresses are other names'
		}
		buf = addrsOf(buf[:0], held[i].Name)
		for _, a := range buf {
			a = a.Unmap()
			if _, dup := seen[a]; dup || !engine.IsPublic(a) || frontDoor != nil && frontDoor(a) {
				continue
			}
			seen[a] = struct{}{}
			if n >= c.max {
				leftOut++
				addrsLeftOut++
				continue
			}
			out[rpzIP(a)+".rpz-ip."+c.zone] = rpzNXDOMAIN
			n++
		}
	}
	return out, leftOut
}

// rpzIP encodes a as the labels of an rpz-ip trigger for it alone, as
// BIND writes them: "32.d.c.b.a" for IPv4 a.b.c.d (IPv4-mapped too); for
// IPv6 "128." and the eight groups in reverse, in hexadecimal, with "zz"
// for the leftmost longest run of two or more zero groups, where RFC 5952
// writes "::".
func rpzIP(a netip.Addr) string {
	if a = a.Unmap(); a.Is4() {
		b := a.As4()
		return "32." + strconv.Itoa(int(b[3])) + "." + strconv.Itoa(int(b[2])) + "." +
			strconv.Itoa(int(b[1])) + "." + strconv.Itoa(int(b[0]))
	}
	b := a.As16()
	var g [8]uint16
	for i := range g {
		g[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
	}
	zero, run := -1, 1 // the run's first group and length
	for i := 0; i < len(g); i++ {
		j := i
		for j < len(g) && g[j] == 0 {
			j++
		}
		if j-i > run {
			zero, run = i, j-i
		}
		i = max(i, j)
	}
	labels := []string{"128"}
	for i := len(g) - 1; i >= 0; i-- {
		if zero >= 0 && i == zero+run-1 {
			labels = append(labels, "zz")
			i = zero
			continue
		}
		labels = append(labels, strconv.FormatUint(uint64(g[i]), 16))
	}
	return strings.Join(labels, ".")
}

// update makes next the zone's content, unless the serial is now's
// second already (see rpzZone). When it differs, it advances the serial,
// journals the difference and returns true.
func (z *rpzZone) update(next map[string]string, now time.Time) bool {
	d := rpzDiff{del: map[string]string{}, add: map[string]string{}}
	z.mu.Lock()
	defer z.mu.Unlock()
	second := uint32(now.Unix())
	switch {
	case z.fresh:
		second = max(z.serial+1, second)
	case !serialBefore(z.serial, second): // the serial is the clock's second, or ahead
		if z.serial-second <= 1 {
			return false // the first content's serial may be one ahead
		}
		second = z.serial + 1 // the clock stepped back: the serial goes on
	}
	for owner, target := range z.records {
		if next[owner] != target {
			d.del[owner] = target
		}
	}
	for owner, target := range next {
		if z.records[owner] != target {
			d.add[owner] = target
		}
	}
	if len(d.del) == 0 && len(d.add) == 0 && !z.retimed && !z.fresh {
		return false
	}
	d.from, d.to = z.serial, second
	z.serial, z.records = d.to, next
	if z.fresh || z.retimed {
		z.fresh, z.retimed = false, false
		z.journal, z.changes = nil, 0
		return true
	}
	z.journal = append(z.journal, d)
	z.changes += len(d.del) + len(d.add)
	// Past the journal's bounds, or once the differences outweigh the
	// zone, a full transfer is the better answer.
	for len(z.journal) > rpzJournal || len(z.journal) > 1 && z.changes > max(len(z.records), rpzBatch) {
		z.changes -= len(z.journal[0].del) + len(z.journal[0].add)
		z.journal = z.journal[1:]
	}
	return true
}

// size returns the zone's serial and number of triggers.
func (z *rpzZone) size() (serial uint32, records int) {
	z.mu.RLock()
	defer z.mu.RUnlock()
	return z.serial, len(z.records)
}

func (z *rpzZone) soa(serial uint32) *dns.SOA {
	return &dns.SOA{Hdr: dns.RR_Header{Name: z.origin, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: z.ttl},
		Ns: rpzMname, Mbox: "hostmaster." + z.origin, Serial: serial,
		Refresh: z.refresh, Retry: rpzRetry, Expire: rpzExpire, Minttl: z.ttl}
}

func (z *rpzZone) ns() *dns.NS {
	return &dns.NS{Hdr: dns.RR_Header{Name: z.origin, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: z.ttl}, Ns: rpzMname}
}

func (z *rpzZone) cname(owner, target string) *dns.CNAME {
	return &dns.CNAME{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: z.ttl}, Target: target}
}

// cnames renders records sorted by owner name.
func (z *rpzZone) cnames(records map[string]string) []dns.RR {
	owners := make([]string, 0, len(records))
	for o := range records {
		owners = append(owners, o)
	}
	sort.Strings(owners)
	rrs := make([]dns.RR, len(owners))
	for i, o := range owners {
		rrs[i] = z.cname(o, records[o])
	}
	return rrs
}

// transferRecords returns what a transfer from serial (0 for AXFR) sends, as the
// transfer plugin's Transferer contract asks: the SOA alone when serial is
// current, the differences since serial (IXFR, RFC 1995) when the journal
// has them, else the whole zone between two SOAs (AXFR, and IXFR's
// fallback).
func (z *rpzZone) transferRecords(serial uint32) []dns.RR {
	z.mu.RLock()
	defer z.mu.RUnlock()
	cur := z.soa(z.serial)
	if serial != 0 && !serialBefore(serial, z.serial) {
		return []dns.RR{cur}
	}
	if serial != 0 {
		for i, d := range z.journal {
			if d.from != serial {
				continue
			}
			rrs := []dns.RR{cur}
			for _, d := range z.journal[i:] {
				rrs = append(rrs, z.soa(d.from))
				rrs = append(rrs, z.cnames(d.del)...)
				rrs = append(rrs, z.soa(d.to))
				rrs = append(rrs, z.cnames(d.add)...)
			}
			return append(rrs, cur)
		}
	}
	rrs := append([]dns.RR{cur, z.ns()}, z.cnames(z.records)...)
	return append(rrs, cur)
}

// serialBefore reports whether serial a comes before b (RFC 1982).
func serialBefore(a, b uint32) bool { return a != b && b-a < 1<<31 }

// transfer implements transfer.Transferer for the zone.
func (z *rpzZone) transfer(zone string, serial uint32) (<-chan []dns.RR, error) {
	if !strings.EqualFold(dns.Fqdn(zone), z.origin) {
		return nil, transfer.ErrNotAuthoritative
	}
	rrs := z.transferRecords(serial)
	ch := make(chan []dns.RR, (len(rrs)+rpzBatch-1)/rpzBatch)
	for len(rrs) > 0 {
		n := min(len(rrs), rpzBatch)
		ch <- rrs[:n]
		rrs = rrs[n:]
	}
	close(ch)
	return ch, nil
}

// contains reports whether name lies in the zone.
func (z *rpzZone) contains(name string) bool {
	n, o := len(name), len(z.origin)
	return n >= o && strings.EqualFold(name[n-o:], z.origin) && (n == o || name[n-o-1] == '.')
}

// answer answers a query for a name in the zone, as its primary: the SOA
// and NS at the apex, which secondaries ask after a NOTIFY and on refresh,
// and the triggers. Zone transfers are the transfer plugin's. It reports
// whether r was one to answer.
func (z *rpzZone) answer(w dns.ResponseWriter, r *dns.Msg) bool {
	if r.Opcode != dns.OpcodeQuery || len(r.Question) != 1 {
		return false
	}
	q := r.Question[0]
	if q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR || !z.contains(q.Name) {
		return false
	}
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	name := strings.ToLower(q.Name)
	z.mu.RLock()
	soa := z.soa(z.serial)
	switch target, found := z.lookup(name); {
	case name == z.origin && q.Qtype == dns.TypeSOA:
		m.Answer = []dns.RR{soa}
	case name == z.origin && q.Qtype == dns.TypeNS:
		m.Answer = []dns.RR{z.ns()}
	case name == z.origin:
		m.Ns = []dns.RR{soa}
	case found:
		m.Answer = []dns.RR{z.cname(q.Name, target)}
	default:
		m.Rcode = dns.RcodeNameError
		m.Ns = []dns.RR{soa}
	}
	z.mu.RUnlock()
	if err := w.WriteMsg(m); err != nil {
		log.Debugf("writing the rpz answer for %s: %v", q.Name, err)
	}
	return true
}

// lookup finds the trigger for name, below the apex: its own, or the
// wildcard of its closest ancestor that has one. Call with z.mu held.
func (z *rpzZone) lookup(name string) (string, bool) {
	if target, ok := z.records[name]; ok {
		return target, true
	}
	for parent := name; ; {
		i := strings.IndexByte(parent, '.')
		if i < 0 || len(parent[i+1:]) <= len(z.origin) {
			return "", false
		}
		parent = parent[i+1:]
		if target, ok := z.records["*."+parent]; ok {
			return target, true
		}
		if _, ok := z.records[parent]; ok {
			return "", false // an existing name stops the wildcard above it
		}
	}
}

// Transfer implements transfer.Transferer: CoreDNS's transfer plugin
// serves the rpz zone by AXFR and IXFR with it.
func (f *Fluxguard) Transfer(zone string, serial uint32) (<-chan []dns.RR, error) {
	if f.rpz == nil {
		return nil, transfer.ErrNotAuthoritative
	}
	ch, err := f.rpz.transfer(zone, serial)
	if err == nil {
		if serial == 0 {
			f.rpzMetrics.axfr.Inc()
		} else {
			f.rpzMetrics.ixfr.Inc()
		}
	}
	return ch, err
}

// runRPZ brings the zone up to date with the engine's held names every
// rpzUpdate, and has the transfer plugin send NOTIFY when it changes,
// until done is closed.
func (f *Fluxguard) runRPZ(done <-chan struct{}) {
	notify := make(chan struct{}, 1)
	go f.notifyRPZ(done, notify)
	t := time.NewTicker(rpzUpdate)
	defer t.Stop()
	for first := true; ; first = false {
		if f.updateRPZ(time.Now()) || first {
			select {
			case notify <- struct{}{}:
			default: // one is pending: it will tell of this change too
			}
		}
		select {
		case <-done:
			return
		case <-t.C:
		}
	}
}

// updateRPZ brings the zone up to date with the engine's held names, sets
// its gauges, and reports whether it changed.
func (f *Fluxguard) updateRPZ(now time.Time) bool {
	records, leftOut := f.rpzRecords()
	changed := f.rpz.update(records, now)
	serial, n := f.rpz.size()
	f.rpzMetrics.serial.Set(float64(serial))
	f.rpzMetrics.records.Set(float64(n))
	f.rpzMetrics.leftOut.Set(float64(leftOut))
	return changed
}

// rpzRecords returns what the zone should hold now, and how many entries
// its max leaves out.
func (f *Fluxguard) rpzRecords() (map[string]string, int) {
	held := f.eng.HeldNames(f.cfg.rpz.ip)
	exceptions := 0
	for _, h := range held {
		if h.Allowed {
			exceptions++
		}
	}
	filled := exceptions >= f.cfg.rpz.max && exceptions < len(held)
	if f.rpz.filled.Swap(filled) != filled && filled {
		log.Warningf("rpz %s: the %d allow exceptions fill its max (%d): it blocks nothing; raise max", f.rpz.origin, exceptions, f.cfg.rpz.max)
	}
	return rpzTriggers(held, *f.cfg.rpz, f.eng.Config().FrontDoor, f.eng.AppendAddrs)
}

// notifyRPZ sends the NOTIFY runRPZ asks for, one at a time: a secondary
// that does not answer delays the next, never the zone's updates.
func (f *Fluxguard) notifyRPZ(done <-chan struct{}, notify <-chan struct{}) {
	for {
		select {
		case <-done:
			return
		case <-notify:
		}
		if f.xfer != nil {
			if err := f.xfer.Notify(f.rpz.origin); err != nil {
				log.Warningf("rpz %s: %v", f.rpz.origin, err)
			}
		}
	}
}
