#!/usr/bin/env bash
# The GPU measurements recorded in BENCHMARKS.md, as run on a lent NVIDIA H200 host
# (Python 3.12, torch 2.11+cu130 preinstalled, no network): the project's wheels that
# the host lacks travel in .whl/ (pythia8mc, fastjet, awkward, vector, normflows).
#   bash benchmarks/gpu_session.sh PART OUTDIR      PART = tests | surrogates | validation | detectors
set -uo pipefail
part=${1:?part}; out=${2:?output folder}
mkdir -p "$out"
if [ ! -d /tmp/site ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
# pip --target does not place the wheel's data files where pythia8mc looks: unpack them
if [ ! -f /tmp/pythia-data/pythia8mc-8.317.2.data/data/share/Pythia8/xmldoc/Index.xml ]; then
  python3 -c "import zipfile,glob; zipfile.ZipFile(glob.glob('.whl/pythia8mc-*.whl')[0]).extractall('/tmp/pythia-data')"
fi
export PYTHIA8DATA=/tmp/pythia-data/pythia8mc-8.317.2.data/data/share/Pythia8/xmldoc
nproc; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch,normflows,fastjet,pythia8mc,sys; print(sys.version.split()[0], torch.__version__, torch.cuda.get_device_name(0))"
case $part in
  tests)
    python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu_paths.py 2>&1 | tee "$out/gpu_tests.log"
    timeout 300 python3 -m pytest -q -x -p no:cacheprovider 2>&1 | tail -25 | tee "$out/default_tests.log"
    ;;
  surrogates)
    python3 benchmarks/surrogate_speed.py --device cuda --jobs "$(nproc)" \
      --sample-events 20000000 -o /tmp/bench-surrogates 2>&1 | grep -v "it/s\]" | tail -60
    cp /tmp/bench-surrogates/results.json "$out/surrogate_speed.json"
    ;;
  validation)
    python3 benchmarks/flow_sampling_profile.py --device cuda 2>&1 | tail -40 | tee "$out/flow_sampling_profile.log"
    python3 benchmarks/omnifold_gaussian.py --device cuda --repeats 3 --no-peer \
      --json "$out/omnifold_gaussian_cuda.json" 2>&1 | tail -25
    python3 benchmarks/flow_precision.py --device cuda --epochs 6 --max-events 20000 \
      --sample-events 5000000 -o /tmp/bench-precision 2>&1 | tail -40
    cp /tmp/bench-precision/results.json "$out/flow_precision.json"
    ;;
  detectors)
    python3 benchmarks/detectors.py --qcd-events 300000 --signal-events 24000 --injected 1000 \
      --signal-test 8000 --jobs "$(nproc)" --device cuda --quiet -o /tmp/bench-detectors 2>&1 | tail -60
    cp /tmp/bench-detectors/*.json "$out/" 2>/dev/null
    ;;
esac
