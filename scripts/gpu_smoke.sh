#!/usr/bin/env bash
# GPU smoke test: the GPU path end to end on a tiny local model (built here, nothing downloaded).
#   - LoRA fine-tuning on CUDA, the `hf` teacher backend on CUDA (beam search + grounding),
#     a distilled SASRec trained on CUDA, each with its throughput on this GPU;
#   - the `vllm` backend too where vLLM is installed.
# Usage: scripts/gpu_smoke.sh [WORKDIR]. Needs python with torch (CUDA), transformers, peft,
# safetensors and numpy (PYTHON=... to choose it). GPU_SMOKE_DEVICE=cpu runs the same steps on a CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DEVICE=${GPU_SMOKE_DEVICE:-cuda}
W=${1:-$(mktemp -d)}/gpu-smoke
rm -rf "$W" && mkdir -p "$W"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" DLLM2REC_HOME="$W/home"
run() { echo "+ $*" >&2; "$PY" -m distill "$@"; }

"$PY" - "$DEVICE" <<'PYEOF'
import sys, torch
device = sys.argv[1]
if device.startswith("cuda") and not torch.cuda.is_available():
    sys.exit("gpu_smoke: CUDA is not available here (GPU_SMOKE_DEVICE=cpu runs the same steps on a CPU)")
print("torch", torch.__version__, "|", torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu")
PYEOF

run synth --out "$W/csv" --users 200 --items 500 --seed 1 >/dev/null
run prepare --format csv --input "$W/csv/interactions.csv" --items "$W/csv/items.csv" --out "$W/data" >/dev/null
run teacher tiny-model --data "$W/data" --out "$W/tiny"
start=$(date +%s.%N)
run teacher finetune --data "$W/data" --model "$W/tiny" --sample 512 --val-sample 64 --epochs 4 --batch 32 \
  --lr 3e-2 --device "$DEVICE" --out "$W/adapter"
finetune_s=$(echo "$(date +%s.%N) - $start" | bc)

backends="hf"
if "$PY" -c "import vllm" 2>/dev/null; then backends="hf vllm"; else echo "vllm: not installed here, skipped" >&2; fi
for backend in $backends; do
  run teacher bigrec --data "$W/data" --adapter "$W/adapter" --backend "$backend" --device "$DEVICE" \
    --block 1024 --batch 128 --max-new-tokens 24 --latency-requests 16 --max-empty 1 --cache "$W/cache" --out "$W/teacher-$backend"
done
run train --data "$W/data" --student sasrec --teacher "$W/teacher-hf" --epochs 3 --set device="$DEVICE" \
  --set lam=0.7 --quiet --out "$W/student"

"$PY" - "$W" "$finetune_s" $backends <<'PYEOF'
import json, sys
from pathlib import Path
w, finetune_s, backends = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]
record = json.loads((w / "adapter" / "finetune.json").read_text())
prompts = record["train_prompts"] * len(record["history"])
print(f"\n{'step':<34} {'throughput':>14} {'p50 ms':>9} {'p95 ms':>9}  device")
print(f"{'finetune (LoRA)':<34} {prompts / finetune_s:>10.1f} ex/s {'':>9} {'':>9}  (incl. model load)")
for backend in backends:
    lat = json.loads((w / f"teacher-{backend}" / "latency.json").read_text())
    print(f"{'teacher bigrec --backend ' + backend:<34} {lat['throughput']:>9.1f} inst/s {lat['p50_ms']:>9.1f} "
          f"{lat['p95_ms']:>9.1f}  {lat['device']}")
metrics = json.loads((w / "student" / "metrics.json").read_text())
epochs = metrics["epochs"]
train = metrics.get("train_instances") or json.loads((w / "data" / "stats.json").read_text())["instances"]["train"]
best = min(e["seconds"] for e in epochs)
print(f"{'train sasrec + DLLM2Rec':<34} {train / best:>9.0f} inst/s {'':>9} {'':>9}  {best:.2f} s/epoch")
print(f"student test ndcg@10 {metrics['test']['ndcg@10']:.4f}")
PYEOF
