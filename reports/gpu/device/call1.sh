#!/bin/bash
# Device call 1: set up, generate the GPU-scale dataset, start training in its own session.
export PYTHONUNBUFFERED=1
cd "$(dirname "$0")/../.."
R=${OUT:-/tmp/out}; mkdir -p "$R"
exec > >(tee "$R/call1.log") 2>&1
t0=$SECONDS
for f in .gpu/a/gl/*.deb; do dpkg -x "$f" /; done
L=/usr/lib/x86_64-linux-gnu
for n in EGL GL OpenGL GLX GLESv2; do [ -e $L/lib$n.so ] || ln -s "$(ls $L/lib$n.so.* | head -1)" $L/lib$n.so; done
ldconfig
[ -f /usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json ] && export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/a/whl/*.whl || exit 1
export PYTHONPATH=$PWD/src:/tmp/site SYNFACE_DATA=/tmp/sd
mkdir -p /tmp/sd cache/appearance && ln -sfn "$PWD/.gpu/a/facemodels" /tmp/sd/facemodels
python3 .gpu/a/unpack_basis.py .gpu/a/basis16.npz cache/appearance/celeba-299.npz
nvidia-smi -L; nproc; free -g | head -2
python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name())"
python3 -c "from synface.render.gl import create_context as c; print('GL:', c().info['GL_RENDERER'])" || exit 3
echo "setup done in $((SECONDS - t0)) s"
export SYNFACE="python3 -m synface.cli" RESULTS=/tmp/gpu_results WORKERS=${WORKERS:-14}
mkdir -p $RESULTS
timeout ${GEN_TIMEOUT:-330} bash benchmarks/gpu_scale.sh generate; rc=$?
cp $RESULTS/generate.* "$R/" 2>/dev/null
tail -n 3 $RESULTS/generate.log
echo "generate rc=$rc at $((SECONDS - t0)) s"
[ $rc = 0 ] || exit 4
setsid nohup env BUDGET_MIN=${BUDGET_MIN:-5} bash benchmarks/gpu_scale.sh train > /tmp/gpu_train.out 2>&1 < /dev/null &
sleep ${WATCH_S:-40}
tr '\r' '\n' < /tmp/gpu_results/train.log 2>/dev/null | tail -n 5; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv
echo "call 1 done at $((SECONDS - t0)) s"
