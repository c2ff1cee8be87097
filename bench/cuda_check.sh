#!/usr/bin/env bash
# The batched simulator on a CUDA GPU, in one run: the CPU-against-CUDA tests, then its benches on
# the GPU (throughput with a constant action and with DriveGPT acting, the takeover monitor with its
# look-ahead, Monte Carlo failure estimation). Run from the repository root with the package and its
# test tools importable:
#
#     bench/cuda_check.sh runs/cuda            # writes gpu.txt, tests.txt, throughput.txt, takeovers/, estimate/
set -u
out=${1:-runs/cuda}
python=${PYTHON:-python3}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; uptime; nproc; } | tee "$out/gpu.txt"
$python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$out/gpu.txt"

$python -m pytest -n0 -p no:cacheprovider tests/test_cuda.py "tests/test_batched_sim.py::test_cuda_matches_cpu" \
    2>&1 | tee "$out/tests.txt"

$python bench/sim_throughput.py --device cuda --batches 1024 8192 65536 262144 1048576 --seconds 2 \
    --policy-batches 1024 8192 65536 --profile-batch 65536 2>&1 | grep -v USDT | tee "$out/throughput.txt"

$python bench/takeovers_batched.py --device cuda --episodes 8192 --batch 8192 --highway-episodes 2 \
    --out "$out/takeovers" 2>&1 | tail -n 3

$python bench/estimate_batched.py --device cuda --families stalled_car --human-traits --parts mc \
    --mc-sims 131072 --batch 65536 --out "$out/estimate" 2>&1 | tail -n 3
uptime | tee -a "$out/gpu.txt"
