#!/bin/sh
# soak.sh — 30 minutes (SOAK_MINUTES) of mixed load against `cllama serve`
# on loopback (bench/soak.py: chat streams cut off at random, embeds,
# creates/deletes, pulls from test/registry_fixture.py with faults), RSS and
# descriptor count sampled each minute, then bench/out/soak.png (gnuplot).
#   sh bench/soak.sh [path/to/cllama]
set -e
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../build/release/cllama}
shared=${CLLAMA_SHARED:-$here/../../shared}
out=${SOAK_OUT:-$here/out}
mkdir -p "$out"
python3 "$here/soak.py" --bin "$bin" --shared "$shared" --out "$out" \
  --minutes "${SOAK_MINUTES:-30}" --sample "${SOAK_SAMPLE_S:-60}" --workers "${SOAK_WORKERS:-1}"
rc=$?
if command -v gnuplot >/dev/null 2>&1; then
  gnuplot <<GP
set terminal pngcairo size 1000,600
set output "$out/soak.png"
set title "cllama soak: chat streams cut at random, embeds, create/delete, faulty pulls, blob uploads"
set xlabel "minutes"
set ylabel "RSS (MiB)"
set y2label "open descriptors"
set y2tics
set ytics nomirror
set yrange [0:*]
set y2range [0:*]
set key bottom right
plot "$out/soak.dat" using 1:(\$2/1024) with linespoints title "RSS (MiB)", \
     "$out/soak.dat" using 1:3 axes x1y2 with linespoints title "descriptors"
GP
  echo "soak: plot in $out/soak.png"
else
  echo "soak: gnuplot not found (make bench-deps); data in $out/soak.dat"
fi
exit $rc
