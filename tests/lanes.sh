#!/usr/bin/env bash
# make test's runner: `tests/lanes.sh MAKE LANE...` runs `MAKE test-LANE` for every lane at once, each line of a
# lane prefixed with [LANE] on the terminal and kept whole in .build/test/LANE.log. A lane goes on past a failed
# step (make -k), and when another lane fails, so one run shows every failure. The check lane runs at a lower CPU
# priority: it has no time bounds, while the e2e lane waits for hosts and load balancers within bounded times.
# Exits 0 only when every lane passed; the failed steps are named again at the end.
set -uo pipefail

make=${1:?usage: tests/lanes.sh MAKE LANE...}
shift
out=.build/test
mkdir -p "$out"

for lane in "$@"; do
  rm -f "$out/$lane.rc"
  (
    start=$SECONDS
    nice_level=0
    [ "$lane" = check ] && nice_level=10
    nice -n "$nice_level" $make -k --no-print-directory "test-$lane" </dev/null 2>&1
    rc=$?
    echo "$rc $((SECONDS - start))" >"$out/$lane.rc"
  ) | tee "$out/$lane.log" | sed -u "s/^/[$lane] /" &
done
wait

status=0
printf '\n==> make test:'
for lane in "$@"; do
  read -r rc took <"$out/$lane.rc" 2>/dev/null || { rc=1 took=0; }
  [ "$rc" = 0 ] && verdict=passed || { verdict="FAILED (exit $rc; .build/test/$lane.log)"; status=1; }
  printf ' lane %s %s in %dm%02ds;' "$lane" "$verdict" $((took / 60)) $((took % 60))
done
printf '\n'
# The steps that failed, named again at the very end: a CI log is often read from its tail.
for lane in "$@"; do
  grep -E '^make(\[[0-9]+\])?: \*\*\* \[' "$out/$lane.log" 2>/dev/null | sed "s/^/==> [$lane] failed: /"
done
exit "$status"
