#!/usr/bin/env bash
# Does a rate-limited Slack hold back analytics? Queues N Slack messages behind Slack's default
# limit (1 message/s, bursts of 5; Slack is a loopback nginx), then sends one new event at a time
# and measures how long its analytics row takes to be delivered, read from the store's outbox
# (delivered_at - received_at, both written by herald). Usage: bench/lanes.sh [queued=1000] [probes=10]
# Needs: apt-get install wrk nginx-light sqlite3. Never a test.
set -euo pipefail
cd "$(dirname "$0")/.."
queued=${1:-1000}
probes=${2:-10}
peers=$(realpath ../shared/peers)
payload=$(realpath ../shared/github-payloads/issues/opened.payload.json)
secret=benchsecret
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
mkdir -p /tmp/bench-sink
nginx -c "$peers/sink-nginx.conf" 2>/dev/null || true
cargo build --release --quiet
db="$work/herald.db"
port=18082
HERALD_DATABASE_URL="sqlite://$db" HERALD_WEBHOOK_SECRET=$secret HERALD_LISTEN=127.0.0.1:$port \
HERALD_SLACK_WEBHOOK_URL=http://127.0.0.1:9911/services/bench \
RUST_LOG=warn ./target/release/herald serve >"$work/herald.log" 2>&1 &
server=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
kill -0 "$server" || { cat "$work/herald.log"; exit 1; }
send() { # delivery id
  HERALD_WEBHOOK_SECRET=$secret ./target/release/herald send-test --url "http://127.0.0.1:$port/webhook" \
    --payload "$payload" --event issues --delivery "$1" >/dev/null
}
senders=()
for i in $(seq "$queued"); do
  send "queue-$i" & senders+=($!)
  if (( ${#senders[@]} == 32 )); then wait "${senders[@]}"; senders=(); fi
done
if (( ${#senders[@]} > 0 )); then wait "${senders[@]}"; fi
slack_pending=$(sqlite3 "$db" "select count(*) from outbox where destination = 'slack' and status = 'pending'")
echo "== $(date -u +%FT%TZ): $queued events queued; $slack_pending Slack messages pending at 1 message/s"
for i in $(seq "$probes"); do
  send "probe-$i"
  for _ in $(seq 200); do
    status=$(sqlite3 "$db" "select o.status from outbox o join events e on e.id = o.event_id
      where e.delivery_id = 'probe-$i' and o.destination = 'analytics'")
    [ "$status" = delivered ] && break; sleep 0.05
  done
  sqlite3 "$db" "select 'probe $i: analytics delivered ' || (o.updated_at - e.received_at) || ' ms after intake; ' ||
      (select count(*) from outbox where destination = 'slack' and status = 'pending') || ' Slack messages still pending'
    from outbox o join events e on e.id = o.event_id
    where e.delivery_id = 'probe-$i' and o.destination = 'analytics'"
done
