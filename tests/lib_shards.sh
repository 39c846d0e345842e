# Helpers for the integration tests of sharded sinks (it_shards, it_netns_shards), sourced
# after tests/lib.sh and tests/lib_fault.sh: N tally-sink processes, one per shard, each
# with its own inbound endpoint, feed, totals file (its part) and state folder; workers
# and the ventilator given the shards' endpoints as one comma-separated --sink list.
# shellcheck disable=SC2034  # SHARD_PIDS, SINK, ... are for the sourcing tests

# port47 [pair]: sets PORT to a free port of these tests' range (see reserve_port).
port47() {
  reserve_port 47000 47998 "$@"
}

# shard_endpoints N: loopback endpoints for N shards and a ventilator. Sets VENT, SINKS
# and FEEDS (arrays, by shard index), SINK (the comma-separated list of SINKS, in shard
# order: what workers and the ventilator take as --sink) and NSHARDS.
shard_endpoints() {
  local i
  NSHARDS=$1
  SINKS=()
  FEEDS=()
  port47
  VENT="tcp://127.0.0.1:$PORT"
  for ((i = 0; i < NSHARDS; i++)); do
    port47
    SINKS+=("tcp://127.0.0.1:$PORT")
    port47 pair
    FEEDS+=("tcp://127.0.0.1:$PORT")
  done
  SINK=$(join_list "${SINKS[@]}")
}

# join_list ITEM...: the items joined by commas.
join_list() {
  local IFS=,
  echo "$*"
}

# start_shard I LOG [ARGS...]: tally-sink for shard I on ${SINKS[I]} and ${FEEDS[I]},
# its part $WORK/shardI/part.tsv and its state folder $WORK/shardI/state; stdout and
# stderr to LOG (appended: a restarted shard's log goes on). Sets SHARD_PIDS[I].
start_shard() {
  local i=$1 log=$2
  shift 2
  mkdir -p "$WORK/shard$i"
  start "$TALLY_BIN/tally-sink" --bind "${SINKS[$i]}" --publish "${FEEDS[$i]}" \
    --output "$(shard_part "$i")" --state-dir "$WORK/shard$i/state" "$@" >> "$log" 2>&1
  SHARD_PIDS[i]=$LAST_PID
}

# shard_part I: shard I's totals file.
shard_part() { echo "$WORK/shard$1/part.tsv"; }

# all_parts: every shard's totals file, in shard order.
all_parts() {
  local i
  for ((i = 0; i < NSHARDS; i++)); do shard_part "$i"; done
}

# start_shard_watches NAME: tally-watch --json on every shard's feed, to
# $WORK/NAME.feedI.json. Sets WATCH_PIDS.
start_shard_watches() {
  local i
  WATCH_PIDS=()
  for ((i = 0; i < NSHARDS; i++)); do
    start "$TALLY_BIN/tally-watch" --json "${FEEDS[$i]}" > "$WORK/$1.feed$i.json" \
      2> "$WORK/$1.feed$i.err"
    WATCH_PIDS+=("$LAST_PID")
  done
  sleep 0.5  # the subscriptions reach the sinks (ZeroMQ's slow joiner)
}

stop_shard_watches() {
  local pid
  for pid in "${WATCH_PIDS[@]}"; do stop_pid "$pid" 2 || true; done
}

# done_field FILE KEY: the value of KEY in the last "done" message of tally-watch --json
# output FILE; empty when there is none.
done_field() {
  gawk -v key="$2" '/^\{"topic":"done"/ {
          v = ""
          if (match($0, "\"" key "\":[0-9]+")) v = substr($0, RSTART + length(key) + 3, RLENGTH - length(key) - 3)
        }
        END { print v }' "$1"
}

# check_parts TITLE NAME: the shards' parts (all_parts) as a sharded job must leave them:
# each sorted like a totals file, no key twice in one part nor in two parts, none empty
# and none with more than half the keys (the key hash splits them about evenly); merged
# by `tally merge` into $WORK/NAME.merged.tsv, equal to sort(1) of their concatenation
# and to gawk's totals ($EXPECTED).
check_parts() {
  local title=$1 name=$2 part i ok=yes keys total status
  for part in $(all_parts); do
    [ -f "$part" ] || { ok=no; echo "missing part: $part"; }
  done
  check "$title: every shard wrote its part" test "$ok" = yes
  [ "$ok" = yes ] || return 0
  ok=yes
  for part in $(all_parts); do
    sort -c -t"$(printf '\t')" -k2,2nr -k1,1 "$part" 2> "$WORK/$name.sortcheck" ||
      { ok=no; echo "$part: $(cat "$WORK/$name.sortcheck")"; }
  done
  check "$title: each part is sorted as a totals file" test "$ok" = yes
  cut -f1 $(all_parts) | sort | uniq -d > "$WORK/$name.twice"
  check "$title: no key is in two parts, or twice in one ($(wc -l < "$WORK/$name.twice") are)" \
    test ! -s "$WORK/$name.twice"
  head -3 "$WORK/$name.twice"
  total=$(wc -l < "$EXPECTED")
  i=0
  for part in $(all_parts); do
    keys=$(wc -l < "$part")
    echo "$title: shard $i holds $keys of $total keys"
    check "$title: shard $i holds some keys, not most ($keys of $total)" \
      test "$keys" -gt 0 -a $((keys * 2)) -le "$total"
    i=$((i + 1))
  done
  "$TALLY_BIN/tally" merge --progress none -o "$WORK/$name.merged.tsv" $(all_parts) \
    > "$WORK/$name.merge.out" 2>&1 && status=0 || status=$?
  check "$title: tally merge of the parts exits 0" test "$status" -eq 0
  [ "$status" -eq 0 ] || cat "$WORK/$name.merge.out"
  cat $(all_parts) | sort_totals > "$WORK/$name.concat.tsv"
  same_file "$title: tally merge equals sort of the parts' concatenation" \
    "$WORK/$name.concat.tsv" "$WORK/$name.merged.tsv"
  same_file "$title: merged totals equal gawk's" "$EXPECTED" "$WORK/$name.merged.tsv"
}

# set_aside_parts NAME: moves the parts to $WORK/NAME.partI.tsv for the next job.
set_aside_parts() {
  local i
  for ((i = 0; i < NSHARDS; i++)); do
    mv "$(shard_part "$i")" "$WORK/$1.part$i.tsv" 2> /dev/null || true
  done
}
