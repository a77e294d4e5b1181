#!/usr/bin/env bash
# Starts a local Shardmap on 127.0.0.1: a 3-member etcd cluster, three PostgreSQL 15 shards and two
# directory servers, then registers the shards and the demo keyspaces "users" and "accounts", and runs the
# example service (examples/) once: it writes and reads users through the client SDK, then moves money
# between two users on different shards in one cross-shard transaction. Safe to run again: what runs is left
# alone, what exists is not re-created, and the example upserts the same users again. Everything it starts
# outlives it; deploy/local/down.sh stops it. Ports, timeouts and paths are overridable by the environment variables below.
#
# --patroni (or SHARDMAP_PATRONI=1): each shard is a Patroni cluster of two PostgreSQL servers, a primary and a
# synchronous standby, on the same etcd, registered with shardmapctl shard register --patroni-scope: the
# directory reads the primary and replica from Patroni's keys and follows failovers (README: Shards as Patroni
# clusters). Fixed loopback ports in that mode (SHARDMAP_LOCAL_PG_PORTS, SHARDMAP_LOCAL_PATRONI_PG_PORTS,
# SHARDMAP_LOCAL_PATRONI_API_PORTS):
#   shard1: members pg1a (PostgreSQL 5433, REST API 8433) and pg1b (PostgreSQL 5443, REST API 8443), scope shard1
#   shard2: members pg2a (5434, 8434) and pg2b (5444, 8444), scope shard2
#   shard3: members pg3a (5435, 8435) and pg3b (5445, 8445), scope shard3
# in Patroni's default namespace /service (SHARDMAP_LOCAL_PATRONI_NAMESPACE). Which member is a shard's primary
# changes with every failover: shardmapctl shard list shows it. A deploy/.run set up in one mode is refused in
# the other (down.sh --purge first).
set -euo pipefail

usage() {
  echo "usage: deploy/local/up.sh [--patroni]   (--patroni, or SHARDMAP_PATRONI=1: each shard a 2-member Patroni cluster)"
}
PATRONI=false
[[ ${SHARDMAP_PATRONI:-0} == 1 ]] && PATRONI=true
for arg in "$@"; do
  case $arg in
    --patroni) PATRONI=true ;;
    -h | --help) usage; exit 0 ;;
    *) echo "error: unknown argument '$arg'" >&2; usage >&2; exit 2 ;;
  esac
done

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
RUN="$ROOT/deploy/.run"

read -r -a ETCD_CLIENT_PORTS <<<"${SHARDMAP_LOCAL_ETCD_CLIENT_PORTS:-2379 22379 32379}"
read -r -a ETCD_PEER_PORTS <<<"${SHARDMAP_LOCAL_ETCD_PEER_PORTS:-2380 22380 32380}"
read -r -a PG_PORTS <<<"${SHARDMAP_LOCAL_PG_PORTS:-5433 5434 5435}"
read -r -a GRPC_PORTS <<<"${SHARDMAP_LOCAL_GRPC_PORTS:-7700 7710}"
read -r -a METRICS_PORTS <<<"${SHARDMAP_LOCAL_METRICS_PORTS:-7701 7711}"
read -r -a PATRONI_PG_PORTS <<<"${SHARDMAP_LOCAL_PATRONI_PG_PORTS:-5443 5444 5445}"
read -r -a PATRONI_API_PORTS <<<"${SHARDMAP_LOCAL_PATRONI_API_PORTS:-8433 8434 8435 8443 8444 8445}"
PATRONI_NAMESPACE=${SHARDMAP_LOCAL_PATRONI_NAMESPACE:-/service}
ETCD_PREFIX=${SHARDMAP_LOCAL_ETCD_PREFIX:-/shardmap}
PG_BIN=${SHARDMAP_LOCAL_PG_BIN:-/usr/lib/postgresql/15/bin}
WAIT_SECONDS=${SHARDMAP_LOCAL_WAIT_SECONDS:-90}
JAVA=${JAVA:-java}
EXAMPLE_USERS=${SHARDMAP_LOCAL_EXAMPLE_USERS:-1000}

SERVER_JAR="$ROOT/directory-server/target/shardmap-server.jar"
CLI_JAR="$ROOT/cli/target/shardmapctl.jar"
EXAMPLE_JAR="$ROOT/examples/target/shardmap-example.jar"
# Not run here, but built with the rest: deploy/local/migrator runs it (docs/migrator.md's quick tour).
MIGRATOR_JAR="$ROOT/migrator/target/shardmap-migrator.jar"

say() { printf '%s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

[[ ${#ETCD_CLIENT_PORTS[@]} -eq 3 && ${#ETCD_PEER_PORTS[@]} -eq 3 && ${#PG_PORTS[@]} -eq 3 ]] \
  || die "SHARDMAP_LOCAL_ETCD_CLIENT_PORTS, SHARDMAP_LOCAL_ETCD_PEER_PORTS and SHARDMAP_LOCAL_PG_PORTS take 3 ports each"
[[ ${#GRPC_PORTS[@]} -eq 2 && ${#METRICS_PORTS[@]} -eq 2 ]] \
  || die "SHARDMAP_LOCAL_GRPC_PORTS and SHARDMAP_LOCAL_METRICS_PORTS take 2 ports each"
[[ ${#PATRONI_PG_PORTS[@]} -eq 3 && ${#PATRONI_API_PORTS[@]} -eq 6 ]] \
  || die "SHARDMAP_LOCAL_PATRONI_PG_PORTS takes 3 ports (each shard's second member), SHARDMAP_LOCAL_PATRONI_API_PORTS 6 (the first members' REST APIs, then the second ones')"
[[ $EXAMPLE_USERS =~ ^[0-9]+$ ]] || die "SHARDMAP_LOCAL_EXAMPLE_USERS must be a number of users (0 skips the example run)"

IS_ROOT=false
[[ $(id -u) -eq 0 ]] && IS_ROOT=true

# ---------------------------------------------------------------- (a) packages

# Patroni with its etcd3 DCS (which needs python3-etcd, named explicitly: the package depends on any one of
# several DCS libraries), checked with the interpreter Patroni itself runs on (docs/patroni.md).
have_patroni() {
  command -v patroni >/dev/null 2>&1 \
    && $(sed -n '1s/^#!//p' "$(command -v patroni)") -c 'import patroni.dcs.etcd3' >/dev/null 2>&1
}

install_packages() {
  local missing=()
  command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
  command -v etcdctl >/dev/null 2>&1 || missing+=(etcd-client)
  [[ -x "$PG_BIN/initdb" && -x "$PG_BIN/pg_ctl" ]] || missing+=(postgresql)
  if $PATRONI && ! have_patroni; then
    missing+=(patroni python3-etcd)
  fi
  if [[ ${#missing[@]} -eq 0 ]]; then
    return
  fi
  say "installing ${missing[*]} (Debian packages)"
  local sudo=()
  if ! $IS_ROOT; then
    command -v sudo >/dev/null 2>&1 || die "need root or sudo to install ${missing[*]}"
    sudo=(sudo)
  fi
  "${sudo[@]}" apt-get update
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
  [[ -x "$PG_BIN/initdb" ]] \
    || die "PostgreSQL installed, but $PG_BIN/initdb is missing; set SHARDMAP_LOCAL_PG_BIN to the PostgreSQL 15 bin directory"
  if $PATRONI; then
    have_patroni || die "Patroni installed, but it cannot load its etcd3 DCS (is python3-etcd installed?)"
  fi
}

# ---------------------------------------------------------------- (b) jars

# Prints the first build input (a pom or a main source; tests do not go into the jars) newer than the
# given jar; prints nothing if the jar is current.
newer_source() {
  local m dirs=("$ROOT/pom.xml")
  for m in proto core store directory-server cli client-sdk examples migrator; do
    [[ -f $ROOT/$m/pom.xml ]] && dirs+=("$ROOT/$m/pom.xml")
    [[ -d $ROOT/$m/src/main ]] && dirs+=("$ROOT/$m/src/main")
  done
  find "${dirs[@]}" -type f -newer "$1" -print -quit 2>/dev/null
}

build_jars() {
  local why="" jar
  for jar in "$SERVER_JAR" "$CLI_JAR" "$EXAMPLE_JAR" "$MIGRATOR_JAR"; do
    if [[ ! -f $jar ]]; then
      why="$jar is missing"
    elif [[ -n $(newer_source "$jar") ]]; then
      why="$(newer_source "$jar") is newer than $jar"
    fi
    [[ -n $why ]] && break
  done
  if [[ -z $why ]]; then
    say "jars are up to date"
    return
  fi
  command -v mvn >/dev/null 2>&1 || die "$why, and mvn is not installed (needs Maven 3.8+ and JDK 17)"
  local log="$RUN/build.log"
  say "building jars ($why); log $log"
  local ok=true
  (cd "$ROOT" && mvn -B -q -DskipTests package -pl directory-server,cli,examples,migrator -am) >"$log" 2>&1 || ok=false
  if ! $ok; then
    grep -E 'ERROR|FAIL' "$log" | head -n 20 >&2 || true
    die "the build failed; log: $log"
  fi
  [[ -f $SERVER_JAR && -f $CLI_JAR && -f $EXAMPLE_JAR && -f $MIGRATOR_JAR ]] \
    || die "the build did not produce $SERVER_JAR, $CLI_JAR, $EXAMPLE_JAR and $MIGRATOR_JAR"
}

# ---------------------------------------------------------------- process helpers

# True when the pid file names a live process whose command line contains the marker (guards against a
# recycled pid).
running() {
  local pidfile=$1 marker=$2 pid
  [[ -f $pidfile ]] || return 1
  pid=$(<"$pidfile")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$marker"
}

port_in_use() {
  # bash's /dev/tcp connect succeeds only if something listens.
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

require_free_port() {
  local port=$1 what=$2
  if port_in_use "$port"; then
    die "port $port (for $what) is already in use by another program; stop it or choose other ports (see deploy/README.md)"
  fi
}

# Starts a command detached from this script (own session, no terminal), so it outlives it.
spawn() {
  local pidfile=$1 log=$2
  shift 2
  setsid nohup "$@" >>"$log" 2>&1 </dev/null &
  echo $! >"$pidfile"
}

# Polls a check until it passes, at most WAIT_SECONDS; fails with the log path if it does not, or at once
# if the process died.
wait_until() {
  local what=$1 log=$2 pidfile=$3 marker=$4
  shift 4
  local deadline=$((SECONDS + WAIT_SECONDS))
  until "$@" >/dev/null 2>&1; do
    if [[ -n $pidfile ]] && ! running "$pidfile" "$marker"; then
      tail -n 20 "$log" >&2 || true
      die "$what exited during startup; log: $log"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 20 "$log" >&2 || true
      die "$what was not healthy after ${WAIT_SECONDS}s; log: $log"
    fi
    sleep 0.5
  done
}

as_postgres() {
  if $IS_ROOT; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# The ports are part of the data (etcd members record their peer URLs, PostgreSQL its port): refuse to
# run against a deploy/.run that was set up with other ones.
check_settings() {
  # Only Patroni mode adds to the line, so a deploy/.run of fixed shards made by an older up.sh still matches;
  # the etcd prefix stays last (deploy/local/migrator reads it from there).
  local patroni=""
  if $PATRONI; then
    patroni="; Patroni shards: second members' PostgreSQL ports ${PATRONI_PG_PORTS[*]}, REST API ports ${PATRONI_API_PORTS[*]}, namespace $PATRONI_NAMESPACE"
  fi
  local settings="etcd client ports ${ETCD_CLIENT_PORTS[*]}; etcd peer ports ${ETCD_PEER_PORTS[*]}; PostgreSQL ports ${PG_PORTS[*]}; gRPC ports ${GRPC_PORTS[*]}; metrics ports ${METRICS_PORTS[*]}$patroni; etcd prefix $ETCD_PREFIX"
  local file="$RUN/settings"
  if [[ -f $file && $(<"$file") != "$settings" ]]; then
    if ! $PATRONI && grep -q 'Patroni shards' "$file"; then
      die "$RUN was set up with Patroni shards: run deploy/local/up.sh --patroni, or delete it first with deploy/local/down.sh --purge"
    fi
    if $PATRONI && ! grep -q 'Patroni shards' "$file"; then
      die "$RUN was set up with fixed shards (without --patroni): delete it first with deploy/local/down.sh --purge"
    fi
    die "$RUN was set up with other settings ($(<"$file")); run with those, or delete it first with deploy/local/down.sh --purge"
  fi
  printf '%s\n' "$settings" >"$file"
}

# Fails before anything starts if a port of a component that is not running yet is taken by another
# program, so a conflict never leaves a half-started setup behind.
preflight_ports() {
  local i
  for i in 0 1 2; do
    if ! running "$RUN/etcd$((i + 1)).pid" "$RUN/etcd$((i + 1))"; then
      require_free_port "${ETCD_CLIENT_PORTS[i]}" "etcd$((i + 1)) client"
      require_free_port "${ETCD_PEER_PORTS[i]}" "etcd$((i + 1)) peer"
    fi
    if $PATRONI; then
      local x
      for x in a b; do
        if ! running "$RUN/pg$((i + 1))$x.pid" "$(patroni_config "$((i + 1))$x")"; then
          require_free_port "$(member_pg_port "$((i + 1))$x")" "pg$((i + 1))$x"
          require_free_port "$(member_api_port "$((i + 1))$x")" "pg$((i + 1))$x REST API"
        fi
      done
    elif ! { [[ -f $RUN/pg$((i + 1))/PG_VERSION ]] && pg_running "$RUN/pg$((i + 1))"; }; then
      require_free_port "${PG_PORTS[i]}" "pg$((i + 1))"
    fi
  done
  for i in 0 1; do
    if ! running "$RUN/directory$((i + 1)).pid" "--listen 127.0.0.1:${GRPC_PORTS[i]}"; then
      require_free_port "${GRPC_PORTS[i]}" "directory$((i + 1)) gRPC"
      require_free_port "${METRICS_PORTS[i]}" "directory$((i + 1)) metrics"
    fi
  done
}

# ---------------------------------------------------------------- (c) etcd

ETCD_ENDPOINTS=""
for p in "${ETCD_CLIENT_PORTS[@]}"; do
  ETCD_ENDPOINTS+="${ETCD_ENDPOINTS:+,}http://127.0.0.1:$p"
done

start_etcd() {
  local cluster="" i
  for i in 0 1 2; do
    cluster+="${cluster:+,}etcd$((i + 1))=http://127.0.0.1:${ETCD_PEER_PORTS[i]}"
  done
  for i in 0 1 2; do
    local name="etcd$((i + 1))" data="$RUN/etcd$((i + 1))"
    local pidfile="$RUN/$name.pid" log="$RUN/$name.log"
    if running "$pidfile" "$data"; then
      say "$name already running (pid $(<"$pidfile"))"
      continue
    fi
    require_free_port "${ETCD_CLIENT_PORTS[i]}" "$name client"
    require_free_port "${ETCD_PEER_PORTS[i]}" "$name peer"
    mkdir -p "$data"
    chmod 700 "$data"
    # On a restart the member's data directory wins; the initial-cluster flags only matter the first time.
    # Keep-alive: etcd's default --grpc-keepalive-min-time (5 s) is what Shardmap needs (its clients ping
    # every 10 s at most and find hung members with their own 1 s checks); never set it above 10 s.
    spawn "$pidfile" "$log" etcd --name "$name" --data-dir "$data" \
      --listen-client-urls "http://127.0.0.1:${ETCD_CLIENT_PORTS[i]}" \
      --advertise-client-urls "http://127.0.0.1:${ETCD_CLIENT_PORTS[i]}" \
      --listen-peer-urls "http://127.0.0.1:${ETCD_PEER_PORTS[i]}" \
      --initial-advertise-peer-urls "http://127.0.0.1:${ETCD_PEER_PORTS[i]}" \
      --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token shardmap-local
    say "$name started (pid $(<"$pidfile"), client port ${ETCD_CLIENT_PORTS[i]}, log $log)"
  done
  for i in 0 1 2; do
    local name="etcd$((i + 1))"
    wait_until "$name" "$RUN/$name.log" "$RUN/$name.pid" "$RUN/$name" \
      env ETCDCTL_API=3 etcdctl --endpoints "http://127.0.0.1:${ETCD_CLIENT_PORTS[i]}" --command-timeout 2s \
      endpoint health
  done
  say "etcd cluster healthy ($ETCD_ENDPOINTS)"
}

# ---------------------------------------------------------------- (c) PostgreSQL

pg_running() {
  as_postgres "$PG_BIN/pg_ctl" status -D "$1" >/dev/null 2>&1
}

# Cross-shard transactions run PREPARE TRANSACTION on every participant shard, which PostgreSQL's default
# (max_prepared_transactions = 0) refuses. 64 exceeds the connections the local system's clients open to a
# shard. Appended to postgresql.conf unless the file already sets it (a value set by hand is kept), so a
# data directory made by an older up.sh gets it too; the setting takes effect at the server's next start.
PG_MAX_PREPARED_TRANSACTIONS=64

ensure_pg_conf() {
  local n=$1 data=$2
  if ! grep -Eq '^[[:space:]]*max_prepared_transactions[[:space:]]*=' "$data/postgresql.conf"; then
    cat >>"$data/postgresql.conf" <<EOF

# deploy/local/up.sh: cross-shard transactions prepare on every participant shard (PREPARE TRANSACTION);
# the default 0 refuses it. Changing it needs a restart.
max_prepared_transactions = $PG_MAX_PREPARED_TRANSACTIONS
EOF
    say "pg$n: set max_prepared_transactions = $PG_MAX_PREPARED_TRANSACTIONS in $data/postgresql.conf"
  fi
}

# A server started before its postgresql.conf had the setting still runs with 0 until it restarts. up.sh
# does not restart a running shard itself (that would cut off every client and migration using it), so it
# says how.
check_prepared_transactions() {
  local n=$1 data=$2 port=$3 value restart
  value=$("$PG_BIN/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc "SHOW max_prepared_transactions")
  if [[ $value == 0 ]]; then
    restart="$PG_BIN/pg_ctl restart -D $data -l $RUN/pg$n.log -m fast"
    if $IS_ROOT; then
      restart="runuser -u postgres -- $restart"
    fi
    say "warning: pg$n (port $port) runs with max_prepared_transactions = 0, so cross-shard transactions fail on it;"
    say "  its postgresql.conf now sets it, which takes effect at a restart: deploy/local/down.sh && deploy/local/up.sh,"
    say "  or only this shard: $restart"
  fi
}

start_postgres() {
  local i
  if $IS_ROOT; then
    id postgres >/dev/null 2>&1 || die "user postgres does not exist (it comes with the postgresql package)"
    runuser -u postgres -- test -x "$RUN" \
      || die "user postgres cannot reach $RUN (a parent directory is not searchable by others); put the repository elsewhere"
  fi
  for i in 0 1 2; do
    local n=$((i + 1)) port=${PG_PORTS[i]}
    local data="$RUN/pg$n" log="$RUN/pg$n.log" pidfile="$RUN/pg$n.pid"
    if [[ ! -f $data/PG_VERSION ]]; then
      mkdir -p "$data"
      chmod 700 "$data"
      touch "$log"
      if $IS_ROOT; then
        chown postgres: "$data" "$log"
      fi
      say "initdb pg$n"
      as_postgres "$PG_BIN/initdb" -D "$data" -U postgres -A trust -E UTF8 --locale=C >>"$log" 2>&1 \
        || die "initdb of pg$n failed; log: $log"
      cat >>"$data/postgresql.conf" <<EOF

# deploy/local/up.sh: loopback TCP only, no Unix socket (socket paths have a length limit).
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = ''
EOF
      cat >"$data/pg_hba.conf" <<'EOF'
# deploy/local/up.sh: a local development cluster; anyone on 127.0.0.1 may connect as anyone.
host  all  all  127.0.0.1/32  trust
EOF
    fi
    ensure_pg_conf "$n" "$data"
    if pg_running "$data"; then
      say "pg$n already running (port $port)"
    else
      require_free_port "$port" "pg$n"
      as_postgres "$PG_BIN/pg_ctl" start -D "$data" -l "$log" -w -t "$WAIT_SECONDS" >/dev/null \
        || { tail -n 20 "$log" >&2 || true; die "pg$n did not start; log: $log"; }
      say "pg$n started (port $port, log $log)"
    fi
    head -n 1 "$data/postmaster.pid" >"$pidfile"
    wait_until "pg$n" "$log" "" "" "$PG_BIN/pg_isready" -h 127.0.0.1 -p "$port" -U postgres -t 2
    check_prepared_transactions "$n" "$data" "$port"
    create_schema "$n" "$port"
  done
}


# Shard n's database and the demo's tables, on the PostgreSQL at the port (a Patroni shard's primary; its standby
# replicates them).
create_schema() {
  local n=$1 port=$2
  if [[ -z $("$PG_BIN/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = 'shard$n'") ]]; then
    "$PG_BIN/createdb" -h 127.0.0.1 -p "$port" -U postgres "shard$n"
    say "created database shard$n on port $port"
  fi
  # The demo keyspace shards table users by id; give each shard the table so the lookups lead somewhere.
  # countries becomes a reference table of keyspace users (declare_countries): a copy on every shard.
  # The demo keyspace accounts shards the users' balances and the ledger of their transfers by user id
  # (the example's transfer command; the statements are examples' AccountStore.ddl, checked by its tests).
  PGOPTIONS='-c client_min_messages=warning' "$PG_BIN/psql" -q -h 127.0.0.1 -p "$port" -U postgres -d "shard$n" -v ON_ERROR_STOP=1 \
    -c "CREATE TABLE IF NOT EXISTS users (id bigint PRIMARY KEY, name text NOT NULL)" \
    -c "ALTER TABLE users ADD COLUMN IF NOT EXISTS country text" \
    -c "CREATE TABLE IF NOT EXISTS countries (code text PRIMARY KEY, name text NOT NULL)" \
    -c "CREATE TABLE IF NOT EXISTS accounts (user_id bigint PRIMARY KEY, balance bigint NOT NULL CHECK (balance >= 0))" \
    -c "CREATE TABLE IF NOT EXISTS ledger (user_id bigint NOT NULL, transfer_id uuid NOT NULL, amount bigint NOT NULL, other_user bigint NOT NULL, at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (user_id, transfer_id))" \
    >/dev/null
}

# ---------------------------------------------------------------- (c) PostgreSQL as Patroni clusters (--patroni)

# Member "1a" is pg1a, the first member of shard1 (port from SHARDMAP_LOCAL_PG_PORTS), "1b" the second
# (SHARDMAP_LOCAL_PATRONI_PG_PORTS). Member names are the directory names under deploy/.run, so the leader key
# (/service/shard1/leader = pg1b) names the member's directory too.
member_pg_port() {
  local n=${1%[ab]}
  if [[ $1 == *a ]]; then echo "${PG_PORTS[n - 1]}"; else echo "${PATRONI_PG_PORTS[n - 1]}"; fi
}

member_api_port() {
  local n=${1%[ab]}
  if [[ $1 == *a ]]; then echo "${PATRONI_API_PORTS[n - 1]}"; else echo "${PATRONI_API_PORTS[n + 2]}"; fi
}

patroni_config() {
  echo "$RUN/pg$1/patroni.yml"
}

# The Patroni settings (bootstrap.dcs becomes the cluster's dynamic configuration in etcd on its first start;
# later edits of this file do not change it: patronictl edit-config does). The timing is testkit's
# PatroniCluster's (docs/patroni.md): ttl 20 s and loop_wait 1 s are Patroni's minimums; retry_timeout 5 s gives
# a loaded machine slack within loop_wait + 2 * retry_timeout <= ttl; primary_start_timeout 0 fails a crashed
# primary over to the synchronous standby at once instead of restarting it in place (no acknowledged commit is
# lost: synchronous_mode). failsafe_mode: Patroni keeps its keys in the etcd that Shardmap uses, so without it
# losing etcd's quorum would demote every shard's primary at once; with it a primary that still reaches all its
# members keeps serving. The directory refuses to follow a cluster without it.
write_patroni_config() {
  local m=$1 n=${1%[ab]} dir="$RUN/pg$1" hosts="" p
  for p in "${ETCD_CLIENT_PORTS[@]}"; do
    hosts+="${hosts:+, }'127.0.0.1:$p'"
  done
  cat >"$(patroni_config "$m")" <<EOF
# deploy/local/up.sh --patroni: member pg$m of shard$n's Patroni cluster (scope shard$n).
scope: shard$n
namespace: $PATRONI_NAMESPACE
name: pg$m
restapi:
  listen: 127.0.0.1:$(member_api_port "$m")
  connect_address: 127.0.0.1:$(member_api_port "$m")
etcd3:
  hosts: [$hosts]
bootstrap:
  dcs:
    ttl: 20
    loop_wait: 1
    retry_timeout: 5
    primary_start_timeout: 0
    maximum_lag_on_failover: 1048576
    synchronous_mode: true
    failsafe_mode: true
    postgresql:
      use_pg_rewind: true
      parameters:
        # Cross-shard transactions prepare on every participant shard (PREPARE TRANSACTION); see
        # PG_MAX_PREPARED_TRANSACTIONS. A standby needs at least the primary's value, so it is cluster-wide.
        max_prepared_transactions: $PG_MAX_PREPARED_TRANSACTIONS
        wal_log_hints: 'on'
  # no-sync: a few seconds less per cluster; only an OS crash right after the bootstrap could cost the data.
  initdb:
  - encoding: UTF8
  - locale: C
  - no-sync
postgresql:
  listen: 127.0.0.1:$(member_pg_port "$m")
  connect_address: 127.0.0.1:$(member_pg_port "$m")
  data_dir: $dir/data
  bin_dir: $PG_BIN
  pgpass: $dir/pgpass
  authentication:
    superuser:
      username: postgres
    replication:
      username: replicator
      password: replicator
    rewind:
      username: postgres
  # As the fixed shards: a local development cluster; anyone on 127.0.0.1 may connect as anyone.
  pg_hba:
  - host all all 127.0.0.1/32 trust
  - host replication all 127.0.0.1/32 trust
  parameters:
    # Loopback TCP only, no Unix socket (socket paths have a length limit).
    unix_socket_directories: ''
EOF
}

# The member of shard n whose REST API says it is the primary, as its PostgreSQL port; fails if none is.
leader_port() {
  local x
  for x in a b; do
    if curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$(member_api_port "$1$x")/primary" 2>/dev/null; then
      member_pg_port "$1$x"
      return 0
    fi
  done
  return 1
}

leader_accepts_writes() {
  local port
  port=$(leader_port "$1") || return 1
  [[ $("$PG_BIN/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc "SELECT NOT pg_is_in_recovery()") == t ]]
}

# True once a member of shard n streams as its synchronous standby.
has_sync_standby() {
  local x
  for x in a b; do
    curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$(member_api_port "$1$x")/sync" 2>/dev/null && return 0
  done
  return 1
}

# Starts the six Patroni members (those not running yet) and returns at once: each cluster bootstraps (initdb on
# the member that wins the initialize key, a base backup on the other) while the directory servers start.
spawn_patroni() {
  local n x patroni_bin
  if $IS_ROOT; then
    id postgres >/dev/null 2>&1 || die "user postgres does not exist (it comes with the postgresql package)"
    runuser -u postgres -- test -x "$RUN" \
      || die "user postgres cannot reach $RUN (a parent directory is not searchable by others); put the repository elsewhere"
  fi
  patroni_bin=$(command -v patroni)
  for n in 1 2 3; do
    for x in a b; do
      local m=$n$x dir="$RUN/pg$n$x" log="$RUN/pg$n$x.log" pidfile="$RUN/pg$n$x.pid" config
      config=$(patroni_config "$m")
      if running "$pidfile" "$config"; then
        say "pg$m already running (pid $(<"$pidfile"), Patroni of shard$n)"
        continue
      fi
      require_free_port "$(member_pg_port "$m")" "pg$m"
      require_free_port "$(member_api_port "$m")" "pg$m REST API"
      mkdir -p "$dir"
      chmod 700 "$dir"
      write_patroni_config "$m"
      touch "$log"
      local as=()
      if $IS_ROOT; then
        chown -R postgres: "$dir" "$log"
        # setpriv executes Patroni in place (runuser would fork and wait), so the pid file names Patroni itself.
        as=(setpriv --reuid=postgres --regid=postgres --init-groups)
      fi
      # A clean environment: PG* and PATRONI_* variables would override the configuration.
      spawn "$pidfile" "$log" ${as[@]+"${as[@]}"} env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$dir" LANG=C.UTF-8 \
        "$patroni_bin" "$config"
      say "pg$m started (pid $(<"$pidfile"), Patroni of shard$n, PostgreSQL port $(member_pg_port "$m"), REST API port $(member_api_port "$m"), log $log)"
    done
  done
}

# Waits for each cluster's leader, creates the shard's database and tables on it, then waits for each
# cluster's synchronous standby, so the shards are registered with their replica in place.
await_patroni() {
  local n port
  for n in 1 2 3; do
    wait_until "shard$n's Patroni leader" "$RUN/pg${n}a.log" "$RUN/pg${n}a.pid" "$(patroni_config "${n}a")" \
      leader_accepts_writes "$n"
    port=$(leader_port "$n")
    say "shard$n: primary on port $port"
    create_schema "$n" "$port"
  done
  for n in 1 2 3; do
    wait_until "shard$n's synchronous standby" "$RUN/pg${n}b.log" "$RUN/pg${n}b.pid" "$(patroni_config "${n}b")" \
      has_sync_standby "$n"
  done
  say "Patroni clusters shard1..3 run, each a primary and a synchronous standby (patronictl -c $(patroni_config 1a) list)"
}

# ---------------------------------------------------------------- (c) directory servers

healthz() {
  curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$1/healthz"
}

# The resolver of in-doubt cross-shard transactions runs in the directory servers (one of them holds the
# role at a time) and connects to the shards as the role that prepared them: the example's, postgres, with
# no password (trust authentication).
RESOLVER_FLAGS=(--resolver-db-user postgres)

start_directories() {
  local i
  for i in 0 1; do
    local name="directory$((i + 1))"
    local pidfile="$RUN/$name.pid" log="$RUN/$name.log"
    local marker="--listen 127.0.0.1:${GRPC_PORTS[i]}"
    if running "$pidfile" "$marker"; then
      say "$name already running (pid $(<"$pidfile"), gRPC port ${GRPC_PORTS[i]})"
      continue
    fi
    require_free_port "${GRPC_PORTS[i]}" "$name gRPC"
    require_free_port "${METRICS_PORTS[i]}" "$name metrics"
    spawn "$pidfile" "$log" "$JAVA" -jar "$SERVER_JAR" --listen "127.0.0.1:${GRPC_PORTS[i]}" \
      --metrics-listen "127.0.0.1:${METRICS_PORTS[i]}" --etcd-endpoints "$ETCD_ENDPOINTS" \
      --etcd-prefix "$ETCD_PREFIX" ${RESOLVER_FLAGS[@]+"${RESOLVER_FLAGS[@]}"}
    say "$name started (pid $(<"$pidfile"), gRPC port ${GRPC_PORTS[i]}, metrics port ${METRICS_PORTS[i]}, log $log)"
  done
  for i in 0 1; do
    local name="directory$((i + 1))"
    wait_until "$name" "$RUN/$name.log" "$RUN/$name.pid" "--listen 127.0.0.1:${GRPC_PORTS[i]}" \
      healthz "${METRICS_PORTS[i]}"
  done
  say "directory servers serving (gRPC ${GRPC_PORTS[*]})"
}

# ---------------------------------------------------------------- (e) demo data

ctl() {
  "$JAVA" -jar "$CLI_JAR" --server "127.0.0.1:${GRPC_PORTS[0]}" "$@"
}

register_demo() {
  local registered i
  registered=$(ctl shard list | awk 'NR > 1 { print $1 }') || die "shardmapctl shard list failed"
  for i in 0 1 2; do
    local n=$((i + 1))
    if grep -qx "shard$n" <<<"$registered"; then
      say "shard$n already registered"
    elif $PATRONI; then
      # No endpoints: the directory reads them from Patroni's keys (the members' conn_url names database
      # postgres, hence --patroni-database) and rewrites them at each failover.
      ctl shard register "shard$n" --patroni-scope "shard$n" --patroni-namespace "$PATRONI_NAMESPACE" \
        --patroni-database "shard$n" >/dev/null
      say "registered shard$n (Patroni cluster $PATRONI_NAMESPACE/shard$n, database shard$n)"
    else
      ctl shard register "shard$n" --host 127.0.0.1 --port "${PG_PORTS[i]}" --database "shard$n" >/dev/null
      say "registered shard$n (127.0.0.1:${PG_PORTS[i]}/shard$n)"
    fi
  done
  create_keyspace users --table users:id
  # The users' accounts, by the same ids and split the same way, so users 1 and 2 of the example (ids
  # -2152535657050944081 and 7960286522194355700) have their accounts on shard2 and shard3.
  create_keyspace accounts --table accounts:user_id --table ledger:user_id
}

create_keyspace() {
  local name=$1 code=0
  shift
  ctl keyspace get "$name" >/dev/null 2>"$RUN/keyspace-get.err" || code=$?
  case $code in
    0) say "keyspace $name already exists" ;;
    3)
      ctl keyspace create "$name" --key-type int64 --strategy range "$@" \
        --range-shards shard1,shard2,shard3 >/dev/null
      say "created keyspace $name (int64 keys, range strategy, split evenly over shard1..3)"
      ;;
    *) cat "$RUN/keyspace-get.err" >&2; die "shardmapctl keyspace get $name failed (exit $code)" ;;
  esac
  rm -f "$RUN/keyspace-get.err"
}

# countries, a reference table of keyspace users (docs/reference-tables.md): seeded on shard1, then declared
# with the migrator, which guards shard1's copy, copies it to shard2 and shard3 and records it in etcd. From
# then on it is written only through the SDK (the example's countries --set); psql writes are refused.
declare_countries() {
  local listed out
  # (The migrator jar has no SLF4J binding: its one-time notice is noise here.)
  listed=$("$ROOT/deploy/local/migrator" reference list 2> >(grep -v '^SLF4J' >&2)) \
    || die "deploy/local/migrator reference list failed"
  if grep -q '^public.countries ' <<<"$listed"; then
    say "reference table countries already declared"
    return
  fi
  local port=${PG_PORTS[0]}
  if $PATRONI; then
    port=$(leader_port 1) || die "shard1's Patroni cluster has no primary"
  fi
  if [[ $("$PG_BIN/psql" -h 127.0.0.1 -p "$port" -U postgres -d shard1 -tAc "SELECT count(*) FROM countries") == 0 ]]; then
    "$PG_BIN/psql" -q -h 127.0.0.1 -p "$port" -U postgres -d shard1 -v ON_ERROR_STOP=1 \
      -c "INSERT INTO countries VALUES ('fr', 'France'), ('de', 'Germany'), ('jp', 'Japan'), ('br', 'Brazil')" >/dev/null
  fi
  out=$("$ROOT/deploy/local/migrator" reference add countries --keyspace users --source shard1 2>&1 | grep -v '^SLF4J') \
    || { printf '%s\n' "$out" >&2; die "declaring the reference table countries failed (above)"; }
  say "reference table countries of keyspace users: $(tail -n 1 <<<"$out")"
}

# ---------------------------------------------------------------- (f) the example service

# The directory servers as the example's --directory list.
directory_list() {
  local p list=""
  for p in "${GRPC_PORTS[@]}"; do
    list+="${list:+,}127.0.0.1:$p"
  done
  echo "$list"
}

# Writes and reads EXAMPLE_USERS users through the client SDK (examples/, UsersExample) and prints its
# report. The users are the same on every run (upserts), so running up.sh again changes nothing but names.
run_example() {
  if [[ $EXAMPLE_USERS -eq 0 ]]; then
    say "example run skipped (SHARDMAP_LOCAL_EXAMPLE_USERS=0)"
    return
  fi
  say ""
  say "running the example service: $EXAMPLE_USERS users through the client SDK (examples/, io.shardmap.examples.UsersExample)"
  "$JAVA" -jar "$EXAMPLE_JAR" --directory "$(directory_list)" --users "$EXAMPLE_USERS" --pg-user postgres \
    || die "the example service failed (above); the system itself is up: rerun it with: $JAVA -jar $EXAMPLE_JAR --directory $(directory_list)"
  say ""
  say "a transfer between users 1 and 2, whose accounts are on different shards: one transaction across both (ShardmapData.acrossShards)"
  # --either-way: from whichever has more, so reruns of up.sh move the money back and forth.
  "$JAVA" -jar "$EXAMPLE_JAR" transfer 1 2 100 --either-way --directory "$(directory_list)" --pg-user postgres \
    || die "the transfer failed (above); the system itself is up: rerun it with: $JAVA -jar $EXAMPLE_JAR transfer 1 2 100"
  say ""
  say "new users get global ids (ShardmapClient.ids): each is written on the shard that owns its id"
  "$JAVA" -jar "$EXAMPLE_JAR" signup Ada Grace --country fr --directory "$(directory_list)" --pg-user postgres \
    || die "signup failed (above); the system itself is up: rerun it with: $JAVA -jar $EXAMPLE_JAR signup Ada Grace --country fr"
  say ""
  say "the reference table countries: one write reaches every copy (ShardmapData.writeReference); each shard joins its users with its own copy"
  "$JAVA" -jar "$EXAMPLE_JAR" countries --set it Italy --directory "$(directory_list)" --pg-user postgres \
    || die "the countries command failed (above); the system itself is up: rerun it with: $JAVA -jar $EXAMPLE_JAR countries"
}

try_it() {
  local g=${GRPC_PORTS[0]}
  local pg_ports
  pg_ports=$(IFS=,; echo "${PG_PORTS[*]}")
  local shards="PostgreSQL shard1..3 on 127.0.0.1 ports $pg_ports"
  if $PATRONI; then
    shards="shard1..3 as Patroni clusters (PostgreSQL ports $pg_ports and $(IFS=,; echo "${PATRONI_PG_PORTS[*]}"))"
  fi
  cat <<EOF

Shardmap is up: etcd $ETCD_ENDPOINTS, $shards,
directory servers on 127.0.0.1:${GRPC_PORTS[0]} and 127.0.0.1:${GRPC_PORTS[1]} (metrics ${METRICS_PORTS[0]}, ${METRICS_PORTS[1]}).
Fleet page (load heatmap, shard sizes, hottest units, moves): http://127.0.0.1:${METRICS_PORTS[0]}/fleet
Fleet status in a terminal: java -jar $CLI_JAR --server 127.0.0.1:$g status
Logs and data: $RUN

Try it:
  export SHARDMAP_SERVER=127.0.0.1:$g
  alias shardmapctl='$JAVA -jar $CLI_JAR'
  shardmapctl keyspace get users
  shardmapctl lookup users 42
  shardmapctl lookup users -5 42 9000000000000000000
  shardmapctl --server 127.0.0.1:${GRPC_PORTS[1]} shard list
  shardmapctl watch users            # then, in another terminal: shardmapctl range split users 1000
  shardmapctl count users users --pg-user postgres                      # one cross-shard count
  shardmapctl query users "SELECT id, name FROM users ORDER BY id DESC LIMIT 5" --pg-user postgres

  buf curl --protocol grpc --http2-prior-knowledge --data '{"keyspace":"users","key":{"int_key":"42"}}' http://127.0.0.1:$g/shardmap.v1.ShardMapService/Lookup
  grpcurl -plaintext -d '{"keyspace":"users","key":{"int_key":"42"}}' 127.0.0.1:$g shardmap.v1.ShardMapService/Lookup

  psql -h 127.0.0.1 -p ${PG_PORTS[0]} -U postgres shard1
  curl -s http://127.0.0.1:${METRICS_PORTS[0]}/metrics | head

  # the example service (examples/): upserts the same users again, then checks each row's shard against the map
  $JAVA -jar $EXAMPLE_JAR --directory $(directory_list) --users 1000 --verify
  $JAVA -jar $EXAMPLE_JAR --directory $(directory_list) --duration 60s   # meanwhile: shardmapctl range split users 5000

  # a transfer across shards (README: Transactions across shards), the balances and ledger, what is in doubt
  $JAVA -jar $EXAMPLE_JAR transfer 1 2 100 --directory $(directory_list)
  $JAVA -jar $EXAMPLE_JAR transfer 1 2 100 --pause-in-work 60s --directory $(directory_list)   # kill -9 the pid it prints: nothing changes
  $JAVA -jar $EXAMPLE_JAR accounts 1 2 --directory $(directory_list)
  shardmapctl txn list

  # global ids and a reference table (README: Global ids and reference tables)
  $JAVA -jar $EXAMPLE_JAR signup Linus --country jp --directory $(directory_list)
  $JAVA -jar $EXAMPLE_JAR countries --set jp 'Nippon' --directory $(directory_list)
  psql -h 127.0.0.1 -p ${PG_PORTS[1]} -U postgres shard2 -c "UPDATE countries SET name = 'x'"   # refused: a reference table
  $ROOT/deploy/local/migrator reference verify --table countries

  # where the data and the load are (README: See where the data and the load are)
  shardmapctl status                   # per keyspace and shard: units, rows, bytes, load, skew, hottest units, moves
  shardmapctl hot --keyspace users     # the hottest units, each with what to split or move
  $ROOT/deploy/local/migrator balancer plan       # what the balancer would do now (it is off until enabled)

  # the migrator (docs/migrator.md): moves a range's rows to another shard while applications write
  $ROOT/deploy/local/migrator move users 3074457345618258602.. --to shard2 --cleanup-grace 5s
  $ROOT/deploy/local/migrator list

Stop it: deploy/local/down.sh   (--purge also deletes $RUN)
EOF
  if $PATRONI; then
    cat <<EOF

The shards are Patroni clusters (README: Shards as Patroni clusters). A failover:
  patronictl -c $(patroni_config 1a) list                  # shard1's members: which one leads
  leader=\$(ETCDCTL_API=3 etcdctl --endpoints $ETCD_ENDPOINTS get --print-value-only $PATRONI_NAMESPACE/shard1/leader)
  kill -9 \$(head -n 1 $RUN/\$leader/data/postmaster.pid)     # shard1's primary postmaster
  shardmapctl shard list                                      # a few seconds later: the new primary, TERM + 1
EOF
  fi
}

main() {
  install_packages
  mkdir -p "$RUN"
  check_settings
  preflight_ports
  build_jars
  start_etcd
  if $PATRONI; then
    spawn_patroni
    start_directories
    await_patroni
  else
    start_postgres
    start_directories
  fi
  register_demo
  declare_countries
  run_example
  try_it
}

main "$@"
