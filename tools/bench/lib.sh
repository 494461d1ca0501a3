# Shared by tools/bench/run.sh and tools/bench/profile.sh (sourced, not run): the bounded wait for
# a process's line, and the vendor receiver + edibroker setup that both load.
#
# bench_setup NAME [BUILD_DIR [CMAKE_ARG...]]: needs here, build (1: build) and keep (1: keep the
# work folder); sets bdir (BUILD_DIR under the repo, default build-bench, configured with the extra
# CMAKE_ARGs), BROKER, BENCH, work (/tmp/edibroker-NAME.XXXXXX: ext4 on the virtio disk here, as in
# limits.md) and pids (processes to stop), and stops them and removes work on exit.
# start_broker sets rpid, rport, bpid, bport, aport.

bench_setup() {
  bdir="$here/${2:-build-bench}"
  local extra=("${@:3}")
  if ((build)); then
    # Release; no -Werror: GCC 12 at -O3 warns falsely (-Wrestrict) inside libstdc++. The tests stay
    # configured as they are (only the two targets below are built).
    cmake -S "$here" -B "$bdir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DEDIBROKER_BUILD_BENCH=ON "${extra[@]}" >/dev/null
    cmake --build "$bdir" -j "$(nproc)" --target edibroker edibroker-bench | grep -v -e '^\[' -e 'Re-checking' || true
  fi
  BROKER="$bdir/broker/edibroker"
  BENCH="$bdir/tools/bench/edibroker-bench"
  work="$(mktemp -d "/tmp/edibroker-$1.XXXXXX")"
  pids=()
  trap bench_cleanup EXIT
}

bench_cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if ((keep)); then echo "kept $work"; else rm -rf "$work"; fi
}

# Wait (bounded: tries x 50 ms) until a file has a line matching a pattern; print the line.
wait_line() {
  local file="$1" pattern="$2" pid="$3" tries="${4:-400}"
  for _ in $(seq 1 "$tries"); do
    if grep -m1 -e "$pattern" "$file" 2>/dev/null; then return 0; fi
    kill -0 "$pid" 2>/dev/null || { echo "process $pid died; see $file" >&2; return 1; }
    sleep 0.05
  done
  echo "timed out waiting for '$pattern' in $file" >&2
  return 1
}

# start_broker [WRAPPER...]: the receiver standing for the vendor, a registry and rules that route
# the benchmark message to it by http-push, and edibroker (defaults: synchronous=FULL, group commit
# 256) started under WRAPPER (e.g. valgrind) if given.
start_broker() {
  "$BENCH" receive --port 0 >"$work/receiver.out" 2>&1 &
  rpid=$!; pids+=("$rpid")
  rport="$(wait_line "$work/receiver.out" 'receiving on' "$rpid" | sed 's/.*://')"

  mkdir -p "$work/rules"
  cat >"$work/registry.xml" <<'XML'
<Registry xmlns="urn:edibroker:registry:1">
  <CommunicationParty><HerId>115851</HerId><Name>Direktoratet for e-helse</Name><Type>Organization</Type>
    <Municipality><CodeValue>0301</CodeValue></Municipality></CommunicationParty>
  <CommunicationParty><HerId>8093244</HerId><Name>Helsenorge.no</Name><Type>Service</Type>
    <ParentHerId>115851</ParentHerId><Municipality><CodeValue>0301</CodeValue></Municipality>
    <Adapter>portal-inbox</Adapter></CommunicationParty>
  <CommunicationParty><HerId>9100100</HerId><Name>Oslo kommune</Name><Type>Organization</Type>
    <Municipality><CodeValue>0301</CodeValue></Municipality></CommunicationParty>
  <CommunicationParty><HerId>9100110</HerId><Name>Hjemmetjenesten Grunerlokka</Name><Type>Service</Type>
    <ParentHerId>9100100</ParentHerId><Municipality><CodeValue>0301</CodeValue></Municipality>
    <Adapter>vendor</Adapter></CommunicationParty>
</Registry>
XML
  cat >"$work/rules/bench.xml" <<XML
<routing-rules xmlns="urn:edibroker:routing-rules:1">
  <adapter name="portal-inbox" type="pull"/>
  <adapter name="vendor" type="http-push">
    <option name="url" value="http://127.0.0.1:$rport/vendor"/>
    <option name="timeout-ms" value="10000"/>
  </adapter>
  <rule id="oslo-vendor" priority="100">
    <match receiver-or-ancestor="9100100"/>
    <deliver adapter="vendor"/>
  </rule>
  <rule id="portal" priority="100">
    <match receiver-or-ancestor="115851"/>
    <deliver adapter="portal-inbox"/>
  </rule>
</routing-rules>
XML
  "$@" "$BROKER" serve --listen 127.0.0.1:0 --data-dir "$work/data" --rules "$work/rules" \
    --registry "$work/registry.xml" >"$work/broker.out" 2>"$work/broker.log" &
  bpid=$!; pids+=("$bpid")
  # Under valgrind the start takes a while: wait up to 60 s.
  bport="$(wait_line "$work/broker.out" '^listening on' "$bpid" 1200 | sed 's/.*://')"
  # The admin listener (/metrics: the load generator reads the store's commit counters there).
  aport="$(wait_line "$work/broker.out" '^admin listening on' "$bpid" 200 | sed 's/.*://')"
}
