#!/usr/bin/env python3
"""Stands in for `python` in sweep tests: `sweep_stub_python.py train.py ARGS...` writes the log a
finished train.py run would (no training). SWEEP_STUB_FAIL="<dataset>:<seed>" makes that run fail
with a traceback on stderr, as a crashing train.py does."""
import os
import sys

args = sys.argv[2:]


def value(flag):
    return args[args.index(flag) + 1]


out, seed = value("--output-dir"), int(value("--seed"))
dataset = os.path.splitext(os.path.basename(value("--dataset-config-file")))[0]
if os.environ.get("SWEEP_STUB_FAIL") == f"{dataset}:{seed}":
    print("Traceback (most recent call last):\nRuntimeError: stub failure", file=sys.stderr)
    sys.exit(1)
os.makedirs(out, exist_ok=True)
log = os.path.join(out, "log.txt")
if os.path.exists(log):  # as train.py's setup_logger: never overwrite
    log += f"-{len(os.listdir(out))}"
with open(log, "w") as f:
    if "--eval-only" in args:
        f.write(f"=> result\n* accuracy: {40 + seed}.0%\n")
    else:
        f.write(f"Finish training\nDeploy the last-epoch model\n=> result\n* accuracy: {60 + seed}.0%\n")
