#!/usr/bin/env bash
# Unauthenticated POSTs against the HTTP API for SECONDS_ seconds (default 5)
# from CONCURRENCY parallel connections of one curl process, on loopback:
# how many were refused (401), how many log lines they cost, and what the
# daemon's log says about them. Before access control every such POST paused
# or reloaded something and 5 s wrote 212,000 log lines; now each is refused,
# counted in zentrale_http_refused_total, and logged once per client and 10 s.
#
#   benches/api_refusals.sh            # the release build (cargo build --release)
#   BIN=target/dist/zentrale benches/api_refusals.sh
#
# Bounded: SECONDS_ (at most 30) of requests, REQUESTS in all (default 200,000).
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_=${SECONDS_:-5}
[ "$SECONDS_" -le 30 ] || { echo "SECONDS_ is at most 30" >&2; exit 1; }
REQUESTS=${REQUESTS:-200000}
CONCURRENCY=${CONCURRENCY:-32}
. benches/lib.sh
bench_bin release
bench_work ZPID

LOG=info start_zentrale zentrale.yaml 41000-41099
LINES_BEFORE=$(wc -l <"$WORK/zentrale.log")

# One curl process, CONCURRENCY connections, the same POST over and over.
URLS="$WORK/urls"
for ((i = 0; i < REQUESTS; i++)); do
  printf 'url = "http://127.0.0.1:%s/api/v1/agents/1001/pause"\noutput = "/dev/null"\n' "$HTTP_PORT"
done >"$URLS"
START=$(date +%s.%N)
timeout "$SECONDS_" curl -s -Z --parallel-max "$CONCURRENCY" -X POST -K "$URLS" \
  -w '%{http_code}\n' >"$WORK/codes" 2>/dev/null || true
END=$(date +%s.%N)
sleep 0.3 # the log thread writes in batches

sort "$WORK/codes" | uniq -c | sort -rn | head -5 >"$WORK/code-counts"
SENT=$(wc -l <"$WORK/codes")
REFUSED=$(grep -c '^401$' "$WORK/codes" || true)
OTHER=$((SENT - REFUSED))
LINES=$(($(wc -l <"$WORK/zentrale.log") - LINES_BEFORE))
COUNTED=$(curl -s "127.0.0.1:$HTTP_PORT/metrics" | awk '$1 ~ /^zentrale_http_refused_total/ {s += $2} END {print s+0}')
ELAPSED=$(echo "$END - $START" | bc)
printf 'POSTs without a token:   %d in %.1f s (%.0f/s), %d answered 401, %d otherwise\n' \
  "$SENT" "$ELAPSED" "$(echo "$SENT / $ELAPSED" | bc -l)" "$REFUSED" "$OTHER"
printf 'zentrale_http_refused:   %d\n' "$COUNTED"
printf 'log lines written:       %d\n' "$LINES"
echo "answers by status (000: cut off by the time limit):"; cat "$WORK/code-counts"
grep "HTTP request refused" "$WORK/zentrale.log" | head -3
