#!/usr/bin/env bash
# How long the migrator's command line takes to answer, against the local system that
# deploy/local/up.sh started (docs/benchmarks.md, "13. Migrator command latency"). Each round times, from
# process start (wall clock, in this shell) to the line that answers:
#   java -version                     the JVM's own start-up (baseline)
#   migrator --help                   the same jar's start-up, no etcd, no shard
#   migrator list                     one etcd read
#   a refused move                    planning until the refusal (the target already owns the range)
#   move ... --to ... (foreground)    until its "planned" line (the move then runs to the end, and the next
#                                     round moves the range back)
# and prints one line per round, then the median of each column. Usage:
#   bench/migrator-latency.sh [ROUNDS] [extra java options, e.g. -XX:TieredStopAtLevel=1]
# The moved range is the demo keyspace's top range (3074457345618258602..), between shard3 and shard2; it
# holds about a third of the example's 1,000 users.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
ROUNDS=${1:-7}
shift || true
JAVA_OPTS=("$@")
MIGRATOR=("$ROOT/deploy/local/migrator")
RANGE=3074457345618258602..

ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

# Milliseconds until the command exits (its output discarded).
timed() {
  local t0
  t0=$(date +%s%N)
  "$@" >/dev/null 2>&1 || true
  ms_since "$t0"
}

# Milliseconds until the move prints its "planned" progress line; waits for the move to end.
until_planned() {
  local t0 line at=""
  t0=$(date +%s%N)
  while IFS= read -r line; do
    if [[ -z $at && $line == *" planned "* ]]; then
      at=$(ms_since "$t0")
    fi
  done < <("${MIGRATOR[@]}" --progress lines move users "$RANGE" --to "$1" --cleanup-grace 0 2>&1)
  echo "${at:--}"
}

owner() {
  java -jar "$ROOT/cli/target/shardmapctl.jar" --server "${SHARDMAP_SERVER:-127.0.0.1:7700}" keyspace get users \
    | awk -v r="$RANGE" '$1 == r { print $2 }'
}

median() { sort -n | awk '{ a[NR] = $1 } END { if (NR == 0) print "-"; else print a[int((NR + 1) / 2)] }'; }

export JDK_JAVA_OPTIONS="${JAVA_OPTS[*]:-}"
[[ -z $JDK_JAVA_OPTIONS ]] && unset JDK_JAVA_OPTIONS
printf '%-6s %10s %10s %10s %10s %12s %s\n' round java-ver help list refused to-planned load
declare -a C1 C2 C3 C4 C5
for ((i = 1; i <= ROUNDS; i++)); do
  from=$(owner)
  [[ -n $from ]] || { echo "error: range $RANGE of keyspace users not found (is deploy/local/up.sh's system up?)" >&2; exit 1; }
  to=$([[ $from == shard3 ]] && echo shard2 || echo shard3)
  c1=$(timed java -version)
  c2=$(timed "${MIGRATOR[@]}" --help)
  c3=$(timed "${MIGRATOR[@]}" list)
  c4=$(timed "${MIGRATOR[@]}" move users "$RANGE" --to "$from")
  c5=$(until_planned "$to")
  printf '%-6s %10s %10s %10s %10s %12s %s\n' "$i" "$c1" "$c2" "$c3" "$c4" "$c5" "$(cut -d' ' -f1 /proc/loadavg)"
  C1+=("$c1"); C2+=("$c2"); C3+=("$c3"); C4+=("$c4"); C5+=("$c5")
done
printf '%-6s %10s %10s %10s %10s %12s\n' median \
  "$(printf '%s\n' "${C1[@]}" | median)" "$(printf '%s\n' "${C2[@]}" | median)" \
  "$(printf '%s\n' "${C3[@]}" | median)" "$(printf '%s\n' "${C4[@]}" | median)" \
  "$(printf '%s\n' "${C5[@]}" | grep -v -- - | median)"
echo "(milliseconds from process start; java-ver = java -version, help = migrator --help)"
