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
  [[ -n ${TALLY_KEEP_WORK:-} ]] && echo "kept $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT

# Starts a program in the background, remembers its pid in $LAST_PID.
start() {
  "$@" &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}

# pick_ports COUNT FIRST LAST [pair] [TAKEN...]: prints COUNT free TCP ports on
# 127.0.0.1, picked at random from FIRST to LAST, none of them in TAKEN or the same as or
# next to another; with "pair", the port above each is free and not in TAKEN either (a
# sink's feed, beside which it binds its snapshot service: the feed's port + 1).
pick_ports() {
  python3 - "$@" <<'PYEOF'
import random, socket, sys
want, first, last = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
pair = len(sys.argv) > 4 and sys.argv[4] == "pair"
taken = set(int(p) for p in sys.argv[5:])
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
        return True
    except OSError:
        return False
    finally:
        s.close()
ports = list(range(first, last + 1))
random.shuffle(ports)
found = []
for p in ports:
    if len(found) == want:
        break
    if {p - 1, p, p + 1} & taken or (pair and p + 1 in taken):
        continue
    if free(p) and (not pair or free(p + 1)):
        found.append(p)
        taken |= {p, p + 1} if pair else {p}
if len(found) < want:
    sys.exit("no %d free ports in %d-%d" % (want, first, last))
print(" ".join(map(str, found)))
PYEOF
}

# free_ports N [pair]: N free TCP ports on 127.0.0.1 (see pick_ports), picked below the
# kernel's ephemeral range (net.ipv4.ip_local_port_range), never from it: a port from
# there that a test checks and hands back can be taken by any outgoing connection
# (another process connecting somewhere) before the test binds it.
free_ports() {
  local low _
  read -r low _ < /proc/sys/net/ipv4/ip_local_port_range 2> /dev/null || low=32768
  pick_ports "$1" "$(( low > 12000 ? 10000 : 1024 ))" "$(( low - 2 ))" "${2:-}"
}

# A free TCP port on 127.0.0.1 (see free_ports).
free_port() {
  free_ports 1
}

# A free TCP port on 127.0.0.1 whose next port is free too (see free_ports).
free_feed_port() {
  free_ports 1 pair
}

# Ports given by reserve_port in this run.
RESERVED_PORTS=()

# reserve_port FIRST LAST [pair]: sets PORT to a free TCP port on 127.0.0.1 from FIRST to
# LAST, never one given before in this run; with "pair", the port above it is free and
# never given either (a sink's feed: its snapshot service binds the feed's port + 1).
# Not to be called in $(...), which would lose RESERVED_PORTS.
reserve_port() {
  local port
  port=$(pick_ports 1 "$1" "$2" "${3:-none}" "${RESERVED_PORTS[@]}") || return 1
  RESERVED_PORTS+=("$port")
  [ "${3:-}" != pair ] || RESERVED_PORTS+=("$((port + 1))")
  PORT=$port
}

# gen_words FILE KEYS LENGTH SEED: text of KEYS distinct words of LENGTH bytes, each 1 to 3
# times, ten words a line, in random order.
gen_words() {
  "$PY" - "$@" <<'PYEOF'
import random, sys
path, keys, length, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed)
words = []
for i in range(keys):
    word = "w%07d" % i
    words += [word + "abcdefghijklmnopqrstuvwxyz"[i % 26] * (length - len(word))] * rng.randint(1, 3)
rng.shuffle(words)
with open(path, "w") as out:
    for i in range(0, len(words), 10):
        out.write(" ".join(words[i:i + 10]) + "\n")
PYEOF
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

# ---------------------------------------------------------------------------------------
# Helpers for the larger integration tests (it_pipeline, it_edge, it_large, it_interrupt,
# it_cli).

# Debian's python3, which has python3-zmq and python3-msgpack (not whatever is first on PATH).
PY=/usr/bin/python3

# scaled N: N for the plain build, a quarter of it (at least 1) for the sanitized build,
# whose programs run several times slower.
scaled() {
  if [ "${TALLY_VARIANT:-plain}" = sanitize ]; then
    echo $(( ($1 + 3) / 4 ))
  else
    echo "$1"
  fi
}

# gen_ngram2012 DIR NFILES MB [SEED]: writes NFILES n-gram 2012 files (DIR/part-NN.tsv,
# MB megabytes in all) shaped like the real corpus: each key's years on consecutive lines
# (runs of 3 to 90 lines, about 1 KB), keys of one to three words (some with UTF-8 bytes)
# drawn from one pool of 60,000, so the same keys appear in every file. Deterministic for
# a seed; whole runs are built by one C-level replace, so 300 MB take a few seconds.
gen_ngram2012() {
  "$PY" - "$@" <<'PYEOF'
import os, random, sys
out_dir, nfiles, total_mb = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
rng = random.Random(int(sys.argv[4]) if len(sys.argv) > 4 else 1)
syllables = ["ka", "lo", "mi", "ne", "ru", "ta", "shi", "ve", "zo", "qua", "an", "el", "or",
             "ix", "um", "\u00e9", "\u00fc"]
def word():
    return "".join(rng.choice(syllables) for _ in range(rng.randint(1, 4)))
keys = set()
while len(keys) < 60000:
    keys.add(" ".join(word() for _ in range(rng.choice((1, 1, 1, 2, 3)))))
keys = sorted(keys)
templates = []  # a run of years with "\0" where the key goes
for _ in range(1024):
    years = rng.randint(3, 90)
    start = rng.randint(1500, 2009 - years)
    templates.append("".join("\0\t%d\t%d\t%d\n" % (y, rng.randint(1, 9999), rng.randint(1, 99))
                             for y in range(start, start + years)))
per_file = int(total_mb * 1e6 / nfiles)
os.makedirs(out_dir, exist_ok=True)
for f in range(nfiles):
    parts, size = [], 0
    while size < per_file:
        run = templates[rng.randrange(len(templates))].replace("\0", keys[rng.randrange(len(keys))])
        parts.append(run)
        size += len(run)
    with open(os.path.join(out_dir, "part-%02d.tsv" % f), "w", encoding="utf-8") as out:
        out.write("".join(parts))
PYEOF
}

# summary_numbers FILE: "LINES BAD FILTERED KEYS SUM" from the summary line that tally run
# prints ("... N lines (B bad, F filtered out): K keys, sum S, ..."); empty when absent.
summary_numbers() {
  sed -n -E 's/.* ([0-9]+) lines \(([0-9]+) bad, ([0-9]+) filtered out\): ([0-9]+) keys, sum ([0-9]+),.*/\1 \2 \3 \4 \5/p' \
    "$1" | head -1
}

# sum_totals FILE: the exact sum of the TOTAL column of a totals file.
sum_totals() {
  "$PY" -c 'import sys; print(sum(int(l.rsplit(b"\t", 1)[1]) for l in open(sys.argv[1], "rb")))' "$1"
}

# wait_until SECONDS COMMAND...: polls COMMAND every 0.1 s until it succeeds (returns 0)
# or SECONDS pass (returns 1).
wait_until() {
  local limit=$1 i; shift
  for ((i = 0; i < limit * 10; i++)); do
    if "$@"; then return 0; fi
    sleep 0.1
  done
  return 1
}

# now: seconds since the epoch, with microseconds.
now() { echo "$EPOCHREALTIME"; }

# elapsed START: seconds since START (from now), with two decimals.
elapsed() { gawk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.2f", b - a}'; }
