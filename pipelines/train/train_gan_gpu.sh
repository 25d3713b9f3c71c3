#!/usr/bin/env bash
# Train WGAN variants side by side on one lent GPU machine for MINUTES each (default 8),
# each argument "NAME FLAGS..." one run (flags added to the common ones below),
# with pipelines/train/train_gan_jax.py (JAX backend; the machine has no TensorFlow). Needs the
# Keras wheels in .whl/ and the exported split in .gpudata/ (see train_gan_jax.py), and OUT
# (where <variant>_best.tar / _last.tar and train.log go). Unpack the tars under
# pipelines/checkpoints/ and evaluate them here with gan_report.py / compare_gan_runs.py.
#
# Prepare here (both folders git-ignored, carried to the machine):
#   python pipelines/train/train_gan_jax.py export --out .gpudata/gan_split.npz
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#     -d .whl keras==3.15.1 namex==0.1.0 optree==0.20.0   # the machine has jax, not keras
set -u
MINUTES=${MINUTES:-8}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false KERAS_BACKEND=jax
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import jax, keras; d = jax.devices(); print(jax.__version__, keras.__version__, d); assert d[0].platform == 'gpu'" || exit 1
common=(--data .gpudata/gan_split.npz --minutes "$MINUTES" --chunk 200 --eval-seconds 30
        --output st_argmax --logit-bias -3 --matrix-width 256 --pack-to "$OUT")
run() {  # name, extra flags
  local name=$1; shift
  python3 pipelines/train/train_gan_jax.py train --run-dir "/tmp/runs/$name" "${common[@]}" "$@" \
    >>"$OUT/train.log" 2>&1 &
}
if [ $# -eq 0 ]; then  # the first GPU session's three runs
  set -- "gpu_paper_st_matrix --generator paper" "gpu_slim_st_matrix --generator slim" \
         "gpu_paper_st_matrix_b1024 --generator paper --batch-size 1024"
fi
for spec in "$@"; do run $spec; done  # each argument: "NAME FLAGS..."
wait
tail -n 80 "$OUT/train.log"
ls -la "$OUT"
