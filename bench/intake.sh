#!/usr/bin/env bash
# Intake throughput of one `herald serve` (release build) with 13 KB signed payloads, every 202
# durable (SQLite WAL + synchronous=FULL), measured with wrk and ../shared/peers/wrk-signed.lua.
# Slack is a local nginx answering 200 (../shared/peers/sink-nginx.conf), with herald's rate
# limit off so delivery workers write to the store at full speed during the run (worst case).
#
# Needs: apt-get install wrk nginx-light. Usage: bench/intake.sh [sqlite|postgres] [seconds] [connections] [wrk threads]
# Never a test: numbers depend on the machine. Traffic stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
backend=${1:-sqlite}
seconds=${2:-20}
connections=${3:-64}
threads=${4:-2} # wrk-signed.lua gives every thread the same delivery ids: with 2, half are redeliveries
peers=../shared/peers
payload=../shared/github-payloads/issues/opened.payload.json
secret=benchsecret
port=18080
work=$(mktemp -d)
trap 'cp "$work/out.log" /tmp/herald-bench.log 2>/dev/null; kill $(jobs -p) 2>/dev/null; [ -f /tmp/bench-sink/nginx.pid ] && kill "$(cat /tmp/bench-sink/nginx.pid)" 2>/dev/null; rm -rf "$work"' EXIT

cargo build --release --quiet
mkdir -p /tmp/bench-sink
nginx -c "$(realpath $peers/sink-nginx.conf)" 2>/dev/null || true

case "$backend" in
  sqlite) url="sqlite://$work/herald.db" ;;
  postgres)
    db="herald_bench_$$"
    psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $db" >/dev/null
    url="postgres://postgres@127.0.0.1:5432/$db" ;;
  *) echo "usage: $0 [sqlite|postgres] [seconds] [connections]" >&2; exit 2 ;;
esac

HERALD_DATABASE_URL=$url HERALD_NOTIFY_EVENTS=${HERALD_NOTIFY_EVENTS:-issues.opened} HERALD_WEBHOOK_SECRET=$secret HERALD_LISTEN=127.0.0.1:$port \
HERALD_SLACK_WEBHOOK_URL=http://127.0.0.1:9911/services/bench HERALD_SLACK_MAX_PER_SECOND=0 \
RUST_LOG=${RUST_LOG:-warn} ./target/release/herald serve >"$work/out.log" 2>&1 &
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done

sig="sha256=$(openssl dgst -sha256 -hmac "$secret" -hex < "$payload" | sed 's/^.* //')"
echo "== herald ($backend), $(wc -c < "$payload") byte payload, $connections connections, ${seconds}s"
PAYLOAD=$payload SIG=$sig wrk -t"$threads" -c"$connections" -d"${seconds}s" --latency -s "$peers/wrk-signed.lua" "http://127.0.0.1:$port/webhook" | tee "$work/wrk.txt"

# Durability check: every request wrk completed with 202 is a row in the store.
requests=$(awk '/requests in/ {print $1}' "$work/wrk.txt")
non2xx=$(awk '/Non-2xx/ {print $NF}' "$work/wrk.txt"); non2xx=${non2xx:-0}
metrics=$(curl -fs "http://127.0.0.1:$port/metrics")
stored=$(echo "$metrics" | awk '/^herald_events_stored_total/ {print $2}')
echo "wrk completed $requests requests ($non2xx non-2xx); herald reports $stored events stored"
kill %1 2>/dev/null || true; wait %1 2>/dev/null || true
if [ "$backend" = sqlite ]; then
  rows=$(sqlite3 "$work/herald.db" "select count(*) from events")
  echo "rows in events after shutdown: $rows"
else
  rows=$(psql -h 127.0.0.1 -U postgres -Atc "select count(*) from events" "$db")
  echo "rows in events after shutdown: $rows"
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE $db WITH (FORCE)" >/dev/null
fi
