#!/usr/bin/env bash
# Queue-trigger throughput and latency: messages per second from NATS JetStream through a
# Python echo function at max scale 4 (a queue trigger, 10 in flight), against the same
# function called over HTTP by wrk at 4 connections (target: >= 80% of it). The queue's rate
# is its steady one, as wrk's: MESSAGES published to the trigger's idle consumer, timed from
# the first publication until the last is acknowledged (set-up not counted); then the latency
# from publish to the function's start, p50 and p99, at a light rate (20 messages/s).
# With SQS=1, the same two figures for an SQS trigger fed by moto's SQS API (a local Python
# stand-in, so they measure moto as much as fnbox: not Scaleway Queues).
#
#   sudo [SQS=1] bench/queue.sh [MESSAGES] [SECONDS]   (default: 4000 messages, wrk for 10 s)
#
# Needs nats-server (with -js) and wrk: apt-get install nats-server wrk; with SQS=1, moto's
# server (conformance/moto-setup.sh /opt/moto, or FNBOX_MOTO=.../moto_server).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-4000}
DUR=${2:-10}
FNBOX=${FNBOX:-target/release/fnbox}
[ "$(id -u)" = 0 ] || { echo "bench/queue.sh: run as root (sandboxes need namespaces and cgroups)" >&2; exit 1; }
command -v wrk >/dev/null || { echo "bench/queue.sh: wrk is missing: apt-get install wrk" >&2; exit 1; }
command -v nats-server >/dev/null || { echo "bench/queue.sh: nats-server is missing: apt-get install nats-server" >&2; exit 1; }
SQS=${SQS:-0}
MOTO=${FNBOX_MOTO:-/opt/moto/bin/moto_server}
if [ "$SQS" = 1 ] && [ ! -x "$MOTO" ]; then
  echo "bench/queue.sh: SQS=1 needs moto's server at $MOTO: conformance/moto-setup.sh /opt/moto" >&2
  exit 1
fi
[ -x "$FNBOX" ] || cargo build --release -q -p fnbox
. bench/lib.sh # (the script runs from the repository root)
bench_scratch
FN_PORT=$(free_port)
NATS_PORT=$(free_port)

nats-server -js -a 127.0.0.1 -p "$NATS_PORT" -sd "$DATA/js" >/dev/null 2>&1 &
PIDS+=($!)
"$FNBOX" serve --listen "127.0.0.1:$FN_PORT" --data-dir "$DATA/serve" --cgroup-parent fnbox/bench 2>"$DATA/serve.log" &
PIDS+=($!)
wait_healthy "$FN_PORT"
export FNBOX_SERVER="http://127.0.0.1:$FN_PORT" FNBOX_DATA_DIR="$DATA/serve"

mkdir -p "$DATA/echo"
cat > "$DATA/echo/handler.py" <<'PY'
import time
def handle(event, context):
    body = event["body"] or ""
    if body.startswith("lat "):
        print("LAT %s %.6f" % (body[4:], time.time()), flush=True)
    return body
PY
"$FNBOX" deploy echo "$DATA/echo" --runtime python3 --max-scale 4 >/dev/null

# A NATS client in a few lines: publish N messages, ask JetStream, wait for a consumer.
cat > "$DATA/nats.py" <<'PY'
import json, socket, sys, time
port = int(sys.argv[1]); cmd = sys.argv[2]
s = socket.create_connection(("127.0.0.1", port)); f = s.makefile("rb")
f.readline(); s.sendall(b'CONNECT {"verbose":false,"headers":true}\r\nSUB _INBOX.bench 1\r\n')
def flush():
    s.sendall(b"PING\r\n")
    while f.readline().strip() != b"PONG": pass
def js(api, body=b""):
    s.sendall(b"PUB $JS.API.%s _INBOX.bench %d\r\n%s\r\n" % (api.encode(), len(body), body))
    while True:
        l = f.readline()
        if l.startswith(b"MSG"):
            return json.loads(f.read(int(l.split()[-1]) + 2))
if cmd == "stream":
    print(js("STREAM.CREATE.BENCH", json.dumps({"name": "BENCH", "subjects": ["bench.*"], "storage": "file"}).encode()).get("error", "ok"))
elif cmd == "publish":
    n = int(sys.argv[3]); rate = float(sys.argv[4]) if len(sys.argv) > 4 else 0
    for i in range(n):
        b = ("lat %.6f" % time.time()).encode() if rate else b"hello %d" % i
        s.sendall(b"PUB bench.q %d\r\n%s\r\n" % (len(b), b))
        if rate:
            flush(); time.sleep(1 / rate)
    flush()
elif cmd == "consumer":
    # Waits until fnbox's consumer exists on the stream.
    name = sys.argv[3]; deadline = time.time() + 30
    while "error" in js("CONSUMER.INFO.BENCH." + name):
        if time.time() > deadline:
            sys.exit("no consumer " + name)
        time.sleep(0.02)
elif cmd == "through":
    # The steady rate: N messages published to the idle consumer, timed until all are
    # acknowledged (polled every 5 ms), in one process (no start-up in the time).
    n = int(sys.argv[3]); name = sys.argv[4]
    target = js("STREAM.INFO.BENCH")["state"]["last_seq"] + n
    t0 = time.monotonic()
    for i in range(0, n, 100):
        s.sendall(b"".join(b"PUB bench.q %d\r\n%s\r\n" % (len(b), b) for b in (b"hello %d" % j for j in range(i, min(n, i + 100)))))
    flush()
    while time.monotonic() - t0 < 600:
        i = js("CONSUMER.INFO.BENCH." + name)
        if "error" not in i and i["ack_floor"]["stream_seq"] >= target:
            print("%.0f" % (n / (time.monotonic() - t0))); sys.exit(0)
        time.sleep(0.005)
    sys.exit("not drained")
PY
py() { python3 "$DATA/nats.py" "$NATS_PORT" "$@"; }

[ "$(py stream)" = ok ] || { echo "bench/queue.sh: cannot create the stream" >&2; exit 1; }
# Warm four instances over HTTP first, as wrk's run will have them.
wrk -t1 -c4 -d2s "http://127.0.0.1:$FN_PORT/fn/echo/" >/dev/null

ID=$("$FNBOX" trigger create echo --nats bench.q --stream BENCH --nats-server "nats://127.0.0.1:$NATS_PORT" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
py consumer "fnbox-$ID"
QRATE=$(py through "$N" "fnbox-$ID")

HRATE=$(wrk -t1 -c4 -d"$DUR"s "http://127.0.0.1:$FN_PORT/fn/echo/" | awk '$1 == "Requests/sec:" { printf "%.0f", $2 }')

# Latency at a light rate: 200 messages at 20/s, the function logs when it starts.
py publish 200 20
sleep 2
"$FNBOX" logs echo --tail 5000 | awk '$3 == "stdout:" && $4 == "LAT" { printf "%.3f\n", ($6 - $5) * 1000 }' | sort -n > "$DATA/lat"
COUNT=$(wc -l < "$DATA/lat")
P50=$(awk -v n="$COUNT" 'NR == int(n * 0.50 + 0.5) { print }' "$DATA/lat")
P99=$(awk -v n="$COUNT" 'NR == int(n * 0.99 + 0.5) { print }' "$DATA/lat")

if [ "$SQS" = 1 ]; then
  MOTO_PORT=$(free_port)
  "$MOTO" -H 127.0.0.1 -p "$MOTO_PORT" >/dev/null 2>&1 &
  PIDS+=($!)
  # boto3 comes with moto; moto does not check signatures.
  cat > "$DATA/sqs.py" <<'PY'
import sys, time, boto3
port, cmd = int(sys.argv[1]), sys.argv[2]
c = boto3.client("sqs", endpoint_url="http://127.0.0.1:%d" % port, region_name="us-east-1",
                 aws_access_key_id="bench", aws_secret_access_key="bench")
if cmd == "wait":
    for _ in range(600):
        try:
            c.list_queues(); sys.exit(0)
        except Exception:
            time.sleep(0.1)
    sys.exit("moto did not start")
q = c.create_queue(QueueName="bench")["QueueUrl"]
if cmd == "queue":
    print(q)
elif cmd == "publish":
    n = int(sys.argv[3]); rate = float(sys.argv[4]) if len(sys.argv) > 4 else 0
    if rate:
        for i in range(n):
            c.send_message(QueueUrl=q, MessageBody="lat %.6f" % time.time()); time.sleep(1 / rate)
    else:
        for i in range(0, n, 10):
            c.send_message_batch(QueueUrl=q, Entries=[{"Id": str(j), "MessageBody": "hello %d" % j} for j in range(i, min(n, i + 10))])
elif cmd == "drained":
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    for _ in range(6000):
        a = c.get_queue_attributes(QueueUrl=q, AttributeNames=names)["Attributes"]
        if all(a[k] == "0" for k in names):
            print("%.6f" % time.monotonic()); sys.exit(0)
        time.sleep(0.1)
    sys.exit("not drained")
elif cmd == "consume":
    # The peer: what one client gets through moto with the trigger's calls (receive up to
    # 10, delete each), calling no function.
    n = int(sys.argv[3]); t0 = time.monotonic(); done = 0
    while done < n:
        for m in c.receive_message(QueueUrl=q, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
            c.delete_message(QueueUrl=q, ReceiptHandle=m["ReceiptHandle"]); done += 1
    print("%.0f" % (n / (time.monotonic() - t0)))
PY
  sqs() { "$(dirname "$MOTO")/python" "$DATA/sqs.py" "$MOTO_PORT" "$@"; }
  sqs wait
  QUEUE=$(sqs queue)
  printf 'aws_access_key_id = bench\naws_secret_access_key = bench\n' > "$DATA/creds"
  chmod 0600 "$DATA/creds"
  sqs publish "$N"
  PEER=$(sqs consume "$N")
  sqs publish "$N"
  S0=$(python3 -c 'import time; print("%.6f" % time.monotonic())')
  "$FNBOX" trigger create echo --sqs "$QUEUE" --credentials "$DATA/creds" >/dev/null
  S1=$(sqs drained)
  SRATE=$(awk -v n="$N" -v a="$S0" -v b="$S1" 'BEGIN { printf "%.0f", n / (b - a) }')
  sqs publish 200 20
  sleep 2
  # The SQS messages' lines come after the JetStream ones.
  "$FNBOX" logs echo --tail 5000 | awk '$3 == "stdout:" && $4 == "LAT" { printf "%.3f\n", ($6 - $5) * 1000 }' |
    tail -n +"$((COUNT + 1))" | sort -n > "$DATA/slat"
  SCOUNT=$(wc -l < "$DATA/slat")
  SP50=$(awk -v n="$SCOUNT" 'NR == int(n * 0.50 + 0.5) { print }' "$DATA/slat")
  SP99=$(awk -v n="$SCOUNT" 'NR == int(n * 0.99 + 0.5) { print }' "$DATA/slat")
fi

printf '%-34s %12s\n' "side (max scale 4)" "calls/s"
printf '%-34s %12s\n' "HTTP, wrk -c4 (${DUR} s)" "$HRATE"
printf '%-34s %12s\n' "JetStream queue trigger ($N msgs)" "$QRATE"
awk -v q="$QRATE" -v h="$HRATE" 'BEGIN { printf "  => queue: %.0f%% of HTTP (target >= 80%%)\n", 100 * q / h }'
echo "publish -> function start, $COUNT messages at 20/s: p50 ${P50} ms, p99 ${P99} ms"
if [ "$SQS" = 1 ]; then
  printf '%-34s %12s\n' "moto alone: receive+delete ($N)" "$PEER"
  printf '%-34s %12s\n' "SQS trigger, moto ($N msgs)" "$SRATE"
  awk -v q="$SRATE" -v p="$PEER" -v h="$HRATE" \
    'BEGIN { printf "  => SQS trigger: %.0f%% of moto alone, %.0f%% of HTTP\n", 100 * q / p, 100 * q / h }'
  echo "SQS send -> function start, $SCOUNT messages at 20/s: p50 ${SP50} ms, p99 ${SP99} ms"
fi
