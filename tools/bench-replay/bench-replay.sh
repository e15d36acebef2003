#!/usr/bin/env bash
# Replay benchmark: builds carteira-server in release, writes a journal of
# 1,000,000 transfers among 10,000 machines (make-journal.py), then times,
# on the same file in the same run, holding the build lock so no build
# competes for the 2 cores:
#   openssl dgst -sha256 FILE                   (the baseline: hashing it once)
#   carteira-server journal verify DIR
#   carteira-server journal replay DIR
#   server start-up until the first PING is answered
# and reports the server's resident memory after start-up (VmRSS, VmHWM).
# Every figure is the median of RUNS runs (3 by default), with its ratio to
# openssl.
#
#   tools/bench-replay/bench-replay.sh
#   RUNS=5 MACHINES=10000 TRANSFERS=1000000 tools/bench-replay/bench-replay.sh
#   SERVER=path/to/carteira-server tools/bench-replay/bench-replay.sh   # skip the build
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
runs=${RUNS:-3}
machines=${MACHINES:-10000}
transfers=${TRANSFERS:-1000000}
lock=${BUILD_LOCK:-/tmp/carteira-build.lock}
work=$(mktemp -d "${TMPDIR:-/tmp}/carteira-bench-replay.XXXXXX")
server_pid=""

cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

log() { printf '%s\n' "$*" >&2; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", b - a }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

if [ -z "${SERVER:-}" ]; then
    log "building carteira-server (release)"
    (cd "$root" && flock "$lock" swift build -c release --product carteira-server >&2)
    SERVER="$(cd "$root" && swift build -c release --show-bin-path)/carteira-server"
fi

mkdir -p "$work/journal"
journal="$work/journal/ledger.journal"
log "writing $transfers transfers among $machines machines"
python3 "$here/make-journal.py" "$journal" --machines "$machines" --transfers "$transfers" >&2
bytes=$(stat -c %s "$journal")

# One start-up: prints "seconds rss_kib hwm_kib". The server's output is
# read as it comes, with a blocking `read`: polling its log (forking `date`
# and `sed` every 2 ms) kept processes runnable beside the replay it timed,
# and start-up measured up to 1 s slower than `journal verify`.
startup() {
    local start end line port="" reply="" out
    : >"$work/server.log"
    start=$(now)
    exec {out}< <(exec "$SERVER" --no-console --host 127.0.0.1 --port 0 --journal "$work/journal" \
        --log-level warning 2>&1 </dev/null)
    server_pid=$!
    while IFS= read -r -t 120 -u "$out" line; do
        printf '%s\n' "$line" >>"$work/server.log"
        case "$line" in
            *"listening on 127.0.0.1:"*)
                port=${line#*listening on 127.0.0.1:}
                port=${port%% *}
                break
                ;;
        esac
    done
    [ -n "$port" ] || { log "the server exited, or printed no listening line within 120 s"; cat "$work/server.log" >&2; exit 1; }
    exec 3<>"/dev/tcp/127.0.0.1/$port"
    printf 'PING\n' >&3
    read -r -t 5 reply <&3 || reply=""
    exec 3>&-
    end=$(now)
    [ "$reply" = "OK|PONG" ] || { log "unexpected answer to PING: $reply"; exit 1; }
    local rss hwm
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$server_pid/status")
    hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$server_pid/status")
    kill -TERM "$server_pid"
    cat <&"$out" >>"$work/server.log"  # until the server exits and closes it
    exec {out}<&-
    wait "$server_pid" || true
    server_pid=""
    echo "$(elapsed "$start" "$end") $rss $hwm"
}

timed() {
    local start end
    start=$(now)
    "$@" >/dev/null
    end=$(now)
    elapsed "$start" "$end"
}

log "timing (holding $lock), $runs runs each"
exec 9>"$lock"
flock 9
# The file at rest: written back to the disk, so that no flush of its dirty
# pages runs beside the timed commands (it competed with the two-threaded
# scan for the cores, not with single-threaded openssl), and in the page
# cache for every contestant.
sync "$journal"
cat "$journal" >/dev/null
: >"$work/openssl" >"$work/verify" >"$work/replay" >"$work/startup"
for _ in $(seq 1 "$runs"); do
    timed openssl dgst -sha256 "$journal" >>"$work/openssl"
    timed "$SERVER" journal verify "$work/journal" >>"$work/verify"
    timed "$SERVER" journal replay "$work/journal" >>"$work/replay"
    startup >>"$work/startup"
done
flock -u 9

openssl_s=$(median <"$work/openssl")
verify_s=$(median <"$work/verify")
replay_s=$(median <"$work/replay")
startup_s=$(awk '{ print $1 }' "$work/startup" | median)
rss_kib=$(awk '{ print $2 }' "$work/startup" | median)
hwm_kib=$(awk '{ print $3 }' "$work/startup" | median)

echo "journal: $((1 + machines + transfers)) lines, $bytes bytes; median of $runs runs"
echo
echo "| what | seconds | × openssl |"
echo "| --- | ---: | ---: |"
echo "| \`openssl dgst -sha256\` | $openssl_s | 1× |"
echo "| \`journal verify\` | $verify_s | $(ratio "$verify_s" "$openssl_s")× |"
echo "| \`journal replay\` | $replay_s | $(ratio "$replay_s" "$openssl_s")× |"
echo "| start-up to first \`PONG\` | $startup_s | $(ratio "$startup_s" "$openssl_s")× |"
echo
echo "server after start-up: VmRSS $((rss_kib / 1024)) MiB, VmHWM $((hwm_kib / 1024)) MiB"
echo "all runs (s): openssl $(tr '\n' ' ' <"$work/openssl")| verify $(tr '\n' ' ' <"$work/verify")| replay $(tr '\n' ' ' <"$work/replay")| start-up $(awk '{ printf "%s ", $1 }' "$work/startup")"
