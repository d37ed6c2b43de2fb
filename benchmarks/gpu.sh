#!/usr/bin/env bash
# The GPU benchmark: one command on a machine with an NVIDIA GPU and the [gpu,tensorrt] extras.
#
#   benchmarks/gpu.sh [--dry-run] [--checkpoint CKPT] [--split SPLIT:PART --data DATA]
#                     [--out DIR] [--warmup N] [--iters N] [--batch-sizes 1,8,32,64]
#                     [--allow-cpu]
#
# Steps: (1) export CKPT to fp32/fp16/int8 ONNX (each verified against torch); (2) build a
# TensorRT engine from each and (3) verify it against onnxruntime on real images; (4) build a
# gallery of the split's photos; (5) latency and accuracy for torch eager (CUDA fp32 and fp16
# autocast), onnxruntime CUDA and TensorRT EP, and native TensorRT; (6) the combined table in
# OUT/report.md (+ .json, .png). Needs no network. Defaults: the demo model
# (demo-output/run/best.ckpt, `make demo`) and its split's test part; OUT=gpu-bench.
#
# Required: nvidia-smi with a GPU, torch with CUDA, sketchsearch with [train,export]. Optional:
# onnxruntime-gpu's CUDA/TensorRT providers, tensorrt and cuda-python: without them those rows
# are reported "unavailable" with the reason, and the rest still runs.
#
# --dry-run lists the steps and checks every prerequisite without running anything.
# --allow-cpu makes the GPU optional, to check the script itself on a CPU machine: every
# GPU row then reads "unavailable".
# Exit codes: 0 done (dry run: nothing required is missing); 2 a required piece is missing (a
# real run stops at the first one); any other code is that of the step that failed.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-}"
if [[ -z "$PY" ]]; then
    if [[ -x "$REPO/.venv/bin/python" ]]; then PY="$REPO/.venv/bin/python"; else PY=python3; fi
fi
CHECKPOINT="$REPO/demo-output/run/best.ckpt"
SPLIT=""
DATA=""
OUT="gpu-bench"
WARMUP=20
ITERS=200
ALLOW_CPU=0
BATCH_SIZES="1,8,32,64"
DRY_RUN=0
PRECISIONS=(fp32 fp16 int8)

usage() { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --dry-run) DRY_RUN=1; shift ;;
        --checkpoint) CHECKPOINT="$2"; shift 2 ;;
        --split) SPLIT="$2"; shift 2 ;;
        --data) DATA="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --warmup) WARMUP="$2"; shift 2 ;;
        --iters) ITERS="$2"; shift 2 ;;
        --allow-cpu) ALLOW_CPU=1; shift ;;
        --batch-sizes) BATCH_SIZES="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "gpu.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

MISSING=()   # required pieces that are absent
OPTIONAL=()  # optional pieces that are absent: their rows will read "unavailable"

report() {  # report STATUS NAME DETAIL
    printf '  [%s] %s: %s\n' "$1" "$2" "$3"
}

# require NAME HINT COMMAND...: run COMMAND; its output is the detail. A real run stops at the
# first failure; a dry run records it and goes on.
require() {
    local name="$1" hint="$2" detail
    shift 2
    if detail="$("$@" 2>&1)"; then
        report ok "$name" "${detail##*$'\n'}"
        return 0
    fi
    report missing "$name" "${detail##*$'\n'} -> $hint"
    MISSING+=("$name")
    if [[ "$DRY_RUN" -eq 0 ]]; then
        echo "gpu.sh: stopping: $name is missing ($hint)" >&2
        exit 2
    fi
    return 1
}

optional() {  # optional NAME CONSEQUENCE COMMAND...
    local name="$1" consequence="$2" detail
    shift 2
    if detail="$("$@" 2>&1)"; then
        report ok "$name" "${detail##*$'\n'}"
        return 0
    fi
    report "missing, optional" "$name" "${detail##*$'\n'} -> $consequence"
    OPTIONAL+=("$name")
    return 1
}

# The GPU checks: required, unless --allow-cpu.
require_gpu() {
    local name="$1" hint="$2"
    shift 2
    if [[ "$ALLOW_CPU" -eq 1 ]]; then
        optional "$name" "--allow-cpu: GPU rows unavailable" "$@"
    else
        require "$name" "$hint" "$@"
    fi
}

py() { "$PY" -c "$1"; }
ss() { "$PY" -c 'import sys; from sketchsearch.runtime.cli import main; main()' "$@"; }

# The split (SPLIT:PART) and data root named by the checkpoint's run folder, one per line.
run_split() {
    "$PY" -c '
import sys, pathlib
from sketchsearch.export.images import run_split
split, data = run_split(pathlib.Path(sys.argv[1]))
if split is None:
    config = pathlib.Path(sys.argv[1]).parent / "config.yaml"
    sys.exit(f"{config}: no run config naming a split and data that exist")
print(split + ":test")
print(data)' "$CHECKPOINT"
}

describe_split() {
    if [[ -n "$SPLIT" && -n "$DATA" ]]; then
        test -d "$DATA" || { echo "--data $DATA: not a folder"; return 1; }
        echo "$SPLIT, data $DATA"
        return 0
    fi
    local found
    found="$(run_split 2>&1)" || { echo "${found##*$'\n'}"; return 1; }
    echo "from the run folder: ${found//$'\n'/, data }"
}

gpu_name() {
    command -v nvidia-smi >/dev/null || { echo "nvidia-smi not found on PATH"; return 1; }
    nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
}

file_exists() { if [[ -f "$1" ]]; then echo "$1"; else echo "$1: not found"; return 1; fi; }

check_prerequisites() {
    echo "Prerequisites (python: $PY):"
    require python "install Python >= 3.10 or set PYTHON=..." "$PY" -c 'import sys; print(sys.version.split()[0])' || true
    require sketchsearch "pip install -e '.[train,export]' (make venv)" \
        py 'import sketchsearch.export.pipeline, sketchsearch.benchmarks.latency; print("importable, with [train,export]")' || true
    require_gpu nvidia-smi "install the NVIDIA driver; this script needs an NVIDIA GPU" \
        gpu_name || true
    require_gpu torch.cuda "install a CUDA build of torch (make test CONSTRAINTS= ...)" \
        py 'import torch; assert torch.cuda.is_available(), f"torch {torch.__version__}: torch.cuda.is_available() is False"; print(torch.cuda.get_device_name(0))' || true
    require checkpoint "pass --checkpoint or run make demo" file_exists "$CHECKPOINT" || true
    require split "pass --split SPLIT:PART --data DATA" describe_split || true
    optional "onnxruntime CUDAExecutionProvider" "onnxruntime CUDA rows unavailable; make venv-gpu" \
        py 'import onnxruntime as o; p = o.get_available_providers(); assert "CUDAExecutionProvider" in p, f"onnxruntime {o.__version__} offers {p}"; print("available")' || true
    optional "onnxruntime TensorrtExecutionProvider" "TensorRT EP rows unavailable; make venv-gpu" \
        py 'import onnxruntime as o; p = o.get_available_providers(); assert "TensorrtExecutionProvider" in p, f"onnxruntime {o.__version__} offers {p}"; print("available")' || true
    optional tensorrt "no engines are built; native TensorRT rows unavailable; pip install '.[tensorrt]'" \
        py 'import tensorrt; print(tensorrt.__version__)' || true
    optional cuda-python "no engines are built; native TensorRT rows unavailable; pip install '.[tensorrt]'" \
        py 'from cuda.bindings import runtime; print("cuda.bindings importable")' || true
}

STEPS=(
    "1. export ${CHECKPOINT} to ${OUT}/model.{fp32,fp16,int8}.onnx (each verified against torch)"
    "2. build ${OUT}/model.{fp32,fp16,int8}.plan with sketchsearch export tensorrt (if tensorrt)"
    "3. verify each engine against onnxruntime on 64 images of the split (--images)"
    "4. build the gallery ${OUT}/gallery from the split's photos (onnxruntime CUDA, else CPU)"
    "5. latency.py and accuracy.py: torch eager CUDA fp32/fp16 autocast, onnxruntime CUDA and TensorRT EP, native TensorRT"
    "6. report.py: ${OUT}/report.md, report.json, report.png"
)

echo "Steps:"
printf '  %s\n' "${STEPS[@]}"
check_prerequisites

if [[ "$DRY_RUN" -eq 1 ]]; then
    if [[ ${#MISSING[@]} -gt 0 ]]; then
        echo "dry run: missing (required): ${MISSING[*]}"
        [[ ${#OPTIONAL[@]} -eq 0 ]] || echo "dry run: missing (optional): ${OPTIONAL[*]}"
        exit 2
    fi
    [[ ${#OPTIONAL[@]} -eq 0 ]] || echo "dry run: missing (optional): ${OPTIONAL[*]}"
    echo "dry run: every required piece is present"
    exit 0
fi

has_tensorrt=1
for piece in tensorrt cuda-python; do
    if [[ " ${OPTIONAL[*]} " == *" $piece "* ]]; then has_tensorrt=0; fi
done
if [[ -z "$SPLIT" || -z "$DATA" ]]; then
    mapfile -t found < <(run_split)
    SPLIT="${found[0]}"
    DATA="${found[1]}"
fi
mkdir -p "$OUT"
SPLIT_FILE="${SPLIT%:*}"

echo "== 1. export"
for p in "${PRECISIONS[@]}"; do
    ss export onnx --checkpoint "$CHECKPOINT" --output "$OUT/model.$p.onnx" --precision "$p" \
        --calib-split "$SPLIT_FILE:train" --data "$DATA"
done

echo "== 2-3. TensorRT engines, verified against onnxruntime"
"$PY" - "$SPLIT_FILE:val" "$DATA" "$OUT/verify-images" <<'EOF'
import sys
from pathlib import Path
from sketchsearch.data.split_spec import parse_split_spec
part = parse_split_spec(sys.argv[1], sys.argv[2])
folder = Path(sys.argv[3])
folder.mkdir(parents=True, exist_ok=True)
for n, item in enumerate(part.items()[:64]):
    link = folder / f"{n:03d}{Path(item.path).suffix}"
    if not link.exists():
        link.symlink_to(part.path(item).resolve())
EOF
PLANS=()
for p in "${PRECISIONS[@]}"; do
    PLANS+=(--model "$OUT/model.$p.plan")
    if [[ "$has_tensorrt" -eq 1 ]]; then
        ss export tensorrt --onnx "$OUT/model.$p.onnx" --output "$OUT/model.$p.plan" \
            --timing-cache "$OUT/trt.cache" --images "$OUT/verify-images"
    else
        echo "skipped: TensorRT or cuda-python is missing; the TensorRT rows will be unavailable"
    fi
done

echo "== 4. gallery"
provider=cpu
if [[ " ${OPTIONAL[*]} " != *" onnxruntime CUDAExecutionProvider "* ]]; then provider=cuda; fi
rm -rf "$OUT/gallery"
ss gallery build --engine "$OUT/model.fp32.onnx" --provider "$provider" --split "$SPLIT" \
    --data "$DATA" --out "$OUT/gallery" --no-default --quiet

echo "== 5. latency and accuracy"
MODELS=(--model "$CHECKPOINT")
for p in "${PRECISIONS[@]}"; do MODELS+=(--model "$OUT/model.$p.onnx"); done
MODELS+=("${PLANS[@]}")
"$PY" "$REPO/benchmarks/latency.py" "${MODELS[@]}" --providers cpu,cuda,tensorrt \
    --batch-sizes "$BATCH_SIZES" --warmup "$WARMUP" --iters "$ITERS" --gallery "$OUT/gallery" \
    --json "$OUT/latency.json"
"$PY" "$REPO/benchmarks/accuracy.py" "${MODELS[@]}" --providers cpu,cuda,tensorrt \
    --split "$SPLIT" --data "$DATA" --json "$OUT/accuracy.json"

echo "== 6. report"
ANN=()
latest_ann="$(find "$REPO/benchmarks/results" -name 'ann-*.json' 2>/dev/null | sort | tail -n 1)"
if [[ -n "$latest_ann" ]]; then ANN=(--ann "$latest_ann"); fi
"$PY" "$REPO/benchmarks/report.py" --latency "$OUT/latency.json" \
    --accuracy "$OUT/accuracy.json" "${ANN[@]}" --out "$OUT/report"
echo "report: $OUT/report.md"
