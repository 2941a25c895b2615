#!/usr/bin/env bash
# The device check of issue 17, in ONE call of the `device` tool (one H200; its image has torch
# for Python 3.12 but not scanpy, anndata or leidenalg; 10 minutes per command). Steps, each
# with its own time limit inside a budget for the whole call, so one failure or hang does not
# eat the rest:
#   env            versions, the GPU, fp32 matmul and pinned host-to-device rates
#   (background)   the 1M-cell simulated matrix, cached for the scaling steps
#   pbmc           tl.scdcc (true k) and tl.desc (defaults, true k) on 10X PBMC: time and ARI
#                  against the committed CPU figures and the targets; scDCC (true k) and DESC
#                  (defaults) again with precision="bfloat16"
#   tests          the test suite with the tools on CUDA (SCDEEPCLUST_TEST_DEVICE=cuda)
#   scaling_scdcc  benchmarks/scaling.py, one million cells x 2,000 genes, tl.scdcc
#   scaling_desc   the same for tl.desc
# A summary (summary.md, summary.json) and a log per step go to $OUT (./gpu_check_out when
# unset); summary.md is printed last.
#
# Prepare here, once per session: benchmarks/gpu_wheels.sh (wheels and data into .gpu_carry/).
# Then, with the device tool:
#   run(command="bash benchmarks/gpu_check.sh", carry=[".gpu_carry"], timeout_s=600)
# Rerun only some steps: bash benchmarks/gpu_check.sh --steps "scaling_desc" --budget 300
# Here, on the CPU, the same flow at tiny sizes: bash benchmarks/gpu_check.sh --dry-run
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DRY=0
BUDGET=""
STEPS="env pbmc tests scaling_scdcc scaling_desc"
while [ $# -gt 0 ]; do
    case $1 in
        --dry-run) DRY=1 ;;
        --budget) BUDGET=$2; shift ;;
        --steps) STEPS=$2; shift ;;
        *) echo "usage: $0 [--dry-run] [--budget SECONDS] [--steps \"env pbmc ...\"]" >&2; exit 2 ;;
    esac
    shift
done

if [ $DRY = 1 ]; then
    DEVICE=cpu; SIZE=3000; BUDGET=${BUDGET:-300}
    CAPS=(--max-pretrain-epochs 1 --max-epochs 1)
    TESTS=(tests/test_data.py tests/test_device_placement.py -k "guard or host_batches or gather")
else
    # Inside the 600 s of one command: each step stops 15 s before the budget is spent.
    DEVICE=cuda; SIZE=1000000; BUDGET=${BUDGET:-580}
    CAPS=()
    TESTS=(tests)
fi
START=$(date +%s)
DEADLINE=$((START + BUDGET))
OUT=${OUT:-$ROOT/gpu_check_out}
WORK=$(mktemp -d /tmp/gpu_check.XXXXXX)
CACHE=/tmp/scdeepclust_simulated
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON=$ROOT/.venv/bin/python; else PYTHON=python3; fi
fi

# The packages the device's image lacks, from wheels carried in .gpu_carry/wheels (no network
# there), into a folder of their own.
if compgen -G ".gpu_carry/wheels/*.whl" >/dev/null && ! "$PYTHON" -c "import scanpy, leidenalg" 2>/dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .gpu_carry/wheels/*.whl >"$WORK/install.log" 2>&1 \
        || { echo "installing the carried wheels failed:"; tail -n 20 "$WORK/install.log"; }
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
if [ -z "${SCDEEPCLUST_DATA:-}" ] && [ ! -d ../shared/data ] && [ -d .gpu_carry/data ]; then
    export SCDEEPCLUST_DATA=$ROOT/.gpu_carry/data  # ../shared does not travel with the tree
fi
# scaling.py's tables go to the work folder (folded into the summary), not over the committed ones.
export SCDEEPCLUST_RESULTS=$WORK/results
# anndata 0.12 (carried) refuses to write pandas 3's string columns unless told to: under
# pandas 3 the tests that write .h5ad would fail for that alone, which says nothing of the GPU.
OVERRIDES=""
if "$PYTHON" -c "import sys, pandas; sys.exit(int(pandas.__version__.split('.')[0]) < 3)" 2>/dev/null; then
    export ANNDATA_ALLOW_WRITE_NULLABLE_STRINGS=1
    OVERRIDES="ANNDATA_ALLOW_WRITE_NULLABLE_STRINGS=1 (pandas 3)"
fi

COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
printf '{"dry_run": %s, "date": "%s", "commit": "%s", "budget_s": %s, "steps": "%s", "overrides": "%s"}\n' \
    "$([ $DRY = 1 ] && echo true || echo false)" "$(date -u +%FT%TZ)" "$COMMIT" "$BUDGET" "$STEPS" \
    "$OVERRIDES" >"$WORK/meta.json"

wanted() { [[ " $STEPS " == *" $1 "* ]]; }

# step NAME LIMIT COMMAND...: run COMMAND for at most LIMIT seconds (less if the budget is
# nearly spent; skipped below 20 s), its output in $OUT/NAME.log, its outcome in steps.tsv.
step() {
    local name=$1 limit=$2
    shift 2
    wanted "$name" || return 0
    local left=$((DEADLINE - $(date +%s) - 15))
    [ "$left" -lt "$limit" ] && limit=$left
    if [ "$limit" -lt 20 ]; then
        printf '%s\tskipped: out of time\t0\t0\n' "$name" >>"$WORK/steps.tsv"
        echo "== $name: skipped, out of time"
        return 0
    fi
    echo "== $name (at most ${limit} s)"
    local t0=$(date +%s)
    timeout --kill-after=10 "$limit" "$@" >"$OUT/$name.log" 2>&1
    local rc=$? status=ok
    [ $rc -eq 124 ] || [ $rc -eq 137 ] && status="timed out"
    [ $rc -ne 0 ] && [ "$status" = ok ] && status="failed (exit $rc)"
    printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$(($(date +%s) - t0))" "$limit" >>"$WORK/steps.tsv"
    echo "   $status after $(($(date +%s) - t0)) s; last lines:"
    tail -n 4 "$OUT/$name.log" | sed 's/^/   | /'
}

step env 60 "$PYTHON" benchmarks/gpu_check.py env --device "$DEVICE" --work "$WORK"

if wanted scaling_scdcc || wanted scaling_desc; then
    # Simulating a million cells is single-threaded work of minutes: done beside the next
    # steps, into the cache the scaling steps read (they wait on its lock if it is not done).
    timeout $((DEADLINE - $(date +%s))) "$PYTHON" benchmarks/scaling.py --prepare \
        --sizes "$SIZE" --cache "$CACHE" >"$OUT/simulate.log" 2>&1 &
    SIMULATING=$!
    sleep 2  # let it take the cache's lock first
fi

DRY_FLAG=()
[ $DRY = 1 ] && DRY_FLAG=(--dry-run)
step pbmc 150 "$PYTHON" benchmarks/gpu_check.py pbmc --device "$DEVICE" --work "$WORK" "${DRY_FLAG[@]}"

# -v: a line per test as it ends, so a run stopped at its limit still says what passed.
PYTEST_OPTS=(-v -p no:cacheprovider)
THREADS=()
# In parallel where pytest-xdist is installed (the device's image has it): files as units, so
# that the tests of a module share its fixtures and its process; 2 threads each on 16 cores.
if [ $DRY = 0 ] && "$PYTHON" -c "import xdist" 2>/dev/null; then
    PYTEST_OPTS+=(-n 6 --dist loadfile)
    THREADS=(OMP_NUM_THREADS=2)
fi
if "$PYTHON" -c "import pytest_timeout" 2>/dev/null; then PYTEST_OPTS+=(--timeout 150); fi
# The tutorial notebook needs a Jupyter kernel, which the device's image lacks.
step tests 180 env SCDEEPCLUST_TEST_DEVICE="$DEVICE" "${THREADS[@]}" \
    "$PYTHON" -m pytest "${PYTEST_OPTS[@]}" --ignore tests/test_notebook.py "${TESTS[@]}"

# 200 s each: the target is 180 s per tool, and data loading and start-up come on top.
for tool in scdcc desc; do
    step "scaling_$tool" 200 "$PYTHON" benchmarks/scaling.py --sizes "$SIZE" --tools "$tool" \
        --devices "$DEVICE" --cache "$CACHE" --name "gpu_check_$tool" "${CAPS[@]}"
done

[ -n "${SIMULATING:-}" ] && kill "$SIMULATING" 2>/dev/null  # still simulating: no longer needed
"$PYTHON" benchmarks/gpu_check.py summary --work "$WORK" --out "$OUT" >/dev/null
echo
echo "total $(($(date +%s) - START)) s of a ${BUDGET} s budget; logs and summary in $OUT"
echo
cat "$OUT/summary.md"
