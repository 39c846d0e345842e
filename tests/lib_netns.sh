# Helpers for the integration tests on network namespaces (it_netns, it_netns_shards),
# sourced after tests/lib.sh: namespaces stand for machines on one LAN, each joined by a
# veth pair to a bridge in one more namespace (the "switch"). Addresses exist only on the
# veths inside the namespaces made here; no interface is added to the machine's own
# namespace. The namespaces go on exit.
# shellcheck disable=SC2034  # SWITCH is for the sourcing tests

# netns_skip REASON: the test cannot run here; says why and exits 0 (the convention of
# the tests that need privileges the machine may not give).
netns_skip() {
  echo "$(basename "$0" .sh): skipped: $*"
  exit 0
}

NETNS_MADE=()

netns_cleanup() {
  local ns
  for ns in "${NETNS_MADE[@]}"; do ip netns delete "$ns" 2> /dev/null || true; done
  NETNS_MADE=()
}

# netns_init PREFIX: checks that namespaces can be made (or skips) and makes the switch,
# PREFIX-sw, with its bridge br0. Hosts' namespaces will be PREFIX-HOST. Sets SWITCH.
netns_init() {
  NETNS_PREFIX=$1
  [ "$(id -u)" -eq 0 ] || netns_skip "needs root for ip netns (running as uid $(id -u))"
  command -v ip > /dev/null || netns_skip "no ip command (iproute2)"
  trap 'cleanup; netns_cleanup' EXIT
  SWITCH=$NETNS_PREFIX-sw
  if ! ip netns add "$SWITCH" 2> "$WORK/netns.err"; then
    netns_skip "cannot make a network namespace: $(head -1 "$WORK/netns.err")"
  fi
  NETNS_MADE+=("$SWITCH")
  ip -n "$SWITCH" link add br0 type bridge
  ip -n "$SWITCH" link set br0 up
  # The caller's TALLY_* settings stay out of the programs.
  local var
  for var in $(compgen -e | grep '^TALLY_' || true); do
    case $var in TALLY_BIN | TALLY_SOURCE_DIR | TALLY_VARIANT) ;; *) unset "$var" ;; esac
  done
}

# netns_host HOST ADDRESS/PREFIXLEN: a host: its namespace, with eth0 at ADDRESS joined to
# the switch by port-HOST, and lo up.
netns_host() {
  local h=$1 name=$NETNS_PREFIX-$1
  ip netns add "$name"
  NETNS_MADE+=("$name")
  # The veth pair is made inside the switch, its far end moved straight into the host.
  ip -n "$SWITCH" link add "port-$h" type veth peer name eth0 netns "$name"
  ip -n "$SWITCH" link set "port-$h" master br0 up
  ip -n "$name" addr add "$2" dev eth0
  ip -n "$name" link set eth0 up
  ip -n "$name" link set lo up
}

# ns HOST: the namespace of a host, for `ip netns exec` (which execs: start's pid is the
# program's).
ns() { echo "$NETNS_PREFIX-$1"; }

# unplug HOST / plug HOST: the host's switch port goes down (as if its cable were
# pulled) / up again.
unplug() { ip -n "$SWITCH" link set "port-$1" down; }
plug() { ip -n "$SWITCH" link set "port-$1" up; }

# tcp_answers HOST IP PORT: a TCP connection from HOST's namespace succeeds within 5 s
# (bash's /dev/tcp).
tcp_answers() {
  local i
  for ((i = 0; i < 50; i++)); do
    ip netns exec "$(ns "$1")" bash -c "exec 3<>/dev/tcp/$2/$3" 2> /dev/null && return 0
    sleep 0.1
  done
  return 1
}

# netns_left: how many namespaces of this test are still there.
netns_left() {
  ip netns list | grep -c "^$NETNS_PREFIX-" || true
}
