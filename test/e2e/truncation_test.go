package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestTruncatedForTheClient asks, as a stub resolver without EDNS0 does,
// for an answer too large for 512 bytes: the server truncates it over UDP
// and the client asks again over TCP. Each lookup is one query: the
// truncated answer counts for nothing.
func TestTruncatedForTheClient(t *testing.T) {
	addr, reportAddr := freeAddr(t), freeAddr(t)
	startCoreDNS(t, fmt.Sprintf(`
%[1]s {
    bind 127.0.0.1
    fluxguard {
        report %[2]s
    }
    template IN A big.top {
%[3]s    }
}
`, zoneAt(addr), reportAddr, bigAnswers()))
	const lookups = 4
	for range lookups {
		r := query(t, "udp", addr, "x.big.top.", dns.TypeA, false)
		if !r.Truncated {
			t.Fatalf("want TC=1 over UDP:\n%s", r)
		}
		if r = query(t, "tcp", addr, "x.big.top.", dns.TypeA, false); r.Truncated || len(r.Answer) != 80 {
			t.Fatalf("want the whole answer over TCP:\n%s", r)
		}
	}
	if n := settledQueries(t, reportAddr, "x.big.top", lookups); n != lookups {
		t.Errorf("x.big.top: %d queries counted (-1: not reported) for %d lookups, each a truncated UDP answer and its TCP retry", n, lookups)
	}
}

// settledQueries returns the QueryCount of name in the report served on
// reportAddr once monitor mode's batches have been observed: once it has
// reached want, or five seconds have passed, and a few batches later, so
// that a count past want shows too.
func settledQueries(t *testing.T, reportAddr, name string, want int) int {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); reportedQueries(t, reportAddr, name) < want && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	return reportedQueries(t, reportAddr, name)
}

// reportedQueries returns the QueryCount of name in the report served on
// reportAddr, -1 when the report does not list it.
func reportedQueries(t *testing.T, reportAddr, name string) int {
	t.Helper()
	var rows []struct {
		DomainName string
		QueryCount int
	}
	body := httpGet(t, "http://"+reportAddr+"/report")
	if err := json.Unmarshal([]byte(body), &rows); err != nil {
		t.Fatalf("report: %v\n%s", err, body)
	}
	for _, row := range rows {
		if row.DomainName == name {
			return row.QueryCount
		}
	}
	return -1
}

// TestTruncatedButSigned asks for an answer over 512 bytes with TSIG: the
// tsig plugin takes the TSIG record off the request before the rest of the
// chain and signs the answer, which the server never truncates; the client
// gets it whole over UDP, and each lookup counts.
func TestTruncatedButSigned(t *testing.T) {
	addr, reportAddr := freeAddr(t), freeAddr(t)
	const secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA=="
	startCoreDNS(t, fmt.Sprintf(`
%[1]s {
    bind 127.0.0.1
    tsig {
        secret key. %[4]s
        require all
    }
    fluxguard {
        report %[2]s
    }
    template IN A big.top {
%[3]s    }
}
`, zoneAt(addr), reportAddr, bigAnswers(), secret))
	const lookups = 4
	for range lookups {
		m := new(dns.Msg)
		m.SetQuestion("x.big.top.", dns.TypeA)
		m.SetTsig("key.", dns.HmacSHA256, 300, time.Now().Unix())
		c := &dns.Client{Net: "udp", UDPSize: dns.MaxMsgSize, Timeout: 3 * time.Second, TsigSecret: map[string]string{"key.": secret}}
		r, _, err := c.Exchange(m, addr)
		if err != nil {
			t.Fatal(err)
		}
		if r.Truncated || len(r.Answer) != 80 || r.IsTsig() == nil {
			t.Fatalf("setup: want the whole signed answer over UDP:\n%s", r)
		}
	}
	if n := settledQueries(t, reportAddr, "x.big.top", lookups); n != lookups {
		t.Errorf("x.big.top: %d queries counted (-1: not reported) for %d whole signed answers", n, lookups)
	}
}

// bigAnswers are the template plugin's answer lines for 80 addresses, over
// 512 bytes: x.big.top's answer in the tests above.
func bigAnswers() string {
	var answers strings.Builder
	for i := range 80 {
		fmt.Fprintf(&answers, "        answer \"{{ .Name }} 60 IN A %d.1.2.3\"\n", 11+i)
	}
	return answers.String()
}
