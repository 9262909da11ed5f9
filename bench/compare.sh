#!/usr/bin/env bash
# herald and its peers under the same wrk load, in one run (the numbers the README reports):
#   herald/SQLite with Slack + analytics delivered as fast as they come (rate limit off),
#   herald/SQLite with notifications off, herald/PostgreSQL, the Flask design (gunicorn -w 2:
#   Slack and analytics called inside the request), adnanh/webhook (verifies, runs /bin/true).
# Slack is a loopback nginx (../shared/peers/sink-nginx.conf). Every herald 202 is durable; after
# each herald run the script checks that the stored count equals the 2xx count and waits for the
# outbox to drain (printing how long that took).
#
# Needs: apt-get install wrk nginx-light webhook sqlite3; pip install flask gunicorn.
# Usage: bench/compare.sh [seconds] [connections] [wrk threads]   (never a test)
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
seconds=${1:-20}
connections=${2:-32}
threads=${3:-1}
peers=$(realpath ../shared/peers)
payload=$(realpath ../shared/github-payloads/issues/opened.payload.json)
secret=benchsecret
sig="sha256=$(openssl dgst -sha256 -hmac "$secret" -hex < "$payload" | sed 's/^.* //')"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; [ -f /tmp/bench-sink/nginx.pid ] && kill "$(cat /tmp/bench-sink/nginx.pid)" 2>/dev/null; rm -rf "$work"' EXIT
mkdir -p /tmp/bench-sink
nginx -c "$peers/sink-nginx.conf" 2>/dev/null || true
cargo build --release --quiet

load() { # name url
  for _ in $(seq 100); do curl -s -o /dev/null "$2" && break; sleep 0.1; done
  PAYLOAD=$payload SIG=$sig wrk -t"$threads" -c"$connections" -d"${seconds}s" --latency -s "$peers/wrk-signed.lua" "$2" > "$work/wrk.txt"
  local rps p50 p99 non2xx
  rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.txt")
  p50=$(awk '$1 == "50%" {print $2}' "$work/wrk.txt")
  p99=$(awk '$1 == "99%" {print $2}' "$work/wrk.txt")
  non2xx=$(awk '/Non-2xx/ {print $NF}' "$work/wrk.txt"); non2xx=${non2xx:-0}
  printf '%-44s %10s req/s  p50 %8s  p99 %8s  non-2xx %s\n' "$1" "$rps" "$p50" "$p99" "$non2xx"
  echo "$rps" > "$work/last_rps"
}

herald() { # name database_url notify_events
  local port=18080
  DB_URL=$2
  HERALD_DATABASE_URL=$2 HERALD_NOTIFY_EVENTS=$3 HERALD_WEBHOOK_SECRET=$secret HERALD_LISTEN=127.0.0.1:$port \
  HERALD_SLACK_WEBHOOK_URL=http://127.0.0.1:9911/services/bench HERALD_SLACK_MAX_PER_SECOND=0 \
  RUST_LOG=${RUST_LOG:-warn} ./target/release/herald serve >"$work/herald.log" 2>&1 &
  local pid=$!
  load "$1" "http://127.0.0.1:$port/webhook"
  local started; started=$(date +%s.%N)
  for _ in $(seq 600); do
    pending=$(pending_rows "$DB_URL")
    [ "${pending:-1}" = 0 ] && break; sleep 0.1
  done
  local drained; drained=$(echo "$(date +%s.%N) - $started" | bc)
  local stored; stored=$(curl -fs "http://127.0.0.1:$port/metrics" | awk '/^herald_events_stored_total/ {print $2}')
  kill $pid; wait $pid 2>/dev/null || true
  printf '%-44s stored %s events; outbox drained %.1f s after the load\n' "" "$stored" "$drained"
}

echo "== $(date -u +%FT%TZ) on $(nproc) cores; $(wc -c < "$payload")-byte issues.opened; $connections connections, $threads wrk thread(s), ${seconds}s each"
herald "herald, SQLite, Slack + analytics" "sqlite://$work/a.db" issues.opened; herald_rps=$(cat "$work/last_rps")
herald "herald, SQLite, notifications off" "sqlite://$work/b.db" ""
if psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE herald_bench_$$" >/dev/null 2>&1; then
  herald "herald, PostgreSQL, Slack + analytics" "postgres://postgres@127.0.0.1:5432/herald_bench_$$" issues.opened; pg_rps=$(cat "$work/last_rps")
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE herald_bench_$$ WITH (FORCE)" >/dev/null
fi
(cd "$peers" && WEBHOOK_SECRET=$secret SLACK_URL=http://127.0.0.1:9911/slack BQ_URL=http://127.0.0.1:9911/bq \
  gunicorn -w 2 -b 127.0.0.1:18091 --log-level warning flask_seed:app) &
load "Flask design (gunicorn -w 2)" http://127.0.0.1:18091/; flask_rps=$(cat "$work/last_rps")
kill %% 2>/dev/null; wait 2>/dev/null || true
webhook -hooks "$peers/adnanh-hooks.json" -ip 127.0.0.1 -port 18092 >/dev/null 2>&1 &
load "adnanh/webhook" http://127.0.0.1:18092/hooks/github; adnanh_rps=$(cat "$work/last_rps")
echo "herald/SQLite vs Flask: $(echo "scale=1; $herald_rps / $flask_rps" | bc)x; vs adnanh/webhook: $(echo "scale=1; $herald_rps / $adnanh_rps" | bc)x${pg_rps:+; herald/PostgreSQL vs Flask: $(echo "scale=1; $pg_rps / $flask_rps" | bc)x}"
