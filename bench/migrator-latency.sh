#!/usr/bin/env bash
# How long the migrator's command line takes to answer, against the local system that
# deploy/local/up.sh started (docs/benchmarks.md, "13. Migrator command latency"). Each round times, from
# process start (wall clock, in this shell) to the line that answers:
#   java -version                     the JVM's own start-up (the same-run baseline)
#   migrator --help                   the same jar's start-up, no etcd, no shard
#   migrator list                     one etcd read
#   a refused move                    planning until the refusal (the target already owns the range)
#   move ... --to ... (foreground)    until its "planned" line (the move then runs to the end, and the next
#                                     round moves the range back)
# with deploy/local/migrator (the jar, with its class-data sharing archive) and, if BASELINE_JAR names
# another build of the jar, the same commands with plain 'java -jar BASELINE_JAR' in the same round.
# Prints one line per round, then the median of each column. Usage:
#   [BASELINE_JAR=old.jar] [SHARDMAP_SERVER=127.0.0.1:7700] bench/migrator-latency.sh [ROUNDS]
# The moved range is the demo keyspace's top range (3074457345618258602..), between shard3 and shard2; it
# holds about a third of the example's 1,000 users.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
ROUNDS=${1:-7}
RANGE=3074457345618258602..
# deploy/local/migrator fills in the local etcd's endpoints and prefix; the baseline jar gets them too.
SETTINGS="$ROOT/deploy/.run/settings"
if [[ -z ${SHARDMAP_ETCD:-} && -f $SETTINGS ]]; then
  endpoints=""
  read -r -a ports <<<"$(sed -n 's/^etcd client ports \([0-9 ]*\);.*/\1/p' "$SETTINGS")"
  for p in "${ports[@]}"; do endpoints+="${endpoints:+,}http://127.0.0.1:$p"; done
  export SHARDMAP_ETCD=$endpoints
fi

ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

# Milliseconds until the command exits (its output discarded).
timed() {
  local t0
  t0=$(date +%s%N)
  "$@" >/dev/null 2>&1 || true
  ms_since "$t0"
}

# Milliseconds until the move (command given) prints its "planned" progress line; waits for the move to end.
until_planned() {
  local t0 line at="" last=""
  t0=$(date +%s%N)
  while IFS= read -r line; do
    if [[ -z $at && $line == *" planned "* ]]; then
      at=$(ms_since "$t0")
    fi
    [[ $line == error:* ]] && last=$line
  done < <("$@" 2>&1)
  # A move that never printed "planned" shows as "-" and its error goes to stderr.
  [[ -z $at ]] && echo "no planned line: ${last:-(no error printed)}" >&2
  echo "${at:--}"
}

owner() {
  java -jar "$ROOT/cli/target/shardmapctl.jar" --server "${SHARDMAP_SERVER:-127.0.0.1:7700}" keyspace get users \
    | awk -v r="$RANGE" '$1 == r { print $2 }'
}

median() { sort -n | awk '{ a[NR] = $1 } END { if (NR == 0) print "-"; else print a[int((NR + 1) / 2)] }'; }

# One configuration's four timings of a round: help, list, refused move, move until planned.
round() {
  local from=$1 to=$2
  shift 2
  echo "$(timed "$@" --help) $(timed "$@" list) $(timed "$@" move users "$RANGE" --to "$from")" \
    "$(until_planned "$@" --progress lines move users "$RANGE" --to "$to" --cleanup-grace 0)"
}

configs=("migrator")
[[ -n ${BASELINE_JAR:-} ]] && configs+=("baseline")
declare -A col
printf '%-6s %-9s %9s %9s %9s %9s %11s %s\n' round config java-ver help list refused to-planned load
for ((i = 1; i <= ROUNDS; i++)); do
  for c in "${configs[@]}"; do
    from=$(owner)
    [[ -n $from ]] || { echo "error: range $RANGE of keyspace users not found (is deploy/local/up.sh's system up?)" >&2; exit 1; }
    to=$([[ $from == shard3 ]] && echo shard2 || echo shard3)
    jv=$(timed java -version)
    if [[ $c == migrator ]]; then
      read -r h l r p <<<"$(round "$from" "$to" "$ROOT/deploy/local/migrator")"
    else
      read -r h l r p <<<"$(round "$from" "$to" java -jar "$BASELINE_JAR")"
    fi
    printf '%-6s %-9s %9s %9s %9s %9s %11s %s\n' "$i" "$c" "$jv" "$h" "$l" "$r" "$p" "$(cut -d' ' -f1 /proc/loadavg)"
    col[$c.jv]+="$jv "; col[$c.h]+="$h "; col[$c.l]+="$l "; col[$c.r]+="$r "; col[$c.p]+="$p "
  done
done
for c in "${configs[@]}"; do
  med() { tr ' ' '\n' <<<"${col[$c.$1]}" | grep -E '^[0-9]+$' | median; }
  printf '%-6s %-9s %9s %9s %9s %9s %11s\n' median "$c" "$(med jv)" "$(med h)" "$(med l)" "$(med r)" "$(med p)"
done
echo "(milliseconds from process start; java-ver = java -version, help = migrator --help)"
