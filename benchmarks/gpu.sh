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
# OUT/report.md (+ .json, .png). Defaults: the demo model (demo-output/run/best.ckpt, `make
# demo`) and its split's test part; OUT=gpu-bench.
#
# A step that fails does not stop the run: a failed export, engine build or verification is
# a row "failed: <stage>: <the error's last line>" in report.md (a failed verify-images,
# gallery, latency or accuracy step too), recorded in OUT/steps.json; each step's output is
# kept in OUT/logs/.
#
# Required: nvidia-smi with a GPU, torch with CUDA, sketchsearch with [train,export]. Optional:
# onnxruntime-gpu's CUDA/TensorRT providers, and the TensorRT stack (the [tensorrt] or
# [tensorrt-cu13] extra): without them those rows are reported "unavailable" with the reason.
# So is a TensorRT stack check that crashes (e.g. a segfault creating the CUDA context): the
# native TensorRT rows read "unavailable: cuda_stack check crashed with exit N: ...".
# A TensorRT stack that is installed but does not fit the driver or itself (another CUDA
# major, TensorRT 11, ...) is a mismatch: it stops the run, naming the versions and the fix.
#
# --dry-run lists the steps and checks every prerequisite without running anything; for the
# TensorRT stack (`python -m sketchsearch.runtime.cuda_stack`) that is the driver, the CUDA
# major, TensorRT and cuda-python against the pinned pairs, and creating a CUDA context.
# --allow-cpu makes the GPU optional, to check the script itself on a CPU machine: every
# GPU row then reads "unavailable".
#
# Exit codes:
#   0  OUT/report.md is written, every step succeeded and its outcome is recorded (dry run:
#      every required piece is present and the TensorRT stack is not mismatched)
#   1  OUT/report.md is written, but at least one step failed (its rows read "failed: ...")
#      or a step's outcome could not be recorded in OUT/steps.json (report.md says which)
#   2  nothing ran: a required piece is missing, the TensorRT stack is mismatched, or bad
#      usage (an unknown option, or an option without its value)
#   3  OUT/report.md could not be written: OUT could not be created, or report.py failed
set -uo pipefail

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

usage() { awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"; }

# needs_value OPTION ARGC: an option that takes a value must have one (else `set -u` exits 127).
needs_value() {
    if [[ "$2" -lt 2 ]]; then
        echo "gpu.sh: $1 needs a value (see --help)" >&2
        exit 2
    fi
}

while [[ $# -gt 0 ]]; do
    case "$1" in
        --dry-run) DRY_RUN=1; shift ;;
        --checkpoint) needs_value "$1" $#; CHECKPOINT="$2"; shift 2 ;;
        --split) needs_value "$1" $#; SPLIT="$2"; shift 2 ;;
        --data) needs_value "$1" $#; DATA="$2"; shift 2 ;;
        --out) needs_value "$1" $#; OUT="$2"; shift 2 ;;
        --warmup) needs_value "$1" $#; WARMUP="$2"; shift 2 ;;
        --iters) needs_value "$1" $#; ITERS="$2"; shift 2 ;;
        --allow-cpu) ALLOW_CPU=1; shift ;;
        --batch-sizes) needs_value "$1" $#; BATCH_SIZES="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "gpu.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

MISSING=()     # required pieces that are absent
OPTIONAL=()    # optional pieces that are absent: their rows will read "unavailable"
MISMATCHED=()  # TensorRT stack checks that found a mismatch: the run stops
HAS_TENSORRT=0 # the TensorRT stack is usable: engines are built
TRT_CRASH=""   # why the TensorRT stack check crashed: the native TensorRT rows are not run

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

# The TensorRT stack, one line per check of `python -m sketchsearch.runtime.cuda_stack`
# ("CHECK STATUS DETAIL"): missing pieces are optional, a mismatch is not. Sets HAS_TENSORRT.
# A check that crashes (exit neither 0 nor 2, e.g. a segfault creating the CUDA context) says
# nothing about the stack: it is optional too, and sets TRT_CRASH to the reason.
check_tensorrt_stack() {
    local output code check status detail last
    output="$("$PY" -m sketchsearch.runtime.cuda_stack 2>&1)"
    code=$?
    if [[ $code -ne 0 && $code -ne 2 ]]; then
        last="$(grep -v '^[[:space:]]*$' <<< "$output" | tail -n 1)"
        if [[ -z "$last" ]]; then
            last="no output"
            if [[ $code -gt 128 ]]; then last+=" (killed by SIG$(kill -l $((code - 128))))"; fi
        fi
        TRT_CRASH="cuda_stack check crashed with exit $code: $last"
        report "missing, optional" "TensorRT stack check" \
            "$TRT_CRASH -> native TensorRT rows unavailable"
        OPTIONAL+=("cuda_stack")
        return
    fi
    while read -r check status detail; do
        case "$status" in
            ok|warn) report "$status" "$check" "$detail" ;;
            mismatch) report mismatch "$check" "$detail"; MISMATCHED+=("$check") ;;
            *)
                report "missing, optional" "$check" "$detail -> native TensorRT rows unavailable"
                OPTIONAL+=("$check")
                ;;
        esac
    done <<< "$output"
    if [[ $code -eq 0 ]]; then HAS_TENSORRT=1; fi
}

py() { "$PY" -c "$1"; }
ss() { "$PY" -c 'import sys; from sketchsearch.cli.main import main; main()' "$@"; }

# The split (SPLIT:PART) and data root named by the checkpoint's run folder, one per line.
run_split() {
    "$PY" -c '
import sys, pathlib
from sketchsearch.train.run_folder import read_run_folder
found = read_run_folder(pathlib.Path(sys.argv[1])).split_and_data()
if found is None:
    config = pathlib.Path(sys.argv[1]).parent / "config.yaml"
    sys.exit(f"{config}: no run config naming a split and data that exist")
print(f"{found[0]}:test")
print(found[1])' "$CHECKPOINT"
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
    echo "TensorRT stack (python -m sketchsearch.runtime.cuda_stack):"
    check_tensorrt_stack
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
    [[ ${#MISSING[@]} -eq 0 ]] || echo "dry run: missing (required): ${MISSING[*]}"
    [[ ${#MISMATCHED[@]} -eq 0 ]] || echo "dry run: TensorRT stack mismatched: ${MISMATCHED[*]}"
    [[ ${#OPTIONAL[@]} -eq 0 ]] || echo "dry run: missing (optional): ${OPTIONAL[*]}"
    if [[ ${#MISSING[@]} -gt 0 || ${#MISMATCHED[@]} -gt 0 ]]; then exit 2; fi
    echo "dry run: every required piece is present"
    exit 0
fi
if [[ ${#MISSING[@]} -gt 0 ]]; then
    echo "gpu.sh: stopping: ${MISSING[*]} missing" >&2
    exit 2
fi
if [[ ${#MISMATCHED[@]} -gt 0 ]]; then
    echo "gpu.sh: stopping: the TensorRT stack is mismatched (${MISMATCHED[*]}, see above):" \
        "install the pair for this driver, or uninstall TensorRT to run without it" >&2
    exit 2
fi

if [[ -z "$SPLIT" || -z "$DATA" ]]; then
    mapfile -t found < <(run_split)
    SPLIT="${found[0]}"
    DATA="${found[1]}"
fi
SPLIT_FILE="${SPLIT%:*}"
STEPS_FILE="$OUT/steps.json"
FAILED=0           # steps that failed: each is a "failed: ..." row
UNRECORDED=()      # steps whose outcome could not be recorded: report.md notes each

# Outputs of an earlier run in OUT must not stand in for this run's missing ones.
mkdir -p "$OUT/logs" || { echo "gpu.sh: cannot create $OUT" >&2; exit 3; }
rm -rf "$OUT/gallery" "$STEPS_FILE" "$OUT"/{latency,accuracy}.json "$OUT"/report.{md,json,png}
for p in "${PRECISIONS[@]}"; do rm -f "$OUT/model.$p".{onnx,plan} "$OUT/model.$p".{onnx,plan}.*; done

# record FILE STAGE PRECISION [--failed-log LOG | --failed-reason TEXT | --unavailable-reason
# TEXT]: one entry of steps.json. One that cannot be written is kept for a note in report.md.
record() {
    local file="$1" stage="$2" precision="$3" outcome=ok
    shift 3
    case "${1:-}" in
        --failed-log) FAILED=$((FAILED + 1)); outcome="failed, see $2" ;;
        --failed-reason) FAILED=$((FAILED + 1)); outcome="failed: $2" ;;
        --unavailable-reason) outcome="unavailable: $2" ;;
    esac
    if ! "$PY" "$REPO/benchmarks/steps.py" "$STEPS_FILE" --file "$file" --stage "$stage" \
        --precision "$precision" "$@"; then
        echo "gpu.sh: could not record the $stage step of $file in $STEPS_FILE" >&2
        UNRECORDED+=("$stage of $(basename "$file") ($outcome)")
    fi
}

# step FILE STAGE PRECISION COMMAND...: run one step (output shown and kept in OUT/logs/) and
# record how it ended. Returns the command's exit status.
step() {
    local file="$1" stage="$2" precision="$3" log status
    shift 3
    log="$OUT/logs/$stage.$(basename "$file").log"
    "$@" 2>&1 | tee "$log"
    status=${PIPESTATUS[0]}
    if [[ $status -eq 0 ]]; then
        record "$file" "$stage" "$precision"
    else
        echo "gpu.sh: failed ($stage of $(basename "$file")): $(grep -v '^[[:space:]]*$' "$log" | tail -n 1)" >&2
        record "$file" "$stage" "$precision" --failed-log "$log"
    fi
    return "$status"
}

echo "== 1. export"
declare -A EXPORTED=()
for p in "${PRECISIONS[@]}"; do
    if step "$OUT/model.$p.onnx" export "$p" ss export onnx --checkpoint "$CHECKPOINT" \
        --output "$OUT/model.$p.onnx" --precision "$p" --calib-split "$SPLIT_FILE:train" \
        --data "$DATA"; then
        EXPORTED[$p]=1
    fi
done

echo "== 2-3. TensorRT engines, verified against onnxruntime"
# The verification images: links to the first 64 images of the split's val part.
VERIFY_IMAGES=""
if [[ "$HAS_TENSORRT" -eq 1 ]]; then
    if step "$OUT/verify-images" verify-images — "$PY" - "$SPLIT_FILE:val" "$DATA" \
        "$OUT/verify-images" <<'EOF'
import sys
from pathlib import Path
from sketchsearch.data.split_spec import parse_split_spec
part = parse_split_spec(sys.argv[1], sys.argv[2])
folder = Path(sys.argv[3])
folder.mkdir(parents=True, exist_ok=True)
items = part.items()[:64]
if not items:
    sys.exit(f"error: {sys.argv[1]}: no images to verify the engines on")
for n, item in enumerate(items):
    link = folder / f"{n:03d}{Path(item.path).suffix}"
    if not link.exists():
        link.symlink_to(part.path(item).resolve())
print(f"{len(items)} images of {sys.argv[1]} linked in {folder}")
EOF
    then
        VERIFY_IMAGES=1
    fi
fi
PLANS=()
for p in "${PRECISIONS[@]}"; do
    if [[ -z "$TRT_CRASH" ]]; then PLANS+=(--model "$OUT/model.$p.plan"); fi
    if [[ -n "$TRT_CRASH" ]]; then  # latency.py would only crash on it too
        echo "skipped: $TRT_CRASH; the native TensorRT rows will be unavailable"
        record "$OUT/model.$p.plan" tensorrt "$p" --unavailable-reason "$TRT_CRASH"
    elif [[ "$HAS_TENSORRT" -eq 0 ]]; then
        echo "skipped: the TensorRT stack is missing; the TensorRT rows will be unavailable"
    elif [[ -z "$VERIFY_IMAGES" ]]; then
        record "$OUT/model.$p.plan" engine "$p" \
            --failed-reason "not built: no verification images (the verify-images step failed)"
    elif [[ -z "${EXPORTED[$p]:-}" ]]; then
        record "$OUT/model.$p.plan" engine "$p" --failed-reason "not built: the $p ONNX export failed"
    else
        step "$OUT/model.$p.plan" engine "$p" ss export tensorrt --onnx "$OUT/model.$p.onnx" \
            --output "$OUT/model.$p.plan" --timing-cache "$OUT/trt.cache" \
            --images "$OUT/verify-images"
    fi
done

echo "== 4. gallery"
provider=cpu
if [[ " ${OPTIONAL[*]} " != *" onnxruntime CUDAExecutionProvider "* ]]; then provider=cuda; fi
GALLERY=()
if [[ -z "${EXPORTED[fp32]:-}" ]]; then
    record "$OUT/gallery" gallery fp32 --failed-reason "not built: the fp32 ONNX export failed"
elif step "$OUT/gallery" gallery fp32 ss gallery build --engine "$OUT/model.fp32.onnx" \
    --provider "$provider" --split "$SPLIT" --data "$DATA" --out "$OUT/gallery" \
    --no-default --quiet; then
    GALLERY=(--gallery "$OUT/gallery")
fi

echo "== 5. latency and accuracy"
MODELS=(--model "$CHECKPOINT")
for p in "${PRECISIONS[@]}"; do MODELS+=(--model "$OUT/model.$p.onnx"); done
MODELS+=("${PLANS[@]}")
REPORT_INPUTS=()
if step "$OUT/latency.json" latency — "$PY" "$REPO/benchmarks/latency.py" "${MODELS[@]}" \
    --providers cpu,cuda,tensorrt --batch-sizes "$BATCH_SIZES" --warmup "$WARMUP" \
    --iters "$ITERS" "${GALLERY[@]}" --json "$OUT/latency.json"; then
    REPORT_INPUTS+=(--latency "$OUT/latency.json")
fi
if step "$OUT/accuracy.json" accuracy — "$PY" "$REPO/benchmarks/accuracy.py" "${MODELS[@]}" \
    --providers cpu,cuda,tensorrt --split "$SPLIT" --data "$DATA" --json "$OUT/accuracy.json"; then
    REPORT_INPUTS+=(--accuracy "$OUT/accuracy.json")
fi

echo "== 6. report"
# No ANN panel: the committed ann-*.json files were measured on other machines, and a report
# shows only what its run measured (`python benchmarks/ann.py` measures it on this one).
if [[ -f "$STEPS_FILE" ]]; then REPORT_INPUTS+=(--steps "$STEPS_FILE"); fi
if [[ ${#UNRECORDED[@]} -gt 0 ]]; then
    unrecorded="$(printf '; %s' "${UNRECORDED[@]}")"
    REPORT_INPUTS+=(--note "gpu.sh could not record ${#UNRECORDED[@]} step outcome(s) in \
$STEPS_FILE, so this table may lack their rows: ${unrecorded#; } (logs in $OUT/logs/)")
fi
if ! "$PY" "$REPO/benchmarks/report.py" "${REPORT_INPUTS[@]}" --out "$OUT/report"; then
    echo "gpu.sh: report.py failed: $OUT/report.md is not written" >&2
    exit 3
fi
echo "report: $OUT/report.md"
status=0
if [[ "$FAILED" -gt 0 ]]; then
    echo "gpu.sh: $FAILED step(s) failed; their rows in $OUT/report.md say \"failed: ...\"" >&2
    status=1
fi
if [[ ${#UNRECORDED[@]} -gt 0 ]]; then
    echo "gpu.sh: ${#UNRECORDED[@]} step outcome(s) could not be recorded in $STEPS_FILE;" \
        "$OUT/report.md notes which" >&2
    status=1
fi
exit "$status"
