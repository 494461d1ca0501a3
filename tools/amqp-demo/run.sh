#!/usr/bin/env bash
# The portal side over AMQP 1.0, end to end, against a real RabbitMQ (Debian's rabbitmq-server with
# its AMQP 1.0 plugin) that this script starts privately on 127.0.0.1 and stops at the end:
#
#   1. the portal (tools/amqp-demo/portal.py, qpid-proton's Python binding) puts a citizen's
#      Dialogmelding on Oslo home care's queue 9100110_async;
#   2. edibroker takes it from the queue (settled only once stored), routes it by HER-id to Oslo's
#      EPJ (the demo's Visma file catalogue: the document appears in visma-oslo/out/);
#   3. the EPJ answers with an AppRec (here through the REST API);
#   4. edibroker routes the AppRec to the portal's queue 8093244_async, where the portal takes it;
#   5. a message without the portal's required properties is refused onto the sender's _error queue.
#
# Usage: tools/amqp-demo/run.sh [--keep]   (--keep: leave RabbitMQ and edibroker running, print how
# to reach them, and wait for Ctrl-C)
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
keep=0
[ "${1:-}" = "--keep" ] && keep=1

"$here/tools/install-deps.sh"
if ! /usr/bin/python3 -c "import proton" 2>/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get install -y -qq python3-qpid-proton >/dev/null
fi
cmake -S "$here" -B "$here/build-release" -G Ninja -DCMAKE_BUILD_TYPE=Release -DEDIBROKER_BUILD_TESTS=OFF >/dev/null
cmake --build "$here/build-release" --target edibroker >/dev/null
edibroker="$here/build-release/broker/edibroker"
portal="/usr/bin/python3 $here/tools/amqp-demo/portal.py"

work="$(mktemp -d /tmp/edibroker-amqp-demo.XXXXXX)"
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
mq_port="$(free_port)"; dist_port="$(free_port)"; epmd_port="$(free_port)"
node="edibroker-demo-$$@localhost"
mkdir -p "$work/mq/home" "$work/mq/log" "$work/data" "$work/rules"
cat >"$work/mq/rabbitmq.conf" <<CONF
listeners.tcp.1 = 127.0.0.1:$mq_port
loopback_users = none
CONF
echo "[rabbitmq_amqp1_0]." >"$work/mq/enabled_plugins"
mq_env=(HOME="$work/mq/home" RABBITMQ_NODENAME="$node" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
        RABBITMQ_NODE_PORT="$mq_port" RABBITMQ_DIST_PORT="$dist_port" ERL_EPMD_PORT="$epmd_port"
        ERL_EPMD_ADDRESS=127.0.0.1 RABBITMQ_MNESIA_BASE="$work/mq/mnesia" RABBITMQ_LOG_BASE="$work/mq/log"
        RABBITMQ_LOGS=- RABBITMQ_CONFIG_FILE="$work/mq/rabbitmq.conf"
        RABBITMQ_ENABLED_PLUGINS_FILE="$work/mq/enabled_plugins" RABBITMQ_PID_FILE="$work/mq/rabbitmq.pid")

mq_pid=""; broker_pid=""
cleanup() {
  [ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null && wait "$broker_pid" 2>/dev/null || true
  if [ -n "$mq_pid" ]; then
    kill "$mq_pid" 2>/dev/null || true
    wait "$mq_pid" 2>/dev/null || true
    env "${mq_env[@]}" /usr/bin/epmd -port "$epmd_port" -kill >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "starting RabbitMQ (AMQP 1.0 plugin) on 127.0.0.1:$mq_port"
env "${mq_env[@]}" /usr/lib/rabbitmq/bin/rabbitmq-server >"$work/mq/server.log" 2>&1 &
mq_pid=$!
for _ in $(seq 1 900); do
  grep -q "Server startup complete" "$work/mq/server.log" 2>/dev/null && break
  kill -0 "$mq_pid" 2>/dev/null || { tail -20 "$work/mq/server.log"; exit 1; }
  sleep 0.1
done
grep -q "Server startup complete" "$work/mq/server.log" || { echo "RabbitMQ did not start in 90 s"; tail -20 "$work/mq/server.log"; exit 1; }
url="amqp://guest:guest@127.0.0.1:$mq_port"

# The repo's demo rules, with the portal reached over AMQP instead of its pull inbox.
cp "$here"/routing-rules/*.xml "$work/rules/"
rm "$work/rules/10-portal.xml"
cat >"$work/rules/10-portal-amqp.xml" <<RULES
<?xml version="1.0" encoding="UTF-8"?>
<routing-rules xmlns="urn:edibroker:routing-rules:1">
  <!-- edibroker on the service bus: it consumes the queues of the HER-ids it serves (Oslo's home
       care and nurse) and sends to the portal's queues. -->
  <adapter name="helsenorge" type="amqp">
    <option name="url" value="$url"/>
    <option name="her-ids" value="9100110, 9100111"/>
  </adapter>
  <rule id="helsenorge" priority="200">
    <match receiver-or-ancestor="115851"/>
    <deliver adapter="helsenorge"/>
    <option name="apprec-version" value="1.1"/>
  </rule>
</routing-rules>
RULES

say "starting edibroker with the portal as an amqp adapter instance"
"$edibroker" serve --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --data-dir "$work/data" --rules "$work/rules" \
  --set log-level=warn >"$work/broker.out" 2>"$work/broker.log" &
broker_pid=$!
for _ in $(seq 1 300); do
  grep -q "^admin listening on" "$work/broker.out" 2>/dev/null && break
  kill -0 "$broker_pid" 2>/dev/null || { cat "$work/broker.log"; exit 1; }
  sleep 0.1
done
addr="$(sed -n 's/^listening on //p' "$work/broker.out" | head -1)"
[ -n "$addr" ] || { echo "edibroker did not start"; cat "$work/broker.log"; exit 1; }
echo "edibroker on http://$addr"

say "1. the portal puts a citizen's Dialogmelding on 9100110_async"
$portal send "$url" 9100110_async "$here/tests/fixtures/messages/dialog-portal-to-oslo.xml" --from 8093244 --to 9100110

say "2. edibroker stored it and delivered it to Oslo's EPJ (Visma file catalogue)"
admin="$(sed -n 's/^admin listening on //p' "$work/broker.out" | head -1)"
msgid="$(sed -n 's:.*<MsgId>\(.*\)</MsgId>.*:\1:p' "$here/tests/fixtures/messages/dialog-portal-to-oslo.xml" | head -1)"
id=""
for _ in $(seq 1 100); do   # the AMQP hop is asynchronous: wait (bounded) until it is stored
  id="$(curl -s "http://$admin/admin/messages?msgId=$msgid" | /usr/bin/python3 -c 'import json,sys
m=json.load(sys.stdin)
print(m[0]["id"] if isinstance(m, list) and m else "")' 2>/dev/null || true)"
  [ -n "$id" ] && break
  sleep 0.1
done
[ -n "$id" ] || { echo "the message did not arrive"; cat "$work/broker.log"; exit 1; }
curl -s "http://$addr/Messages/$id/status?waitForState=delivered&timeoutMs=10000" | /usr/bin/python3 -m json.tool | sed -n '1,18p'
ls -l "$work/data/visma-oslo/out/"

say "3. the EPJ answers with an AppRec (OK)"
curl -s -X POST "http://$addr/Messages/$id/apprec/9100110" -H 'Content-Type: application/json' \
  -d '{"appRecStatus":"Ok"}'; echo

say "4. the portal takes the AppRec from 8093244_async"
$portal receive "$url" 8093244_async --timeout 15

say "5. a message without fromHerId/toHerId is refused onto the sender's _error queue"
/usr/bin/python3 - "$url" "$here/tests/fixtures/messages/dialog-portal-to-oslo.xml" "$here/tools/amqp-demo" <<'PY'
import sys, uuid
sys.path.insert(0, sys.argv[3])
from proton import Message
from proton.utils import BlockingConnection
from portal import DurableQueue
c = BlockingConnection(sys.argv[1], timeout=10)
c.create_sender("/queue/9100110_async", options=DurableQueue()).send(Message(id=str(uuid.uuid4()), subject="DIALOG_INNBYGGER_EKONTAKT",
    reply_to="8093244_async", content_type="text/plain", body=open(sys.argv[2], "rb").read(), durable=True), timeout=10)
c.close()
print("sent a message with no application properties")
PY
$portal receive "$url" 8093244_error --timeout 15

if [ "$keep" = 1 ]; then
  say "running: edibroker http://$addr, AMQP $url (Ctrl-C stops both)"
  wait "$broker_pid"
fi
say "done"
