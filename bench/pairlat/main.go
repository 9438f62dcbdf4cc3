// Command pairlat measures two DNS servers' latency in pairs: one query in
// flight at a time, the same query to each in turn (which one goes first
// alternates), so that whatever else the machine does falls on both alike.
// It prints each one's percentiles and their ratios (b/a).
//
// bench/run.sh uses it for the per-query latency of CoreDNS with (b) and
// without (a) fluxguard. Under load, dnsperf's latencies at a fixed rate are
// ruled by the machine's stalls: on a busy 2-core VM two identical servers'
// p99 differ by up to 30%; with one query at a time a stall delays one query
// instead of a hundred, and the p99 is the servers' own.
//
//	pairlat -a 127.0.0.1:1053 -b 127.0.0.1:2053 -names hot.txt -n 20000 -out /tmp/lat
package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

func main() {
	var (
		a       = flag.String("a", "", "first server, host:port")
		b       = flag.String("b", "", "second server, host:port")
		names   = flag.String("names", "", `query file, one "name [type]" per line (dnsperf's format)`)
		n       = flag.Int("n", 10000, "queries to each server")
		timeout = flag.Duration("timeout", time.Second, "a query unanswered this long is lost")
		out     = flag.String("out", "", "append every answered query's latency (ms, one per line) to OUT.a and OUT.b")
	)
	flag.Parse()
	if err := run(*a, *b, *names, *n, *timeout, *out); err != nil {
		fmt.Fprintln(os.Stderr, "pairlat:", err)
		os.Exit(1)
	}
}

func run(a, b, names string, n int, timeout time.Duration, out string) error {
	if a == "" || b == "" || names == "" || n <= 0 {
		return errors.New("need -a, -b, -names and a positive -n")
	}
	queries, err := readQueries(names)
	if err != nil {
		return err
	}
	var conns [2]net.Conn
	for i, addr := range []string{a, b} {
		if conns[i], err = net.Dial("udp", addr); err != nil {
			return err
		}
		defer conns[i].Close()
	}
	var lat [2][]float64
	var lost [2]int
	buf := make([]byte, dns.MaxMsgSize)
	for k := range n {
		q := queries[k%len(queries)]
		for j := range 2 {
			i := (k + j) % 2 // alternate which server goes first
			binary.BigEndian.PutUint16(q, uint16(k))
			d, err := exchange(conns[i], q, buf, timeout)
			if err != nil {
				lost[i]++
				continue
			}
			lat[i] = append(lat[i], float64(d)/float64(time.Millisecond))
		}
	}
	var p [2][3]float64
	for i, name := range []string{"a", "b"} {
		slices.Sort(lat[i])
		p[i] = [3]float64{quantile(lat[i], 0.5), quantile(lat[i], 0.99), quantile(lat[i], 0.999)}
		fmt.Printf("%s answered %d lost %d p50 %.4f p99 %.4f p99.9 %.4f ms\n", name, len(lat[i]), lost[i], p[i][0], p[i][1], p[i][2])
		if out != "" {
			if err := appendLatencies(out+"."+name, lat[i]); err != nil {
				return err
			}
		}
	}
	fmt.Printf("ratio b/a p50 %.3f p99 %.3f p99.9 %.3f\n", p[1][0]/p[0][0], p[1][1]/p[0][1], p[1][2]/p[0][2])
	return nil
}

// exchange sends q and waits for the answer with its ID, skipping stale ones
// (answers to queries that timed out before).
func exchange(c net.Conn, q, buf []byte, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	if err := c.SetReadDeadline(start.Add(timeout)); err != nil {
		return 0, err
	}
	if _, err := c.Write(q); err != nil {
		return 0, err
	}
	for {
		n, err := c.Read(buf)
		if err != nil {
			return 0, err
		}
		if n >= 2 && buf[0] == q[0] && buf[1] == q[1] {
			return time.Since(start), nil
		}
	}
}

// readQueries packs one query per line of a dnsperf data file.
func readQueries(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var qs [][]byte
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		qtype := dns.TypeA
		if len(fields) > 1 {
			t, ok := dns.StringToType[strings.ToUpper(fields[1])]
			if !ok {
				return nil, fmt.Errorf("%s: unknown type %q", path, fields[1])
			}
			qtype = t
		}
		m := new(dns.Msg).SetQuestion(dns.Fqdn(fields[0]), qtype)
		q, err := m.Pack()
		if err != nil {
			return nil, fmt.Errorf("%s: %q: %w", path, fields[0], err)
		}
		qs = append(qs, q)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(qs) == 0 {
		return nil, fmt.Errorf("%s: no queries", path)
	}
	return qs, nil
}

// quantile is the nearest-rank quantile of sorted values.
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*q+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func appendLatencies(path string, lat []float64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for _, l := range lat {
		fmt.Fprintf(w, "%.4f\n", l)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
