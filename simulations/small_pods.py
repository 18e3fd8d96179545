#!/usr/bin/env python3
"""Writes about BYTES of small one-container GPU Pod documents as one YAML stream.

Used for the loader's memory figure (README, "Bad input" under `plan`):

    python3 simulations/small_pods.py 50000000 > /tmp/small50.yaml
    /usr/bin/time -f "%e s %M KB" ./target/release/gpu-slicer plan -f /tmp/small50.yaml \
        -o json --effort fast > /dev/null

Each pod asks for one `nvidia.com/gpu` and a CPU and memory request drawn with a fixed
seed (50,000,000 bytes: 223,707 pods).
"""
import random
import sys


def main() -> None:
    target = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000_000
    rng = random.Random(1)
    size = 0
    i = 0
    out = sys.stdout
    while size < target:
        doc = (
            "apiVersion: v1\nkind: Pod\nmetadata:\n"
            f"  name: p-{i}\n  namespace: ml\n"
            "spec:\n  containers:\n  - name: c\n    image: x\n    resources:\n"
            "      limits:\n        nvidia.com/gpu: 1\n      requests:\n"
            f"        cpu: {rng.choice(['500m', '1', '2'])}\n"
            f"        memory: {rng.choice(['1Gi', '2Gi', '4Gi'])}\n---\n"
        )
        out.write(doc)
        size += len(doc)
        i += 1


if __name__ == "__main__":
    main()
