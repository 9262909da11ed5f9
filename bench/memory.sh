#!/usr/bin/env bash
# Resident memory of one `herald serve` (release build) receiving N concurrent, valid, signed
# 24 MiB `issues` payloads: the peak while they are handled and what is left 5 s after the last
# answer. Usage: bench/memory.sh [concurrent=5] [binary=target/release/herald]
# Never a test: numbers depend on the machine and the allocator. Traffic stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
concurrent=${1:-5}
binary=${2:-target/release/herald}
secret=benchsecret
port=18090
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT

# A valid issues.opened payload padded to 24 MiB in a field no one indexes.
python3 - "$work/body.json" <<'PY'
import json, sys
body = json.load(open("../shared/github-payloads/issues/opened.payload.json"))
body["issue"]["body"] = "x" * (24 * 1024 * 1024 - 20_000)
open(sys.argv[1], "w").write(json.dumps(body))
PY
sig="sha256=$(openssl dgst -sha256 -hmac "$secret" -hex < "$work/body.json" | sed 's/^.* //')"

HERALD_DATABASE_URL="sqlite://$work/herald.db" HERALD_WEBHOOK_SECRET=$secret \
HERALD_LISTEN=127.0.0.1:$port RUST_LOG=warn "$binary" serve >"$work/out.log" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
rss() { awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$pid/status"; }
echo "== $binary: $concurrent concurrent $(($(wc -c < "$work/body.json") / 1048576)) MiB payloads; idle RSS $(rss) MiB"

peak=0
( while kill -0 $pid 2>/dev/null; do r=$(rss); echo "$r"; sleep 0.05; done ) >"$work/samples" &
sampler=$!
for i in $(seq "$concurrent"); do
  curl -s -o /dev/null -w "%{http_code} " -X POST "http://127.0.0.1:$port/webhook" \
    -H "X-GitHub-Event: ${EVENT:-issues}" -H "X-GitHub-Delivery: mem-$i" -H "X-Hub-Signature-256: $sig" \
    -H "Content-Type: application/json" --data-binary "@$work/body.json" &
done
wait $(jobs -p | grep -v "^$pid$" | grep -v "^$sampler$") 2>/dev/null || true
echo
sleep 5
kill $sampler 2>/dev/null || true
peak=$(sort -n "$work/samples" | tail -1)
echo "peak RSS while handling: $peak MiB; RSS 5 s after the last answer: $(rss) MiB ($(awk '/RssAnon|RssFile/ {printf "%s %d MiB ", $1, $2 / 1024}' "/proc/$pid/status"))"
