// Package testenv gives tests what they need from outside Go: the
// ip-location-db ASN tables and Debian's tools. scripts/test.sh provides
// them and sets FLUXGUARD_REQUIRE_DATA; without it, a test that lacks one
// is skipped, with it, it fails.
package testenv

import (
	"net"
	"os"
	"os/exec"
	"testing"
	"time"
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

// Redis is a redis-server of the test's own on loopback, which the test
// can stop and start again on the same port.
type Redis struct {
	Addr string
	t    testing.TB
	dir  string
	args []string
	cmd  *exec.Cmd
}

// StartRedis starts Debian's redis-server on a free loopback port, with
// no persistence, and stops it when the test ends. extra are more
// configuration directives, as command-line arguments.
func StartRedis(t testing.TB, extra ...string) *Redis {
	t.Helper()
	Tool(t, "redis-server")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	r := &Redis{Addr: addr, t: t, dir: t.TempDir(), args: extra}
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// Start starts the server again after Stop.
func (r *Redis) Start() {
	r.t.Helper()
	_, port, _ := net.SplitHostPort(r.Addr)
	args := append([]string{"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", r.dir, "--daemonize", "no", "--protected-mode", "no"}, r.args...)
	r.cmd = exec.Command("redis-server", args...)
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", r.Addr); err == nil {
			// Any reply will do: +PONG, or -NOAUTH with requirepass.
			c.Write([]byte("PING\r\n"))
			buf := make([]byte, 1)
			c.SetReadDeadline(time.Now().Add(time.Second))
			n, _ := c.Read(buf)
			c.Close()
			if n == 1 && (buf[0] == '+' || buf[0] == '-') {
				return
			}
		}
	}
	r.t.Fatalf("redis-server on %s did not answer", r.Addr)
}

// Stop stops the server.
func (r *Redis) Stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		r.cmd.Process.Kill()
		r.cmd.Wait()
		r.cmd = nil
	}
}
