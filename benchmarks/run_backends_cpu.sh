#!/usr/bin/env bash
# The CPU backend comparison recorded under benchmarks/results/: YOLACT ResNet-50 550 and YOLO+FCN
# (YOLOv3-416 + ResNet-18 FCN) through PyTorch and ONNX Runtime, and torchvision Mask R-CNN
# ResNet-50 FPN as the peer, in one process on the same 8 synthetic 640x480 images and threads.
# Random weights score every class alike, so --score-threshold 0.015 is chosen to let every model
# reach the 100-detection cap: the same (worst-case) post-processing load for all of them.
set -euo pipefail
cd "$(dirname "$0")/.."
source env.sh
stamp="$(date -u +%Y%m%dT%H%MZ)"
python -m instaseg_ros.cli benchmark \
  --model yolact \
  --model yolo_fcn=benchmarks/configs/yolo_fcn_416_random.yaml \
  --backends torch,onnxruntime,tensorrt \
  --batches 1,2,4 --warmup 1 --runs 6 --num-images 8 --size 640x480 \
  --score-threshold 0.015 --top-k 100 \
  --out "benchmarks/results/backends_cpu_${stamp}.json" "$@"
