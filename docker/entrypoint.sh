#!/bin/sh
# Entry point of Tally's image: runs the command given (tally-sink, tally-worker, ...).
#
# As a non-root user (the image's default, "tally", uid 10001) it just runs the command.
# Started as root (compose does so for the sink only; docker/compose.shards.yaml for each
# sink shard and its merge), it hands the folder of the totals file ($TALLY_OUTPUT, or of
# a shard's part) to an unprivileged user and runs the command as that user, so that
# the totals land on a bind mount owned by the person who started the stack:
#   - the user is $TALLY_UID:$TALLY_GID when set;
#   - else the owner of that folder, unless root owns it (Docker makes a missing bind
#     source as root), in which case uid:gid 1000:1000, the first user on most hosts.
#   TALLY_UID=0 is honoured (rootless Docker, where root in the container is you).
# Only that folder changes owner (when its user cannot write it), never its contents.
# The sink's state folder ($TALLY_STATE_DIR, by default .tally-sink in that folder, which
# the sink makes itself) is made for that user with mode 0700 when it is set and missing,
# e.g. on a volume whose root is root's; an existing one is left as it is (the sink checks
# it is its user's alone, and says why when it is not).
set -eu
if [ "$(id -u)" != 0 ]; then
    exec "$@"
fi
dir=$(dirname "${TALLY_OUTPUT:-/results/totals.tsv}")
mkdir -p "$dir"
owner=$(stat -c %u "$dir")
group=$(stat -c %g "$dir")
if [ -n "${TALLY_UID:-}" ]; then
    uid=$TALLY_UID
    gid=${TALLY_GID:-$TALLY_UID}
elif [ "$owner" != 0 ]; then
    uid=$owner
    gid=${TALLY_GID:-$group}
else
    uid=1000
    gid=${TALLY_GID:-1000}
fi
if ! setpriv --reuid="$uid" --regid="$gid" --clear-groups test -w "$dir"; then
    chown "$uid:$gid" "$dir"
fi
state=${TALLY_STATE_DIR:-}
if [ -n "$state" ] && [ ! -e "$state" ]; then
    mkdir -p "$(dirname "$state")"
    mkdir -m 0700 "$state"
    chown "$uid:$gid" "$state"
fi
exec setpriv --reuid="$uid" --regid="$gid" --clear-groups --no-new-privs --inh-caps=-all \
    --bounding-set=-all "$@"
