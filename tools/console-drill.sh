#!/usr/bin/env bash
# Console drill: drives the real admin console of carteira-server on a
# terminal (tmux) the way an operator does, and checks what the screen shows.
#
#   tools/console-drill.sh [path/to/carteira-server]
#
# Needs tmux and bash (the peer talks over bash's /dev/tcp). Every wait polls
# the tmux pane against a deadline; there are no fixed sleeps.
set -u

server=${1:-.build/debug/carteira-server}
if [[ ! -x $server ]]; then
    echo "console drill: no server binary at $server (build it, or pass its path)" >&2
    exit 2
fi
command -v tmux >/dev/null || { echo "console drill: tmux is not installed" >&2; exit 2; }
server=$(cd "$(dirname "$server")" && pwd)/$(basename "$server")

work=$(mktemp -d "${TMPDIR:-/tmp}/carteira-console-drill.XXXXXX")
session="carteira-drill-$$"
passed=0
failed=0

cleanup() {
    exec 3>&- 3<&- 2>/dev/null
    tmux kill-session -t "$session" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

pass() { passed=$((passed + 1)); echo "ok   - $1"; }
fail() {
    failed=$((failed + 1))
    echo "FAIL - $1"
    echo "---- pane ----"
    pane | sed 's/^/    /'
    echo "--------------"
}

pane() { tmux capture-pane -p -t "$session" 2>/dev/null; }

# wait_for DESCRIPTION SECONDS COMMAND...: polls COMMAND until it succeeds
# or the deadline passes.
wait_for() {
    local description=$1 seconds=$2
    shift 2
    local deadline=$((SECONDS + seconds))
    while ((SECONDS < deadline)); do
        if "$@"; then return 0; fi
        sleep 0.1
    done
    return 1
}

# The last non-empty line of the pane: where the prompt and typed text are.
last_line() { pane | sed '/^[[:space:]]*$/d' | tail -n 1; }
pane_has() { pane | grep -qF -- "$1"; }
line_is() { [[ $(last_line | sed 's/[[:space:]]*$//') == "$1" ]]; }
check() {
    local description=$1
    shift
    if wait_for "$description" 10 "$@"; then pass "$description"; else fail "$description"; fi
}

# 1. Start the server with its console on a tmux terminal.
tmux new-session -d -s "$session" -x 200 -y 50 \
    "cd '$work' && CARTEIRA_HISTORY='$work/history' '$server' --console --port 0 --journal '$work/journal'; echo \$? > '$work/exit-code'; sleep 600"
check "the console shows its prompt" line_is "carteira>"

port=$(pane | sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' | head -n 1)
if [[ -n $port ]]; then pass "the server printed the port it bound ($port)"; else fail "the server printed the port it bound"; fi

# 2. A peer registers a machine over TCP.
machine="drill-$$"
if [[ -n $port ]] && exec 3<>"/dev/tcp/127.0.0.1/$port"; then
    printf 'REGISTER|%s\n' "$machine" >&3
    if IFS= read -r -t 10 answer <&3 && [[ $answer == "OK|$machine|"* ]]; then
        pass "a peer registered $machine"
    else
        fail "a peer registered $machine (answer: ${answer:-none})"
    fi
else
    fail "a peer connected to the server"
fi

# 3. Tab completes command names: `mach` becomes `machine` (the longest common
# prefix of machine and machines); two more Tabs list both.
tmux send-keys -t "$session" 'mach' Tab
check "Tab completes mach to machine" line_is "carteira> machine"
tmux send-keys -t "$session" Tab Tab
listed() { pane | grep -qE '^machine +machines *$'; }
check "Tab again lists machine and machines" listed
tmux send-keys -t "$session" 's'
check "the line shows machines" line_is "carteira> machines"

# 4. Enter runs it: a table with a header and the new machine's row.
tmux send-keys -t "$session" Enter
header_shown() { pane | grep -qE '^machine +key +balance +sessions +registered at +last transfer at'; }
check "machines prints the table header" header_shown
row_shows_machine() { pane | grep -qE "^$machine +[0-9a-f-]{36} +R\\$ 100,00 +1 "; }
check "machines shows $machine with R\$ 100,00 and its session" row_shows_machine
check "the prompt comes back" line_is "carteira>"

# 5. Up recalls the previous command.
tmux send-keys -t "$session" Up
check "Up recalls machines" line_is "carteira> machines"

# 6. Ctrl-C clears the line instead of stopping the server; on an empty line
# it says how to stop.
tmux send-keys -t "$session" C-c
check "Ctrl-C clears the recalled line" line_is "carteira>"
tmux send-keys -t "$session" C-c
check "Ctrl-C on an empty line reminds how to stop" pane_has "(type quit or shutdown to stop the server"
check "the prompt is back after Ctrl-C" line_is "carteira>"

# 7. \x on shows each row as a record, as psql's expanded display.
tmux send-keys -t "$session" '\x on' Enter
check "\\x on says so" pane_has "Expanded display is on."
tmux send-keys -t "$session" 'machines' Enter
check "machines then shows a record" pane_has "-[ RECORD 1 ]"

# 8. shutdown with a session open asks to be typed again, and is not kept
# in the history.
tmux send-keys -t "$session" 'shutdown' Enter
check "shutdown with a session open asks again" pane_has "1 session is open; type shutdown again"

# 9. quit stops the server, which exits 0.
tmux send-keys -t "$session" 'quit' Enter
exited() { [[ -s $work/exit-code ]]; }
if wait_for "the server exits" 15 exited; then
    code=$(cat "$work/exit-code")
    if [[ $code == 0 ]]; then pass "quit stopped the server with exit status 0"; else fail "quit stopped the server (exit status $code)"; fi
else
    fail "quit stopped the server"
fi
if [[ -s $work/history ]] && grep -qx "machines" "$work/history"; then
    pass "the history file kept the commands"
else
    fail "the history file kept the commands"
fi

if [[ -s $work/history ]] && ! grep -qxE "shutdown|quit" "$work/history"; then
    pass "shutdown and quit are not in the history"
else
    fail "shutdown and quit are not in the history"
fi

echo "console drill: $passed passed, $failed failed"
((failed == 0))
