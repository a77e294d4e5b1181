#!/usr/bin/env bash
# Proves the README's Quick start from a newcomer's shell: up.sh brings everything up, the demo keyspace
# answers a lookup through shardmapctl on both replicas, the example service's rows (examples/, run by
# up.sh) are on the shards the directory names and cross-shard queries count them once, its transfer across
# two shards committed on both and a coordinator killed mid-transfer leaves nothing, the example keeps working while the map changes, server
# reflection lists the services (so tools need no .proto file), and down.sh --purge leaves nothing behind.
# Run by CI after the tests.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

cleanup() { deploy/local/down.sh --purge >/dev/null 2>&1 || true; }
trap cleanup EXIT

SHARDMAP_LOCAL_EXAMPLE_USERS=1000 deploy/local/up.sh

ctl() { java -jar cli/target/shardmapctl.jar "$@"; }
example() { java -jar examples/target/shardmap-example.jar "$@"; }
fail() { echo "smoke: $*" >&2; exit 1; }
PSQL="${SHARDMAP_LOCAL_PG_BIN:-/usr/lib/postgresql/15/bin}/psql"
# psql on shard N (1..3): database shardN on port 5432+N.
shard_sql() { "$PSQL" -h 127.0.0.1 -p $((5432 + $1)) -U postgres -d "shard$1" -tAq -v ON_ERROR_STOP=1 -c "$2"; }

# The example's rows, read from each shard with psql (not through the SDK), against the directory's answer
# for a sample of their ids (shardmapctl lookup): every sampled row must be on the shard the directory names,
# every shard must hold some (the ids spread over the key space), and the total must be what was written.
check_example_rows() {
  local expected=$1 total=0 checked=0 n count ids out wrong
  for n in 1 2 3; do
    count=$(shard_sql "$n" "SELECT count(*) FROM users") || fail "psql on shard$n failed"
    [ "$count" -gt 0 ] || fail "shard$n holds none of the example's users; they should spread over all three shards"
    total=$((total + count))
    # The 3 smallest and 3 largest ids on the shard (its range's edges) and 14 from anywhere in it.
    ids=$(shard_sql "$n" "(SELECT id FROM users ORDER BY id LIMIT 3) UNION (SELECT id FROM users ORDER BY id DESC LIMIT 3)
      UNION (SELECT id FROM users ORDER BY md5(id::text) LIMIT 14)") || fail "psql on shard$n failed"
    # shellcheck disable=SC2086 # one argument per id
    out=$(ctl lookup users $ids) || fail "shardmapctl lookup of shard$n's sample failed"
    [ "$(awk 'NR > 1' <<<"$out" | wc -l)" -eq "$(wc -w <<<"$ids")" ] || fail "lookup answered for the wrong number of ids: $out"
    wrong=$(awk -v s="shard$n" 'NR > 1 && $2 != s' <<<"$out")
    [ -z "$wrong" ] || fail "rows on shard$n that the directory routes elsewhere (KEY SHARD EPOCH):
$wrong"
    checked=$((checked + $(wc -w <<<"$ids")))
  done
  [ "$total" -eq "$expected" ] || fail "the shards hold $total users in all, expected $expected"
  echo "smoke: $total example users on the shards; $checked sampled ids are where the directory says"
}

# 1000 users of the example run, and the 2 that up.sh's signup added (Ada and Grace, global ids).
check_example_rows 1002

# up.sh's signup and countries (README: Global ids and reference tables): Ada and Grace with country fr; the
# reference table countries equal on every shard, with the Italy that countries --set wrote through the SDK;
# a psql write to one copy refused by its guard.
signed=$(for n in 1 2 3; do shard_sql "$n" "SELECT count(*) FROM users WHERE country = 'fr' AND name IN ('Ada', 'Grace')"; done \
  | awk '{ s += $1 } END { print s }')
[ "$signed" = 2 ] || fail "up.sh's signup should have written Ada and Grace with country fr, found $signed"
copies=$(for n in 1 2 3; do shard_sql "$n" "SELECT string_agg(code || '=' || name, ',' ORDER BY code) FROM countries"; done | sort -u)
[ "$(wc -l <<<"$copies")" -eq 1 ] || fail "the copies of countries differ: $copies"
grep -q 'it=Italy' <<<"$copies" || fail "countries --set it Italy should be on every copy: $copies"
if shard_sql 2 "UPDATE countries SET name = 'x'" 2>/dev/null; then
  fail "a psql write to shard2's copy of the reference table countries was not refused"
fi
echo "smoke: signup wrote 2 users with global ids; countries is equal on the 3 shards and refuses psql writes"

# The same total through a cross-shard query (shardmapctl count: one pinned map revision, each shard counting
# only the rows it owns in it), and a merged ORDER BY ... LIMIT across the shards.
out=$(ctl count users users --pg-user postgres) || fail "shardmapctl count failed"
grep -q '^count  *1002$' <<<"$out" || fail "shardmapctl count should say 1002 users: $out"
out=$(ctl query users "SELECT id FROM users ORDER BY id DESC LIMIT 3" --pg-user postgres) \
  || fail "shardmapctl query failed"
top=$(for n in 1 2 3; do shard_sql "$n" "SELECT id FROM users ORDER BY id DESC LIMIT 3"; done | sort -n | tail -1)
[ "$(awk 'NR == 2 {print $1}' <<<"$out")" = "$top" ] || fail "the cross-shard ORDER BY id DESC should start with id $top: $out"
echo "smoke: shardmapctl count and query across the shards agree with psql"

# The transfer up.sh ran between users 1 and 2, whose accounts are on shard2 and shard3, read with psql: 100
# moved from user 1 to user 2, and one ledger row on each shard, both with the same transfer id.
u1=-2152535657050944081
u2=7960286522194355700
accounts_state() {
  echo "$(shard_sql 2 "SELECT balance FROM accounts WHERE user_id = $u1") $(shard_sql 3 "SELECT balance FROM accounts WHERE user_id = $u2")" \
    "$(shard_sql 2 "SELECT string_agg(transfer_id || ' ' || amount, ',') FROM ledger WHERE user_id = $u1")" \
    "$(shard_sql 3 "SELECT string_agg(transfer_id || ' ' || amount, ',') FROM ledger WHERE user_id = $u2")" \
    "prepared: $(shard_sql 2 "SELECT count(*) FROM pg_prepared_xacts") $(shard_sql 3 "SELECT count(*) FROM pg_prepared_xacts")"
}
state=$(accounts_state) || fail "psql on shard2 or shard3 failed"
read -r b1 b2 t1 a1 t2 a2 _ <<<"$state"
[ "$b1 $b2" = "900 1100" ] || fail "after up.sh's transfer, users 1 and 2 should have 900 and 1100: $state"
[ "$t1" = "$t2" ] && [ "$a1 $a2" = "-100 100" ] || fail "the transfer should have one ledger row on each shard with one id: $state"

# The README's kill of the coordinator mid-transfer: killed inside the work, neither shard keeps anything.
log=deploy/.run/transfer-kill.log
example transfer 1 2 100 --pause-in-work 120s >"$log" 2>&1 &
transfer_job=$!
for _ in $(seq 1 240); do
  grep -q 'kill -9 [0-9]* now' "$log" && break
  kill -0 "$transfer_job" 2>/dev/null || break
  sleep 0.5
done
coordinator=$(grep -o 'kill -9 [0-9]* now' "$log" | awk '{print $3}') || true
[ -n "$coordinator" ] || { cat "$log" >&2; fail "the transfer did not pause inside its work"; }
kill -9 "$coordinator"
wait "$transfer_job" 2>/dev/null || true
after=$(accounts_state) || fail "psql on shard2 or shard3 failed"
[ "$after" = "$state" ] || fail "a coordinator killed inside the work changed something: before $state, after $after"
grep -q 'prepared: 0 0$' <<<"$after" || fail "prepared transactions left behind: $after"
echo "smoke: up.sh's transfer moved 100 across shard2 and shard3 with both ledger rows; its coordinator killed mid-transfer left nothing"

out=$(ctl lookup users 42) || fail "lookup on 127.0.0.1:7700 failed"
grep -q '^shard  *shard2$' <<<"$out" || fail "key 42 should be on shard2, got: $out"
out=$(ctl --server 127.0.0.1:7710 lookup users 9000000000000000000) || fail "lookup on 127.0.0.1:7710 failed"
grep -q '^shard  *shard3$' <<<"$out" || fail "key 9e18 should be on shard3, got: $out"

# A change through one replica is seen by the other.
ctl range split users 1000 >/dev/null || fail "split failed"
out=$(ctl --server 127.0.0.1:7710 lookup users 1000)
grep -q '^range  *1000\.\.' <<<"$out" || fail "replica 2 does not see the split: $out"

# The example keeps working while an operator changes the map: it writes and reads 2,000 users in rounds
# while a range is split and reassigned (two shardmapctl JVMs, which took over 15 s on a loaded 2-core
# machine), then checks every row on every shard's primary (--verify). The
# reassigned range [1000, 2000) holds none of its users: a reassign moves no rows (the migrator does).
log=deploy/.run/example-live.log
example --users 2000 --duration 40s --verify >"$log" 2>&1 &
example_pid=$!
for _ in $(seq 1 300); do
  grep -q '^  round 1:' "$log" && break
  kill -0 "$example_pid" 2>/dev/null || break
  sleep 0.1
done
grep -q '^  round 1:' "$log" || { cat "$log" >&2; fail "the example did not finish its first round"; }
ctl range split users 2000 >/dev/null || fail "split at 2000 failed"
ctl range reassign users 1000..2000 shard3 >/dev/null || fail "reassign of 1000..2000 failed"
kill -0 "$example_pid" 2>/dev/null || { cat "$log" >&2; fail "the example ended before the map changes were made (too slow a machine for --duration 40s?)"; }
wait "$example_pid" || { cat "$log" >&2; fail "the example failed while the map changed"; }
cat "$log"
grep -q 'map changed: revision' "$log" || fail "the example did not follow the map changes while running"
grep -q '^Verify: ' "$log" || fail "the example did not verify its rows"
grep -qx 'OK' "$log" || fail "the example did not report OK"
check_example_rows 2002   # and the 2 users of up.sh's signup
out=$(ctl lookup users 1500)
grep -q '^shard  *shard3$' <<<"$out" || fail "key 1500 should be on shard3 after the reassign, got: $out"

# Reflection: list the services without any .proto file (buf from npm, when npm is available).
if [ -x proto/.buf/node_modules/.bin/buf ] || command -v npm >/dev/null 2>&1; then
  [ -x proto/.buf/node_modules/.bin/buf ] || (mkdir -p proto/.buf && cd proto/.buf \
    && npm install --silent --no-audit --no-fund @bufbuild/buf@1 >/dev/null)
  buf=proto/.buf/node_modules/.bin/buf
  methods=$("$buf" curl --protocol grpc --http2-prior-knowledge --list-methods http://127.0.0.1:7700)
  grep -q 'shardmap.v1.ShardMapService/Lookup' <<<"$methods" || fail "reflection does not list Lookup"
  grep -q 'shardmap.v1.ShardMapAdminService/SplitRange' <<<"$methods" || fail "reflection does not list SplitRange"
  reply=$("$buf" curl --protocol grpc --http2-prior-knowledge \
    --data '{"keyspace":"users","key":{"int_key":"42"}}' \
    http://127.0.0.1:7700/shardmap.v1.ShardMapService/Lookup)
  grep -q '"shard": "shard2"' <<<"$reply" || fail "buf curl Lookup: $reply"
  echo "smoke: reflection lists the services; buf curl Lookup works"
else
  echo "smoke: npm not installed, reflection check skipped"
fi

# The fleet page and the status (issue 16): the page, its JSON status endpoint, and shardmapctl status.
fetch() { python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=20).read().decode())' "$1"; }
page=$(fetch http://127.0.0.1:7701/fleet) || fail "the fleet page did not answer"
grep -q '<title>Shardmap fleet</title>' <<<"$page" || fail "the fleet page has no title"
status=$(fetch 'http://127.0.0.1:7701/api/v1/status?keyspace=users') || fail "the fleet page's status endpoint failed"
grep -q '"keyspace":"users"' <<<"$status" || fail "the status endpoint did not describe users: $status"
out=$(ctl status --keyspace users) || fail "shardmapctl status failed"
grep -q 'shard1' <<<"$out" || fail "shardmapctl status should list shard1: $out"
echo "smoke: the fleet page, its status endpoint and shardmapctl status answer"

deploy/local/down.sh --purge
trap - EXIT
[ ! -e deploy/.run ] || fail "down.sh --purge left deploy/.run behind"
echo "smoke: quick start OK"
