#!/usr/bin/env bash
# Runs every polysocket test: static checks, the whole Go test suite with
# the race detector (unit, end-to-end, multi-process, Redis, Redis Cluster,
# and headless Chromium and Firefox tests, some through squid and nginx,
# and a real Prometheus for deploy/), then each fuzz target for a bounded
# time. Installs what the tests need (redis-server, chromium, firefox-esr,
# squid, nginx-light, prometheus, npm) when missing.
#
#   FUZZTIME=0     skips fuzzing; any other value (1m, 500000x) is passed
#                  to scripts/fuzz.sh, whose default is a fixed number of
#                  executions per target (about 10 s each)
#   SOAK_LONG=1    makes the fault-injection soak (e2e/soak) the long run,
#                  100 sessions × 1,000 messages each way; SOAK_SESSIONS,
#                  SOAK_MESSAGES and SOAK_SEED (replay) set it finer
set -euo pipefail
cd "$(dirname "$0")/.."

export PATH="$PATH:/usr/sbin:/sbin" # squid and nginx live there
updated=""
need() { # need COMMAND PACKAGE
  command -v "$1" >/dev/null 2>&1 && return
  echo "== installing $2 (for $1)"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  if [ -z "$updated" ]; then $SUDO apt-get update -qq; updated=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$2" >/dev/null
}
need redis-server redis-server
need redis-cli redis-tools
need chromium chromium
need firefox-esr firefox-esr
need squid squid
need nginx nginx-light
need prometheus prometheus
need promtool prometheus
# npm: the client package test (npm pack, tsc) and the third-party
# browser clients, each installed with npm ci from a pinned lock file.
need node nodejs
need npm npm

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then echo "gofmt would change:"; echo "$unformatted"; exit 1; fi
echo "== go vet"
go vet ./...
echo "== staticcheck"
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

echo "== go test -race"
go test -race -count=1 -timeout 30m ./...

if [ "${FUZZTIME:-}" != "0" ] && [ -x scripts/fuzz.sh ]; then
  echo "== fuzzing (${FUZZTIME:-a fixed execution count} per target)"
  scripts/fuzz.sh
fi
echo "== all tests passed"
