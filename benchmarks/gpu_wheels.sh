#!/usr/bin/env bash
# Fill .gpu_carry/ with what benchmarks/gpu_check.sh needs on the lent GPU machine and cannot
# fetch there (it has no network): wheels of the packages its image lacks, for its Python 3.12
# on x86-64, and the 10X PBMC data (../shared does not travel with the working tree).
#
#   bash benchmarks/gpu_wheels.sh        # here, with network; then carry=[".gpu_carry"]
#
# The image already holds torch, numpy, scipy, pandas, scikit-learn, h5py, numba, matplotlib,
# seaborn, statsmodels, networkx, tqdm, pytest, pytest-xdist, pytest-timeout and hypothesis
# (/work/.library/device/KINDS.md). Below: scanpy, anndata and leidenalg with everything they
# need beyond that, at the versions the test suite passes with here. .gpu_carry/ is ignored by
# git; the wheels take about 20 MiB of the 64 MiB that may travel.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
CARRY=.gpu_carry
WHEELS=(
    scanpy==1.11.5
    anndata==0.12.19
    leidenalg==0.12.0
    igraph==1.0.0
    texttable==1.7.2
    array-api-compat==1.16.0
    legacy-api-wrap==1.5
    natsort==8.4.0
    session-info2==0.4.1
    scverse-misc==0.0.3
    zarr==3.1.6
    donfig==0.8.1.post1
    numcodecs==0.16.6
    google-crc32c==1.9.0
    umap-learn==0.5.12
    pynndescent==0.7.0
    pytz==2026.6
    tzdata==2026.6
)

rm -rf "$CARRY/wheels"  # one version of each: two would stop the install there
mkdir -p "$CARRY/wheels" "$CARRY/data"
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 -d "$CARRY/wheels" "${WHEELS[@]}"
cp ../shared/data/10X_PBMC_top2000.h5 "$CARRY/data/"

# The same install the device runs, for Python 3.12 on x86-64, into a scratch folder: a wheel
# that does not fit that platform fails here, not in the lent minutes.
check=$(mktemp -d)
"$PYTHON" -m pip install -q --no-index --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
    --target "$check" "$CARRY"/wheels/*.whl
rm -rf "$check"

# Every requirement of a carried wheel is carried too, or on the image (IMAGE: those of its
# packages that scanpy, anndata and leidenalg need): a new version that needs more says so here.
IMAGE="numpy scipy pandas scikit-learn h5py numba llvmlite matplotlib seaborn statsmodels patsy
networkx tqdm joblib packaging typing-extensions threadpoolctl python-dateutil six pillow
fsspec pyyaml rich" "$PYTHON" - "$CARRY/wheels" <<'PY'
import os, re, sys, zipfile
from pathlib import Path
from packaging.requirements import Requirement

def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()

env = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
       "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
       "implementation_name": "cpython", "platform_python_implementation": "CPython",
       "extra": ""}
wheels = sorted(Path(sys.argv[1]).glob("*.whl"))
carried = {norm(w.name.split("-")[0]) for w in wheels}
available = carried | {norm(n) for n in os.environ["IMAGE"].split()}
missing = set()
for wheel in wheels:
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        for line in z.read(meta).decode().splitlines():
            if line.startswith("Requires-Dist:"):
                req = Requirement(line.split(":", 1)[1].strip())
                if (req.marker is None or req.marker.evaluate(env)) and norm(req.name) not in available:
                    missing.add(f"{req.name} (for {wheel.name})")
if missing:
    sys.exit("not carried and not on the image: " + ", ".join(sorted(missing)))
print(f"{len(wheels)} wheels; every requirement is carried or on the image")
PY
du -sh "$CARRY"
