#!/usr/bin/env bash
# Stops what deploy/local/up.sh started (directory servers, PostgreSQL shards or their Patroni members, etcd members), found by the
# pid files and data directories in deploy/.run. Stops only processes whose command line still matches
# what up.sh started, so a recycled pid is never killed. --purge also deletes deploy/.run (all data).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
RUN="$ROOT/deploy/.run"
PG_BIN=${SHARDMAP_LOCAL_PG_BIN:-/usr/lib/postgresql/15/bin}
STOP_SECONDS=${SHARDMAP_LOCAL_STOP_SECONDS:-30}

purge=false
for arg in "$@"; do
  case $arg in
    --purge) purge=true ;;
    -h | --help)
      echo "usage: deploy/local/down.sh [--purge]   (--purge also deletes $RUN)"
      exit 0
      ;;
    *)
      echo "error: unknown argument '$arg' (usage: deploy/local/down.sh [--purge])" >&2
      exit 2
      ;;
  esac
done

say() { printf '%s\n' "$*"; }

IS_ROOT=false
[[ $(id -u) -eq 0 ]] && IS_ROOT=true

as_postgres() {
  if $IS_ROOT; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# Prints the pid from the pid file if that process is alive and its command line contains the marker.
live_pid() {
  local pidfile=$1 marker=$2 pid
  [[ -f $pidfile ]] || return 1
  pid=$(<"$pidfile")
  [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$marker" || return 1
  echo "$pid"
}

# SIGTERM, then up to STOP_SECONDS for a clean exit, then SIGKILL.
stop_process() {
  local name=$1 pidfile=$2 marker=$3 pid
  if ! pid=$(live_pid "$pidfile" "$marker"); then
    say "$name not running"
    rm -f "$pidfile"
    return
  fi
  # up.sh starts each process as the leader of its own session and process group: signal the group, so
  # any children go too.
  local target=$pid
  [[ $(ps -o pgid= -p "$pid" | tr -d ' ') == "$pid" ]] && target=-$pid
  kill -TERM -- "$target" 2>/dev/null || true
  local deadline=$((SECONDS + STOP_SECONDS))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      say "$name (pid $pid) did not stop in ${STOP_SECONDS}s; killing it"
      kill -KILL -- "$target" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  rm -f "$pidfile"
  say "stopped $name (pid $pid)"
}

stop_postgres() {
  local n=$1 data="$RUN/pg$1"
  if [[ ! -f $data/PG_VERSION ]]; then
    rm -f "$RUN/pg$n.pid"
    return
  fi
  if as_postgres "$PG_BIN/pg_ctl" status -D "$data" >/dev/null 2>&1; then
    if as_postgres "$PG_BIN/pg_ctl" stop -D "$data" -m fast -w -t "$STOP_SECONDS" >/dev/null; then
      say "stopped pg$n"
    else
      # pg_ctl gave up: fall back to the postmaster's pid (its command line names the data directory).
      stop_process "pg$n" "$RUN/pg$n.pid" "$data"
    fi
  else
    say "pg$n not running"
  fi
  rm -f "$RUN/pg$n.pid"
}

# up.sh --patroni's members pg1a, pg1b, ... pg3b: SIGTERM to every Patroni at once (each stops its PostgreSQL
# with a fast shutdown and hands its leader key over), then up to STOP_SECONDS for all to exit, then SIGKILL.
# Patroni runs PostgreSQL in a session of its own, so a postmaster that outlived a killed Patroni is stopped
# with pg_ctl after.
stop_patroni() {
  local m pid pids=() names=()
  for m in 1a 1b 2a 2b 3a 3b; do
    [[ -d $RUN/pg$m ]] || continue
    if pid=$(live_pid "$RUN/pg$m.pid" "$RUN/pg$m/patroni.yml"); then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
      names+=("pg$m")
    else
      say "pg$m (Patroni) not running"
    fi
  done
  local i deadline=$((SECONDS + STOP_SECONDS))
  for i in "${!pids[@]}"; do
    while kill -0 "${pids[i]}" 2>/dev/null; do
      if ((SECONDS >= deadline)); then
        say "${names[i]} (Patroni, pid ${pids[i]}) did not stop in ${STOP_SECONDS}s; killing it"
        kill -KILL "${pids[i]}" 2>/dev/null || true
        break
      fi
      sleep 0.2
    done
    say "stopped ${names[i]} (Patroni, pid ${pids[i]})"
  done
  for m in 1a 1b 2a 2b 3a 3b; do
    rm -f "$RUN/pg$m.pid"
    local data="$RUN/pg$m/data"
    if [[ -f $data/PG_VERSION ]] && as_postgres "$PG_BIN/pg_ctl" status -D "$data" >/dev/null 2>&1; then
      as_postgres "$PG_BIN/pg_ctl" stop -D "$data" -m fast -w -t "$STOP_SECONDS" >/dev/null || true
      say "stopped pg$m's PostgreSQL, left running by its Patroni"
    fi
  done
}

if [[ -d $RUN ]]; then
  # Clients first, store last: directory servers, then the shards, then etcd (which Patroni needs to hand
  # its leader keys over).
  for n in 1 2; do
    stop_process "directory$n" "$RUN/directory$n.pid" "shardmap-server.jar"
  done
  stop_patroni
  for n in 1 2 3; do
    stop_postgres "$n"
  done
  for n in 1 2 3; do
    stop_process "etcd$n" "$RUN/etcd$n.pid" "$RUN/etcd$n"
  done
else
  say "nothing to stop ($RUN does not exist)"
fi

if $purge && [[ -d $RUN ]]; then
  rm -rf "$RUN"
  say "deleted $RUN"
fi
