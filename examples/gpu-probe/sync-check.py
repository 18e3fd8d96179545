#!/usr/bin/env python3
"""Check that job.yaml's ConfigMap holds probe.py byte for byte; with --write, put it there.

  python3 sync-check.py           exit 0 when they match, 1 (with a message) when not
  python3 sync-check.py --write   rewrite the embedded copy in job.yaml from probe.py
"""
import os, sys

HERE = os.path.dirname(os.path.abspath(__file__))
KEY, INDENT = "  probe.py: |\n", "    "

probe = open(os.path.join(HERE, "probe.py"), encoding="utf-8").read()
job_path = os.path.join(HERE, "job.yaml")
job = open(job_path, encoding="utf-8").read()
head, sep, rest = job.partition(KEY)
body, dash, tail = rest.partition("\n---\n")  # the embedded script ends where the next document starts
if not sep or not dash:
    sys.exit(f"sync-check: {job_path} lacks '{KEY.strip()}' followed by a '---' document")
if "--write" in sys.argv[1:]:
    block = "".join(INDENT + l if l.strip() else l for l in probe.splitlines(True))
    open(job_path, "w", encoding="utf-8").write(head + KEY + block.rstrip("\n") + dash + tail)
    sys.exit(0)
try:  # the real test: what a YAML parser hands the pod
    import yaml
    embedded = next(yaml.safe_load_all(job))["data"]["probe.py"]
except ImportError:  # no PyYAML: undo the block's indentation by hand
    embedded = "".join(l[len(INDENT):] if l.startswith(INDENT) else l for l in (body + "\n").splitlines(True))
if embedded != probe:
    sys.exit("sync-check: job.yaml's embedded probe.py differs from probe.py (python3 sync-check.py --write)")
print("sync-check: job.yaml embeds probe.py byte for byte")
