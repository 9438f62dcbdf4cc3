#!/usr/bin/env bash
# The test command: installs what the tests need on a fresh machine, then
# runs every test (unit, handler, scenarios, end-to-end with the real
# binary) with the race detector. Extra arguments go to `go test`.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"

# Debian packages: prometheus (promtool for the alerting rules' tests, and
# the server for the end-to-end alert), chromium (the headless browser of
# the report page's test, driven over the DevTools protocol: no
# chromium-driver), the resolvers below and, where Node.js did not bring
# it, npm (to fetch the tables below). Each is installed on its own:
# Debian's npm conflicts with a Node.js that bundles its own. named and
# unbound are in /usr/sbin.
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
apt_install() {
  [ -n "${apt_updated:-}" ] || { compile_meanwhile && $sudo apt-get update && apt_updated=1; }
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@"
}

# Jaeger, the tracing backend of TestTracedChain, which Debian does not
# package: built from test/tools, where its version is pinned, into
# .cache/bin, again when the pin changes.
tools=$PWD/.cache/bin
export PATH="$tools:$PATH"
build_tools() {
  [ "$tools/jaeger" -nt test/tools/go.mod ] ||
    (cd test/tools && go build -o "$tools/jaeger" github.com/jaegertracing/jaeger/cmd/jaeger)
}

# On a fresh machine the packages take minutes to install, mostly waiting
# on the network: meanwhile, in the background, Go compiles what the tests
# below need (with -race, the end-to-end tests' CoreDNS among them, and the
# deploy modules) into its build cache, and builds Jaeger. go list -export
# compiles without linking, so nothing is done twice.
compile_meanwhile() {
  {
    go list -export -deps -test -race ./...
    for mod in deploy/*/go.mod; do (cd "$(dirname "$mod")" && go list -export -deps -test ./...); done
    build_tools
  } >/dev/null 2>&1 &
  compiling=$!
}
{ command -v promtool && command -v prometheus; } >/dev/null || apt_install prometheus
command -v npm >/dev/null || apt_install npm
command -v chromium >/dev/null || apt_install chromium

# The downstream resolvers of test/e2e's TestDownstream, which runs its
# own instances on loopback. A policy-rc.d denying every start keeps their
# packages from starting the system services (a resolver on port 53,
# resolvconf hooks) while they install; where systemd runs, they are not
# left enabled either.
downstream_install() {
  local policy=/usr/sbin/policy-rc.d saved="" rc=0
  if [ -e "$policy" ]; then saved=$(mktemp) && $sudo cp -p "$policy" "$saved"; fi
  printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
  $sudo chmod 755 "$policy"
  apt_install "$1" || rc=$?
  if [ -n "$saved" ]; then $sudo mv "$saved" "$policy"; else $sudo rm -f "$policy"; fi
  if [ -d /run/systemd/system ]; then $sudo systemctl disable --now "$2" >/dev/null 2>&1 || true; fi
  return $rc
}
command -v unbound >/dev/null || downstream_install unbound unbound
command -v named >/dev/null || downstream_install bind9 named
command -v dnsmasq >/dev/null || downstream_install dnsmasq dnsmasq
# The fleet's tests (shared) run their own redis-server on loopback.
command -v redis-server >/dev/null || downstream_install redis-server redis-server

# The ip-location-db ASN tables (RouteViews, DB-IP, NRO; CC BY 4.0): the
# full database that asn_db reads, for the tests that run with it.
version=2.3.2026061719
data=${FLUXGUARD_ASN_DATA:-$PWD/.cache/ip-location-db-asn-$version}
if [ ! -f "$data/asn-ipv4.csv" ]; then
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "@ip-location-db/asn@$version" >/dev/null)
  mkdir -p "$data"
  tar xzf "$tmp"/*.tgz -C "$data" --strip-components=1
  rm -rf "$tmp"
fi
export FLUXGUARD_ASN_DATA=$data FLUXGUARD_REQUIRE_DATA=1

# What failed to compile there, the tests report; a failed tool build is
# tried again here, where its errors show.
[ -z "${compiling:-}" ] || wait "$compiling" || true
build_tools
go version
go test -race -timeout 30m ./... "$@"
# The deploy tests are modules of their own (Prometheus's parser, the
# Kubernetes and Prometheus Operator types), kept out of the plugin's.
for mod in deploy/*/go.mod; do
  (cd "$(dirname "$mod")" && go test ./... "$@")
done
