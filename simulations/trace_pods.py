#!/usr/bin/env python3
"""Writes N GPU pods of the repository's Alibaba traces as one multi-document Pod YAML.

Used for the whole-process timing of `gpu-slicer plan` (README, "The anytime planner"):

    python3 simulations/trace_pods.py 15000 > /tmp/pods15k.yaml
    /usr/bin/time ./target/release/gpu-slicer plan -f /tmp/pods15k.yaml --plan-deadline 1s

Rows are taken in file order from default, gpushare60, gpuspec33 and multigpu30; rows
without a GPU are skipped. A one-GPU pod with 0 < gpu_milli < 1000 gets
`gpu-slicer.io/gpu-share: <gpu_milli>m`; other one-GPU pods are exclusive; multi-GPU pods
ask for whole GPUs. The GPU-model column (gpu_spec) is left out: it would need the
trace's model → EC2 GPU name mapping (`src/trace.rs`), and the timing does not depend on it.
"""
import csv
import os
import sys

TRACES = ["default", "gpushare60", "gpuspec33", "multigpu30"]


def main() -> None:
    try:
        want = int(sys.argv[1]) if len(sys.argv) > 1 else 15000
    except ValueError:
        sys.exit(f"trace_pods.py: the pod count must be a whole number, not {sys.argv[1]!r}")
    if want < 0:
        sys.exit(f"trace_pods.py: the pod count must not be negative, not {want}")
    here = os.path.join(os.path.dirname(__file__), "data", "alibaba-gpu-2023")
    docs = []
    for name in TRACES:
        with open(os.path.join(here, f"openb_pod_list_{name}.csv"), newline="") as f:
            for row in csv.DictReader(f):
                gpus = int(row["num_gpu"])
                if gpus == 0 or len(docs) >= want:
                    continue
                milli = int(row["gpu_milli"])
                if gpus == 1 and 0 < milli < 1000:
                    ann = f'\n  annotations:\n    gpu-slicer.io/gpu-share: "{milli}m"'
                elif gpus == 1:
                    ann = "\n  annotations:\n    gpu-slicer.io/sharing: exclusive"
                else:
                    ann = ""
                docs.append(
                    f"""apiVersion: v1
kind: Pod
metadata:
  name: p{len(docs)}
  namespace: trace{ann}
spec:
  containers:
  - name: c
    image: x
    resources:
      requests: {{cpu: {row['cpu_milli']}m, memory: {row['memory_mib']}Mi}}
      limits: {{nvidia.com/gpu: {gpus}}}
"""
                )
    sys.stdout.write("---\n".join(docs))


if __name__ == "__main__":
    main()
