#!/usr/bin/env bash
# Plain Monte Carlo of a learned policy under the naturalistic law, on a CUDA GPU: for each family,
# `bench/is_second_moment.py --parts failures` on stream STREAM (default 12: draw i with scenario seed
# 12 * 10**7 + i, apart from the CPU's streams 7-11 in bench/results/is_second_moment/drivegpt-rlhf/)
# up to 10**6 draws or the family's wall-time cap, keeping every failure's point and seed. The batched
# simulator gives the same episodes on either device, so a CPU's stream file copied into OUT is
# continued, not redrawn. Run from the repository root with the package importable:
#
#     bench/cuda_estimate.sh runs/cuda-estimate     # OUT/gpu.txt, OUT/log.txt, OUT/FAMILY-failures-12.npz
#
# POLICY (default drivegpt-rlhf), FAMILIES ("family:seconds ..."), STREAM, DEVICE (cuda), BATCH (65536)
# override the defaults (the caps fit one 10-minute command); DEVICE=cpu BATCH=256
# FAMILIES="stalled_car:5" checks the script on a laptop.
set -u
out=${1:-runs/cuda-estimate}
python=${PYTHON:-python3}
policy=${POLICY:-drivegpt-rlhf}
device=${DEVICE:-cuda}
batch=${BATCH:-65536}
stream=${STREAM:-12}
families=${FAMILIES:-"slower_lead:190 stalled_car:130 adversarial_vehicle:130"}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null; uptime; nproc; } \
    | tee "$out/gpu.txt"
$python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$out/gpu.txt"
for spec in $families; do
    family=${spec%%:*}
    seconds=${spec##*:}
    echo "$family: up to 10**6 draws or $seconds s, $(uptime)" | tee -a "$out/log.txt"
    $python bench/is_second_moment.py --family "$family" --policy "$policy" --parts failures --stream "$stream" \
        --sims 1000000 --seconds "$seconds" --device "$device" --batch "$batch" --chunk "$batch" \
        --out "$out" 2>&1 | grep -v USDT | tee -a "$out/log.txt"
done
uptime | tee -a "$out/gpu.txt"
