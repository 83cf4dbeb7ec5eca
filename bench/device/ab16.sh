#!/usr/bin/env bash
# A/B of two checkouts at 1 and 16 threads on the 16-core device machine, alternated:
#   mkdir -p .ab/base && git archive <base-rev> fastasync | tar -x -C .ab/base   # here
#   run(command="bash bench/device/ab16.sh", carry=[".devsite", ".ab"], timeout_s=480)
# "new" is this working tree's fastasync, "base" the copy in .ab/base (ignored: add /.ab/ to
# .git/info/exclude). Writes $OUT/ab16.txt: `fastasync bench` tables of new, base (1,16 each),
# then new, base again at 16 only; with PROBE=1 then $OUT/probe16.txt (bench/scaling_probe.py,
# training in threads and in processes, phase by phase, new); then more new, base pairs at 16
# up to ROUNDS pairs in all (default 2); with EXTRAS=1 (default) then $OUT/profile16.txt (new,
# 16 threads) and new with 16 envs per thread at 16 threads. $OUT/ab16-full.log has
# everything. ~6 minutes with the defaults.
# N=2 SECONDS_PER=2 PY=<a Python 3.12> for a local dry run.
set -uo pipefail
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
OUT=${OUT:-$(mktemp -d)}
PY=${PY:-python3}
SECONDS_PER=${SECONDS_PER:-8}
pin=--pin-threads
$PY -c "import os; os.sched_setaffinity(0, {0}); assert os.sched_getaffinity(0) == {0}" 2>/dev/null || pin=--no-pin-threads
bench() {  # bench <which> <threads>
  local top=$PWD root=$PWD
  [ "$1" = base ] && root=$PWD/.ab/base
  echo "=== $1 ($root) threads $2 $(date +%T)" | tee -a "$OUT/ab16.txt"
  # from inside the checkout: `python -m` puts the working directory first on sys.path
  (cd "$root" && export PYTHONPATH="$top/.devsite:$root" \
    && $PY -c "import fastasync; print('imports', fastasync.__file__)" \
    && $PY -m fastasync.cli bench --env Pong-v5 --threads "$2" --seconds "$SECONDS_PER" --warmup 2 $pin) 2>&1 \
    | tee -a "$OUT/ab16-full.log" | sed -n '/^imports/p;/^threads/,/^ratio/p' | tee -a "$OUT/ab16.txt"
}
N=${N:-16}
bench new "1,$N"
bench base "1,$N"
bench new "$N"
bench base "$N"
if [ "${PROBE:-0}" = 1 ]; then
  PYTHONPATH="$PWD/.devsite:$PWD" $PY bench/scaling_probe.py --env Pong-v5 --modes train-threads,train-procs \
    --threads "1,$N" --seconds "${PROBE_SECONDS:-5}" --warmup 2 2>&1 | tee "$OUT/probe16.txt"
fi
for _ in $(seq 3 "${ROUNDS:-2}"); do
  bench new "$N"
  bench base "$N"
done
[ "${EXTRAS:-1}" = 1 ] || exit 0
PYTHONPATH="$PWD/.devsite:$PWD" $PY -m fastasync.cli profile --env Pong-v5 --threads "$N" \
  --seconds 6 --warmup 2 $pin 2>&1 | tee "$OUT/profile16.txt"
# for scale, not a default: 16 envs per learner thread at N threads (new)
echo "=== new, --envs-per-thread 16, threads $N $(date +%T)" | tee -a "$OUT/ab16.txt"
PYTHONPATH="$PWD/.devsite:$PWD" $PY -m fastasync.cli bench --env Pong-v5 --threads "$N" --envs-per-thread 16 \
  --seconds "$SECONDS_PER" --warmup 2 $pin 2>&1 | tee -a "$OUT/ab16-full.log" | sed -n '/^threads/,/^ratio/p' \
  | tee -a "$OUT/ab16.txt"
