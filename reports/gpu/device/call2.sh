#!/bin/bash
# Device call 2: LFW arrives; wait for training, score LFW, bring the records back.
export PYTHONUNBUFFERED=1
cd "$(dirname "$0")/../.."
R=${OUT:-/tmp/out}; mkdir -p "$R"
exec > >(tee "$R/call2.log") 2>&1
t0=$SECONDS
mkdir -p /tmp/lfwx && tar -C /tmp/lfwx -xzf .gpu/b/lfw.tar.gz && ln -sfn /tmp/lfwx/lfw /tmp/sd/lfw
echo "lfw unpacked in $((SECONDS - t0)) s"
[ -f /usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json ] && export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
export PYTHONPATH=$PWD/src:/tmp/site SYNFACE_DATA=/tmp/sd SYNFACE="python3 -m synface.cli" RESULTS=/tmp/gpu_results
while pgrep -f "gpu_scale.sh train" > /dev/null; do
  sleep 10; tr '\r' '\n' < $RESULTS/train.log | grep -a "train:" | tail -n 1 | cut -c1-120
  [ $((SECONDS - t0)) -gt ${WAIT_S:-420} ] && { echo "training still running at ${WAIT_S:-420} s"; break; }
done
tail -n 20 /tmp/gpu_train.out
cp $RESULTS/metrics.json $RESULTS/train.log "$R/" 2>/dev/null
tr '\r' '\n' < $RESULTS/train.log | grep -a -v "train:" | tail -n 15
ls runs/*/ 2>/dev/null | head
bash benchmarks/gpu_scale.sh evaluate; echo "evaluate rc=$?"
cp $RESULTS/lfw.json $RESULTS/evaluate.log "$R/" 2>/dev/null
python3 -c "import json; d=json.load(open('$RESULTS/lfw.json')); print('LFW', d['accuracy_mean'], d['accuracy_std'], d['auc'])"
cp runs/gpu-*/config.yaml runs/gpu-*/metrics.csv runs/gpu-*/loss.png "$R/" 2>/dev/null
echo "call 2 done at $((SECONDS - t0)) s"
