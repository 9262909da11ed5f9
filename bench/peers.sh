#!/usr/bin/env bash
# The same wrk load as bench/intake.sh against what users would run instead of herald:
# the Flask design (gunicorn, 2 workers, Slack and analytics called inside the request) and
# adnanh/webhook (Go, verifies the signature and runs /bin/true). Neither stores anything.
#
# Needs: apt-get install wrk nginx-light webhook; pip install flask gunicorn.
# Usage: bench/peers.sh [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
connections=${2:-64}
peers=$(realpath ../shared/peers)
payload=$(realpath ../shared/github-payloads/issues/opened.payload.json)
secret=benchsecret
sig="sha256=$(openssl dgst -sha256 -hmac "$secret" -hex < "$payload" | sed 's/^.* //')"
trap 'kill $(jobs -p) 2>/dev/null; [ -f /tmp/bench-sink/nginx.pid ] && kill "$(cat /tmp/bench-sink/nginx.pid)" 2>/dev/null' EXIT
mkdir -p /tmp/bench-sink
nginx -c "$peers/sink-nginx.conf" 2>/dev/null || true

run() { # name url
  for _ in $(seq 100); do curl -s -o /dev/null "$2" && break; sleep 0.1; done
  echo "== $1, $connections connections, ${seconds}s"
  PAYLOAD=$payload SIG=$sig wrk -t2 -c"$connections" -d"${seconds}s" --latency -s "$peers/wrk-signed.lua" "$2" \
    | grep -E "Requests/sec|Non-2xx|Socket errors|  50%|  90%|  99%"
}

(cd "$peers" && WEBHOOK_SECRET=$secret SLACK_URL=http://127.0.0.1:9911/slack BQ_URL=http://127.0.0.1:9911/bq \
  gunicorn -w 2 -b 127.0.0.1:18091 --log-level warning flask_seed:app) &
run "flask_seed (gunicorn -w 2)" http://127.0.0.1:18091/
kill %1; wait %1 2>/dev/null || true

webhook -hooks "$peers/adnanh-hooks.json" -ip 127.0.0.1 -port 18092 >/dev/null 2>&1 &
run "adnanh/webhook" http://127.0.0.1:18092/hooks/github
