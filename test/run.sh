#!/bin/sh
# Runs every test binary given before "--" and every fuzz-corpus replay
# binary given after it, then prints one summary line:
#   "tests: N passed, N failed, N skipped"
# A test that skips because it found no shared test data (its reason names
# CLLAMA_SHARED) counts as failed when that data is there
# ($CLLAMA_SHARED, default ../shared, has models/): it should have run.
# Each binary's output goes to a file (not a pipe), so a stray child process
# cannot hold the run up, and each binary has a time limit
# (CLLAMA_TEST_TIMEOUT seconds, default 900).
passed=0; failed=0; skipped=0; failed_names=""
shared=${CLLAMA_SHARED:-../shared}
have_shared=0; [ -d "$shared/models" ] && have_shared=1
phase=test
limit=${CLLAMA_TEST_TIMEOUT:-900}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for b in "$@"; do
  if [ "$b" = "--" ]; then phase=replay; continue; fi
  name=$(basename "$b")
  if [ "$phase" = test ]; then
    timeout --kill-after=10 "$limit" "$b" --jobs 1 --verbose >"$out" 2>&1 </dev/null; rc=$?
    grep -E '^\[(----|FAIL|SKIP)\]' "$out" | grep -v '^\[----\] Criterion v' || true
    s=$(grep -c '^\[SKIP\]' "$out")
    bad=0
    if [ $have_shared = 1 ]; then
      bad=$(grep '^\[SKIP\]' "$out" | grep -c 'CLLAMA_SHARED')
      [ "$bad" -eq 0 ] || echo "$name: $bad test(s) skipped for want of CLLAMA_SHARED, but $shared has models/"
    fi
    [ $rc -eq 124 ] && echo "$name: timed out after ${limit}s"
    syn=$(grep 'Synthesis:' "$out" | tail -n 1)
    p=$(printf '%s' "$syn" | sed -n 's/.*Passing: \([0-9]*\).*/\1/p')
    f=$(printf '%s' "$syn" | sed -n 's/.*Failing: \([0-9]*\).*/\1/p')
    c=$(printf '%s' "$syn" | sed -n 's/.*Crashing: \([0-9]*\).*/\1/p')
    [ -n "$p" ] || p=0; [ -n "$f" ] || f=0; [ -n "$c" ] || c=0
    # A test whose setup or teardown crashed or exited counts as failed
    # (Criterion counts it as passed): that is where the API tests check
    # how their server ended (server_log.h).
    t=$(grep -c 'during its setup or teardown' "$out")
    if [ "$t" -gt 0 ]; then
      sed -n '/^---- server log/,/^---- end of server log/p' "$out" | head -n 80
      grep '^FAIL: cllama serve' "$out"
      p=$((p - t)); [ "$p" -ge 0 ] || p=0; c=$((c + t))
    fi
    # A sanitizer report from the test process itself (make check): LSan
    # reports leaks at exit without changing Criterion's count or status.
    if grep -qE 'ERROR: (Address|Leak|Thread)Sanitizer|runtime error:' "$out" &&
       ! grep -q '^FAIL: cllama serve' "$out"; then
      echo "$name: sanitizer report in the test process:"
      grep -E -A12 'ERROR: (Address|Leak|Thread)Sanitizer|runtime error:' "$out" | head -n 40
      f=$((f + 1))
    fi
    if [ $rc -ne 0 ] && [ $((f + c)) -eq 0 ]; then f=1; tail -n 20 "$out"; fi
    f=$((f + bad)); s=$((s - bad))
    passed=$((passed + p)); failed=$((failed + f + c)); skipped=$((skipped + s))
    [ $((f + c)) -eq 0 ] || failed_names="$failed_names $name"
    echo "$name: $p passed, $((f + c)) failed, $s skipped"
  else
    corpus="test/fuzz/corpus/${name}"
    if [ -d "$corpus" ]; then
      if timeout --kill-after=10 "$limit" "$b" "$corpus" >"$out" 2>&1 </dev/null; then
        passed=$((passed + 1)); echo "replay $name: ok"
      else
        cat "$out"; failed=$((failed + 1)); failed_names="$failed_names $name"
        echo "replay $name: FAILED"
      fi
    fi
  fi
done
[ -z "$failed_names" ] || echo "failing:$failed_names"
echo "tests: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
