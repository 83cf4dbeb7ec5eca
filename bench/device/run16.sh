#!/usr/bin/env bash
# The 16-core scaling run of issue 5, on the device machine (see make_bundle.sh):
#   run(command="bash bench/device/run16.sh", carry=[".devsite"], timeout_s=480)
# Writes $OUT/bench16.txt (the scaling table, first, so a timeout keeps it), then
# $OUT/probe16.txt (bench/scaling_probe.py: threads against processes, env-only, training and
# training on replayed steps, at 1 and 16), $OUT/profile16.txt (where 16 learners' time goes)
# and $OUT/machine.txt; with GIL=1 also $OUT/gil.txt (bench/gil_share.py). About 6 minutes.
# THREADS / SECONDS_PER / PROBE_THREADS / PROBE_SECONDS / PROFILE_THREADS / EXTRAS=0 shorten it
# for a local dry run.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD/.devsite:$PWD" PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore PATH="$PWD/.devsite/bin:$PATH"
OUT=${OUT:-$(mktemp -d)}
PY=${PY:-python3}
THREADS=${THREADS:-1,2,4,8,16}
SECONDS_PER=${SECONDS_PER:-10}
{ nproc; lscpu | head -25; $PY -c "import numba, numpy, scipy; print('numba', numba.__version__, 'numpy', numpy.__version__, 'scipy', scipy.__version__)"; } > "$OUT/machine.txt" 2>&1 || true
# thread pinning may be refused in a sandboxed kernel: then measure unpinned, and say so
pin=--pin-threads
$PY -c "import os; os.sched_setaffinity(0, {0}); assert os.sched_getaffinity(0) == {0}" 2>/dev/null || pin=--no-pin-threads
echo "placement flag: $pin" | tee -a "$OUT/machine.txt"
$PY -m fastasync.cli bench --env Pong-v5 --threads "$THREADS" --seconds "$SECONDS_PER" --warmup 3 $pin 2>&1 \
  | tee "$OUT/bench16.txt"
[ "${EXTRAS:-1}" = 1 ] || exit 0
# threads against processes (bench/scaling_probe.py): is the shortfall at 16 the hardware's or the process's?
$PY bench/scaling_probe.py --env Pong-v5 --threads "${PROBE_THREADS:-1,16}" --seconds "${PROBE_SECONDS:-5}" --warmup 2 2>&1 \
  | tee "$OUT/probe16.txt" || true
$PY -m fastasync.cli profile --env Pong-v5 --threads "${PROFILE_THREADS:-16}" --seconds 8 --warmup 3 $pin 2>&1 \
  | tee "$OUT/profile16.txt" || true
[ "${GIL:-0}" = 1 ] || exit 0
for mode in ceiling train; do
  $PY bench/gil_share.py --mode $mode --seconds 6 --warmup 4 2>&1 | tee -a "$OUT/gil.txt" || true
done
