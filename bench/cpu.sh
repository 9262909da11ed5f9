#!/usr/bin/env bash
# CPU that herald spends per event, intake to delivery: runs the wrk load of bench/compare.sh for
# a while, waits for the outbox to drain, and divides herald's user+system CPU time by the events
# stored. Less sensitive than req/s to whatever else the machine is doing, so it is what the
# profiling work was measured with. Usage: bench/cpu.sh [sqlite|postgres] [seconds] [notify events]
# (HERALD_BINARY=path measures another build, e.g. one with a different allocator).
set -euo pipefail
cd "$(dirname "$0")/.."
# Outbox rows still pending, read from the store itself (the /metrics gauge is refreshed only
# every 10 s).
pending_rows() {
  case "$1" in
    sqlite://*) sqlite3 "${1#sqlite://}" "select count(*) from outbox where status = 'pending'" ;;
    *) psql "$1" -Atc "select count(*) from outbox where status = 'pending'" ;;
  esac
}
backend=${1:-sqlite}
seconds=${2:-10}
notify=${3-issues.opened}
peers=$(realpath ../shared/peers)
payload=$(realpath ../shared/github-payloads/issues/opened.payload.json)
secret=benchsecret
sig="sha256=$(openssl dgst -sha256 -hmac "$secret" -hex < "$payload" | sed 's/^.* //')"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
mkdir -p /tmp/bench-sink
nginx -c "$peers/sink-nginx.conf" 2>/dev/null || true
case "$backend" in
  sqlite) url="sqlite://$work/herald.db" ;;
  postgres) db="herald_cpu_$$"; psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $db" >/dev/null
            url="postgres://postgres@127.0.0.1:5432/$db" ;;
esac
port=18081
HERALD_DATABASE_URL=$url HERALD_NOTIFY_EVENTS=$notify HERALD_WEBHOOK_SECRET=$secret HERALD_LISTEN=127.0.0.1:$port \
HERALD_SLACK_WEBHOOK_URL=http://127.0.0.1:9911/services/bench HERALD_SLACK_MAX_PER_SECOND=0 \
RUST_LOG=warn "${HERALD_BINARY:-./target/release/herald}" serve >"$work/herald.log" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
before=$(ticks)
PAYLOAD=$payload SIG=$sig wrk -t1 -c32 -d"${seconds}s" -s "$peers/wrk-signed.lua" "http://127.0.0.1:$port/webhook" | grep -E "Requests/sec"
for _ in $(seq 600); do
  pending=$(pending_rows "$url")
  [ "${pending:-1}" = 0 ] && break; sleep 0.1
done
after=$(ticks)
stored=$(curl -fs "http://127.0.0.1:$port/metrics" | awk '/^herald_events_stored_total/ {print $2}')
echo "herald ($backend, notify '${notify}'): $stored events, $(echo "scale=1; ($after - $before) * 1000000 / $hz / $stored" | bc) µs of CPU per event, intake to delivery"
kill $pid; wait $pid 2>/dev/null || true
[ "$backend" = postgres ] && psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE $db WITH (FORCE)" >/dev/null || true
