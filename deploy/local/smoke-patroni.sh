#!/usr/bin/env bash
# Proves the README's "Shards as Patroni clusters (failover)" from a newcomer's shell: up.sh --patroni brings the
# demo up with every shard a 2-member Patroni cluster that the directory follows (shard list shows each scope,
# term 1); then shard2's primary postmaster is killed with SIGKILL, and within a bounded wait the map names the
# promoted standby as shard2's primary with its primary_term one higher; a cross-shard transfer (shard2 and
# shard3) and a new user through the example service succeed, the cross-shard count sees every user once, and
# the killed member rejoins as the replica in the map. down.sh --purge leaves nothing behind. Separate from
# smoke.sh because a second up.sh, in Patroni mode, would add more than a minute to it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

cleanup() { deploy/local/down.sh --purge >/dev/null 2>&1 || true; }
trap cleanup EXIT

SHARDMAP_LOCAL_EXAMPLE_USERS=1000 deploy/local/up.sh --patroni

ctl() { java -jar cli/target/shardmapctl.jar "$@"; }
example() { java -jar examples/target/shardmap-example.jar "$@"; }
fail() { echo "smoke-patroni: $*" >&2; exit 1; }
PSQL="${SHARDMAP_LOCAL_PG_BIN:-/usr/lib/postgresql/15/bin}/psql"
ETCD=http://127.0.0.1:2379,http://127.0.0.1:22379,http://127.0.0.1:32379
now_ms() { date +%s%3N; }

# shard list columns: NAME PRIMARY REPLICAS REGION STATE REVISION PATRONI TERM
shard_row() { ctl shard list | awk -v s="$1" '$1 == s'; }

list=$(ctl shard list) || fail "shardmapctl shard list failed"
echo "$list"
for n in 1 2 3; do
  row=$(awk -v s="shard$n" '$1 == s' <<<"$list")
  read -r _ primary replicas _ state _ patroni term <<<"$row"
  [ "$patroni" = "/service/shard$n" ] || fail "shard$n should follow Patroni cluster /service/shard$n: $row"
  [ "$term" = 1 ] || fail "shard$n should be at primary term 1 after up.sh: $row"
  [ "$state" = active ] || fail "shard$n should be active: $row"
  [ "$replicas" != - ] || fail "shard$n's synchronous standby is missing from the map: $row"
  [ "${primary##*/}" = "shard$n" ] || fail "shard$n's primary should name database shard$n: $row"
done
echo "smoke-patroni: shard1..3 follow their Patroni clusters (term 1, a primary and a replica each)"

# shard2's primary: the member the leader key names, which must be where the map points.
leader=$(ETCDCTL_API=3 etcdctl --endpoints "$ETCD" get --print-value-only /service/shard2/leader) \
  || fail "cannot read /service/shard2/leader"
read -r _ old_primary old_replicas _ _ _ _ old_term <<<"$(shard_row shard2)"
pidfile="deploy/.run/$leader/data/postmaster.pid"
[ -f "$pidfile" ] || fail "no $pidfile for shard2's leader $leader"
leader_port=$(sed -n 4p "$pidfile")
[ "$old_primary" = "127.0.0.1:$leader_port/shard2" ] \
  || fail "the map's primary of shard2 ($old_primary) is not the leader $leader (port $leader_port)"
postmaster=$(head -n 1 "$pidfile")
echo "smoke-patroni: killing shard2's primary $leader (postmaster pid $postmaster, port $leader_port) with SIGKILL"
start=$(now_ms)
kill -9 "$postmaster"

# The new primary in the map: another endpoint, term + 1. Bounded: 90 s (Patroni fails over in about 2-3 s).
new_primary="" new_term=""
for _ in $(seq 1 180); do
  read -r _ new_primary _ _ _ _ _ new_term <<<"$(shard_row shard2)" || true
  if [ -n "$new_term" ] && [ "$new_term" -gt "$old_term" ] && [ "$new_primary" != "$old_primary" ]; then
    break
  fi
  sleep 0.5
done
elapsed=$(($(now_ms) - start))
[ "$new_term" -gt "$old_term" ] && [ "$new_primary" != "$old_primary" ] \
  || fail "90 s after the kill the map still shows shard2 at $new_primary, term $new_term (was $old_primary, term $old_term)"
[ "$new_term" = $((old_term + 1)) ] || fail "one failover should raise shard2's term by one: $old_term -> $new_term"
[ "$new_primary" = "$old_replicas" ] || fail "shard2's new primary $new_primary should be its standby $old_replicas"
new_port=${new_primary#127.0.0.1:}
new_port=${new_port%/shard2}
[ "$("$PSQL" -h 127.0.0.1 -p "$new_port" -U postgres -d shard2 -tAc 'SELECT NOT pg_is_in_recovery()')" = t ] \
  || fail "the map's new primary of shard2 ($new_primary) is not writable"
echo "smoke-patroni: the map names shard2's new primary $new_primary (term $old_term -> $new_term) ${elapsed} ms after the kill (shardmapctl polled every 0.5 s, each a JVM start)"

# Writes through the SDK after the failover: a transfer across shard2 and shard3 (users 1 and 2) and a new user.
example transfer 1 2 100 --either-way || fail "the transfer across shard2 and shard3 failed after shard2's failover"
example signup Failover --country fr || fail "signup failed after shard2's failover"
out=$(ctl count users users --pg-user postgres) || fail "shardmapctl count failed"
grep -q '^count  *1003$' <<<"$out" || fail "1,000 users, up.sh's 2 signups and this one should count 1003: $out"
echo "smoke-patroni: a cross-shard transfer and a signup succeeded after the failover; the cross-shard count sees 1003 users"

# The killed member rejoins as the standby (pg_rewind) and the directory lists it again as the replica.
for _ in $(seq 1 180); do
  read -r _ _ replicas _ <<<"$(shard_row shard2)" || true
  [ "$replicas" = "$old_primary" ] && break
  sleep 0.5
done
[ "$replicas" = "$old_primary" ] || fail "90 s after the failover shard2's old primary $old_primary is not its replica: $replicas"
echo "smoke-patroni: $leader rejoined shard2 as its replica"

deploy/local/down.sh --purge
trap - EXIT
[ ! -e deploy/.run ] || fail "down.sh --purge left deploy/.run behind"
if pgrep -f "$ROOT/deploy/.run/pg[123][ab]/patroni.yml" >/dev/null; then
  fail "Patroni processes of deploy/.run are still running after down.sh"
fi
echo "smoke-patroni: Patroni failover OK"
