#!/usr/bin/env bash
# Train element-attention formation-energy models of several sizes side by side on one lent GPU
# machine, for MINUTES each (default 8), with pipelines/train/train_attention_jax.py (JAX backend; the
# machine has no TensorFlow). Each argument "NAME FLAGS..." is one run (flags added to the common
# ones below; a later --data picks another exported split); its members and train.json are packed
# into $OUT/NAME.tar, the log is $OUT/train.log. The machine sends back at most 8 files of 16 MiB:
# at most 7 runs, 64 MiB of members together (a width-256 member is 9 to 15 MiB).
#
# Prepare here (both folders git-ignored, carried to the machine):
#   python pipelines/train/train_attention_jax.py export --protocol oqmd --out .gpudata/oqmd_fe.npz
#   python pipelines/train/train_attention_jax.py export --protocol bartel --out .gpudata/bartel_fe.npz
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#     -d .whl keras==3.15.1 namex==0.1.0 optree==0.20.0   # the machine has jax, not keras
# Run (device tool): command "MINUTES=7 bash pipelines/train/train_attention_gpu.sh", carry
# [".gpudata", ".whl"], timeout_s 590. Back here, per run: tar -xf <files_at>/NAME.tar -C runs/gpu,
# python pipelines/train/train_attention_jax.py import --protocol oqmd --from runs/gpu/NAME \
#   --name attention-NAME, then python pipelines/bench/bench_stability.py --protocol oqmd --models attention-NAME.
set -u
MINUTES=${MINUTES:-8}
DATA=${DATA:-.gpudata/oqmd_fe.npz}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false KERAS_BACKEND=jax
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import jax, keras; d = jax.devices(); print(jax.__version__, keras.__version__, d); assert d[0].platform == 'gpu'" || exit 1
WORK=${WORK:-/tmp/attention_runs}
names=()
run() {  # name, extra flags
  local name=$1; shift
  names+=("$name")
  python3 pipelines/train/train_attention_jax.py train --data "$DATA" --out "$WORK/$name" --minutes "$MINUTES" \
    --verbose "$@" >>"$OUT/train.log" 2>&1 &
}
if [ $# -eq 0 ]; then  # larger than the CPU model (width 64, 2 blocks), each annealed by a cosine over
  # the minutes it has (a plateau schedule cut short by the budget would end at a high learning
  # rate): OQMD, three sizes and seeds; CritExam (Bartel's protocol, 4x fewer rows), two sizes.
  # Members: 11.9 + 14.9 + 8.9 + 11.9 + 4.5 MiB, under the 64 MiB that comes back.
  cos="--schedule cosine --patience 1000"
  set -- "w256ff1024 --width 256 --blocks 3 --ff 1024 --seeds 0 $cos" \
         "w256b4ff1024 --width 256 --blocks 4 --ff 1024 --seeds 1 $cos" \
         "w256 --width 256 --blocks 3 --ff 512 --seeds 2 $cos" \
         "bartel_w256ff1024 --data .gpudata/bartel_fe.npz --width 256 --blocks 3 --ff 1024 $cos" \
         "bartel_w128 --data .gpudata/bartel_fe.npz --width 128 --blocks 3 --ff 512 $cos"
fi
for spec in "$@"; do run $spec; done  # each argument: "NAME FLAGS..."
wait
for name in "${names[@]}"; do
  [ -f "$WORK/$name/train.json" ] && tar -cf "$OUT/$name.tar" -C "$WORK" "$name"
done
grep -h '^{' "$OUT/train.log"
ls -la "$OUT"
