# Shared helpers for Tally's integration tests (sourced by tests/it_*.sh).
# They start the real programs from $TALLY_BIN on loopback or ipc:// endpoints and
# compare totals with an independent computation (gawk + sort).
set -euo pipefail
: "${TALLY_BIN:?TALLY_BIN must name the folder of the built programs}"
: "${TALLY_SOURCE_DIR:?TALLY_SOURCE_DIR must name the source tree}"
export LC_ALL=C
WORK=$(mktemp -d /tmp/tally-it-XXXXXX)
PIDS=()
PASSED=0
FAILED=0

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  sleep 0.3
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# Starts a program in the background, remembers its pid in $LAST_PID.
start() {
  "$@" &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Totals of n-gram 2012/2009 files (key = field 1, count = field 3), in the totals
# file's order: total descending, then key bytes ascending.
expected_ngram() {
  gawk -F'\t' '{s[$1]+=$3} END{for(k in s) printf "%s\t%d\n", k, s[k]}' "$@" | sort_totals
}

# Totals of text files: every white-space separated word counts 1.
expected_text() {
  gawk 'BEGIN{RS="[ \t\n\r\v\f]+"} length($0){s[$0]++} END{for(k in s) printf "%s\t%d\n", k, s[k]}' "$@" |
    sort_totals
}

sort_totals() { sort -t"$(printf '\t')" -k2,2nr -k1,1; }

# check NAME CONDITION...: records a pass or a failure with its name.
check() {
  local name=$1; shift
  if "$@"; then
    PASSED=$((PASSED + 1)); echo "ok: $name"
  else
    FAILED=$((FAILED + 1)); echo "FAIL: $name"
  fi
}

# same_file NAME EXPECTED ACTUAL: files byte-identical (shows a diff excerpt if not).
same_file() {
  local name=$1 expected=$2 actual=$3
  if cmp -s "$expected" "$actual"; then
    PASSED=$((PASSED + 1)); echo "ok: $name ($(wc -l < "$expected") keys)"
  else
    FAILED=$((FAILED + 1)); echo "FAIL: $name"
    diff "$expected" "$actual" | head -10 || true
  fi
}

# Waits up to $2 seconds (default 30) for pid $1 to exit; returns its status, or 124.
wait_pid() {
  local pid=$1 limit=${2:-30} i
  for ((i = 0; i < limit * 10; i++)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid"; return $?
    fi
    sleep 0.1
  done
  return 124
}

# Prints the closing line and exits non-zero on any failure.
finish() {
  echo "$PASSED passed, $FAILED failed"
  [ "$FAILED" -eq 0 ]
}

# True when no process of this build's services is running.
no_leftovers() {
  ! pgrep -f "^$TALLY_BIN/tally-(sink|worker|ventilator)" > /dev/null
}
