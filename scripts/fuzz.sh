#!/bin/sh
# Runs every fuzz target of polysocket for a bounded time each.
#
#   scripts/fuzz.sh                 # a fixed number of executions per target
#   FUZZTIME=1000000x scripts/fuzz.sh   # another number, for every target
#   FUZZTIME=1m scripts/fuzz.sh     # wall-clock time per target (see below)
#
# The default is counted in executions, sized to about 10 s each on a
# 2-core machine, not in seconds: with a duration Go 1.26's fuzz
# coordinator can report its own deadline as a failure ("context deadline
# exceeded", no failing input written) when a worker is still busy as the
# time runs out (golang/go#75804, fixed in Go 1.27). A count has no
# deadline to race. A duration is still fine for a long run by hand.
#
# Seed corpora live in each package's testdata/fuzz/FuzzXxx/ (and in the
# f.Add calls); plain `go test` runs them as regression tests. A failing
# input is written to testdata/fuzz/FuzzXxx/ by go test: commit it with
# the fix. Exits non-zero on the first failing target.
set -eu
cd "$(dirname "$0")/.."
FUZZTIME="${FUZZTIME:-}"

# package  target  executions — every parser of client input. The counts
# come from each target's rate here (FUZZTIME=6s: 500/s for FuzzFragments
# to 32,000/s for FuzzValidCallback).
TARGETS="
./jsonp FuzzParse 250000x
./jsonp FuzzParseKnown 80000x
./jsonp FuzzValidCallback 300000x
./jsonp FuzzAppendString 120000x
./relay FuzzParseSend 50000x
./relay FuzzSendHandler 80000x
./httpconn FuzzParseHead 90000x
./relay FuzzSessionHost 50000x
./session FuzzFragments 5000x
./session FuzzClientMemory 10000x
./token FuzzParseTarget 30000x
./netguard FuzzCheck 100000x
"

echo "$TARGETS" | while read -r pkg target count; do
	[ -z "$pkg" ] && continue
	# A target another engineer has not written yet is skipped, not failed.
	if ! grep -q "func $target(" "$pkg"/*_test.go 2>/dev/null; then
		echo "fuzz: $pkg $target: not found, skipped"
		continue
	fi
	budget="${FUZZTIME:-$count}"
	echo "fuzz: $pkg $target for $budget"
	# -timeout bounds a target whose budget turns out far too large for
	# the machine; the default (10m) would be longer than the whole suite.
	go test -run '^$' -fuzz "^$target\$" -fuzztime "$budget" -timeout 5m "$pkg"
done
