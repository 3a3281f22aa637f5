#!/bin/sh
# Runs every fuzz target of polysocket for a bounded time each.
#
#   scripts/fuzz.sh            # 10s per target
#   FUZZTIME=1m scripts/fuzz.sh
#   FUZZTIME=500x scripts/fuzz.sh   # a number of executions instead
#
# Seed corpora live in each package's testdata/fuzz/FuzzXxx/ (and in the
# f.Add calls); plain `go test` runs them as regression tests. A failing
# input is written to testdata/fuzz/FuzzXxx/ by go test: commit it with
# the fix. Exits non-zero on the first failing target.
set -eu
cd "$(dirname "$0")/.."
FUZZTIME="${FUZZTIME:-10s}"

# package  target — every parser of client input.
TARGETS="
./jsonp FuzzParse
./jsonp FuzzValidCallback
./jsonp FuzzAppendString
./relay FuzzParseSend
./relay FuzzSendHandler
./relay FuzzParseHead
./session FuzzFragments
./token FuzzParseTarget
./netguard FuzzCheck
"

echo "$TARGETS" | while read -r pkg target; do
	[ -z "$pkg" ] && continue
	# A target another engineer has not written yet is skipped, not failed.
	if ! grep -q "func $target(" "$pkg"/*_test.go 2>/dev/null; then
		echo "fuzz: $pkg $target: not found, skipped"
		continue
	fi
	echo "fuzz: $pkg $target for $FUZZTIME"
	go test -run '^$' -fuzz "^$target\$" -fuzztime "$FUZZTIME" "$pkg"
done
