#!/usr/bin/env bash
# Where edibroker's CPU goes per message: the benchmark's broker phase under callgrind.
#
#   tools/bench/profile.sh [--messages N] [--rate R] [--no-build] [--keep]
#
# Starts the vendor receiver and edibroker (Release, epoll backend, build-profile) under valgrind --tool=callgrind,
# zeroes the counters once it has taken 40 warm-up messages (start-up is not counted), sends N benchmark messages
# (default 800) at R msg/s (default 40: callgrind runs the broker ~50x slower), checks they were
# all delivered once, dumps the counters and prints instructions per message for each part
# (store writer, checkpointer, validation, intake, the http-push thread, logging, malloc). Instruction counts are repeatable where
# seconds on this machine are not (limits.md: HTTP figures move 10-20 % between periods), so this
# is the tool for before/after comparisons of a change; the kernel's share is not counted.
# The callgrind file is kept as build-profile/profile.callgrind for callgrind_annotate/kcachegrind.
set -euo pipefail

here="$(cd "$(dirname "$0")/../.." && pwd)"
messages=800 rate=40 build=1 keep=0
while (($#)); do
  case "$1" in
    --messages) messages="$2"; shift ;;
    --rate) rate="$2"; shift ;;
    --no-build) build=0 ;;
    --keep) keep=1 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "profile.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

"$here/tools/install-deps.sh"
if ! command -v valgrind >/dev/null 2>&1; then
  echo "installing: valgrind"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq valgrind >/dev/null
fi

# shellcheck source=tools/bench/lib.sh
source "$here/tools/bench/lib.sh"
# The epoll build, in build-profile: under valgrind 3.19 Asio's io_uring backend stalls (the
# warm-up's requests waited minutes, half of them failed). The user-space counts below hardly
# depend on the backend; the system calls it saves are kernel time, which callgrind does not count.
bench_setup profile build-profile -DEDIBROKER_IO_URING=OFF  # (unless --no-build) BROKER, BENCH, a work folder

out="$work/callgrind.out"
start_broker valgrind --tool=callgrind --callgrind-out-file="$out"
# A few messages first, so that what every I/O thread builds once (its validator's grammar, 9 % of
# the counts of an 800-message profile when it fell inside the window) is not counted.
"$BENCH" send --port "$bport" --connections 8 --max 40 --seconds 120 --rate "$rate" \
  --receiver "127.0.0.1:$rport" --drain 120 --name warm-up >/dev/null
callgrind_control -z "$bpid" >/dev/null
echo "edibroker listens on $bport under callgrind; sending $messages messages at $rate msg/s" >&2
"$BENCH" send --port "$bport" --connections 8 --max "$messages" --seconds $((messages / rate + 60)) \
  --rate "$rate" --receiver "127.0.0.1:$rport" --drain 120 --name profile >"$work/send.json"
sent="$(grep -o '"accepted":[0-9]*' "$work/send.json" | cut -d: -f2)"
callgrind_control -d "$bpid" >/dev/null
kill -TERM "$bpid"; wait "$bpid" 2>/dev/null || true
dump="$(ls -t "$out".* 2>/dev/null | head -n1)"
[ -n "$dump" ] || { echo "profile.sh: callgrind wrote no dump" >&2; exit 1; }
cp "$dump" "$bdir/profile.callgrind"

callgrind_annotate --inclusive=yes --threshold=100 "$dump" >"$work/inclusive.txt" 2>/dev/null
python3 - "$sent" "$work/inclusive.txt" <<'PY'
import re, sys
n = int(sys.argv[1])
def rows(path):
    out, total = [], 0
    for line in open(path):
        m = re.match(r'\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)', line)
        if not m:
            continue
        v = int(m.group(1).replace(',', ''))
        if 'PROGRAM TOTALS' in m.group(2):
            total = v
        else:
            out.append((v, m.group(2)))
    return total, out
total, inc = rows(sys.argv[2])
def part(pattern):
    # The largest inclusive count among functions matching 'pattern' (an entry point, not a sum
    # over its callees, which would count them twice).
    vals = [v for v, name in inc if re.search(pattern, name)]
    return max(vals) if vals else 0
parts = [
    ('everything (user space)', None),
    ('store writer thread', r'sqlite_store::run_writer\(\)'),
    ('  insert a message', r'writer_conn::insert_message\('),
    ('  delivered (set_delivered_state)', r'writer_conn::set_delivered_state\('),
    ('  commit', r'writer_conn::commit\(\)'),
    ('WAL checkpointer thread', r'sqlite_store::run_checkpointer\(\)'),
    ('intake (validate, route, answer)', r'broker::engine::intake\('),
    ('  validation (Xerces + handlers)', r'validator_impl::run\('),
    ('http-push thread', r'http_push::adapter::run\(\) \['),
    ('logging', r'broker::log::emit\('),
    # The allocator's entry points, summed: glibc's, or jemalloc's (the broker's default).
    ('malloc + free', r'(malloc\.c:(malloc|free) |\?\?\?:(malloc|free|calloc|realloc|aligned_alloc|posix_memalign'
                      r'|sdallocx|operator new[^\[]*|operator delete[^\[]*) \[.*libjemalloc)'),
]
print(f'{n} messages delivered; instructions per message (callgrind, counters zeroed after start-up and 40 warm-up messages)')
for label, pat in parts:
    if pat and 'malloc' in pat:
        v = sum(val for val, name in inc if re.search(pat, name))
    else:
        v = total if pat is None else part(pat)
    print(f'  {label:<36} {v / max(n, 1):>12,.0f}')
PY
echo "callgrind file: $bdir/profile.callgrind (callgrind_annotate --inclusive=yes, kcachegrind)"
