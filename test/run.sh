#!/bin/sh
# Runs every test binary given before "--" and every fuzz-corpus replay
# binary given after it, then prints one summary line:
#   "tests: N passed, N failed"
# Criterion's own "Synthesis" lines are printed by each binary as it runs.
passed=0; failed=0; failed_names=""
phase=test
for b in "$@"; do
  if [ "$b" = "--" ]; then phase=replay; continue; fi
  name=$(basename "$b")
  if [ "$phase" = test ]; then
    out=$("$b" --jobs 1 2>&1); rc=$?
    printf '%s\n' "$out" | grep -E '^\[(----|FAIL|SKIP|====)\]|SKIP|warning' || true
    syn=$(printf '%s\n' "$out" | grep 'Synthesis:' | tail -n 1)
    p=$(printf '%s' "$syn" | sed -n 's/.*Passing: \([0-9]*\).*/\1/p')
    f=$(printf '%s' "$syn" | sed -n 's/.*Failing: \([0-9]*\).*/\1/p')
    c=$(printf '%s' "$syn" | sed -n 's/.*Crashing: \([0-9]*\).*/\1/p')
    [ -n "$p" ] || p=0; [ -n "$f" ] || f=0; [ -n "$c" ] || c=0
    if [ $rc -ne 0 ] && [ $((f + c)) -eq 0 ]; then f=1; fi
    passed=$((passed + p)); failed=$((failed + f + c))
    [ $((f + c)) -eq 0 ] || failed_names="$failed_names $name"
    echo "$name: $p passed, $((f + c)) failed"
  else
    corpus="test/fuzz/corpus/${name}"
    if [ -d "$corpus" ]; then
      if "$b" "$corpus"; then passed=$((passed + 1)); echo "replay $name: ok";
      else failed=$((failed + 1)); failed_names="$failed_names $name"; echo "replay $name: FAILED"; fi
    fi
  fi
done
[ -z "$failed_names" ] || echo "failing:$failed_names"
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
