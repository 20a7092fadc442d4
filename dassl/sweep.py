"""Experiment sweeps: a small YAML expands to train.py runs, run locally or on SLURM (submitit).

    python -m dassl.sweep sweep.yaml [--resume] [--dry-run] [--jobs N | --gpus 0,1,..] [--slurm ...]

The YAML (every key but `trainer`, `datasets` and `seeds` optional; flags override it):

    trainer: MaPLe                       # or a list
    config: vit_b16_c2_ep5_batch4_2ctx   # configs/trainers/<trainer>/<config>.yaml (or `configs:` list)
    protocol: base2new                   # base2new (train on base, test on new) | fewshot
    datasets: [imagenet, caltech101, oxford_pets]   # configs/datasets/<name>.yaml
    seeds: [1, 2, 3]
    shots: [16]                          # DATASET.NUM_SHOTS (default 16)
    opts: [OPTIM.MAX_EPOCH, 5]           # trailing KEY VALUE options of every train.py call
    load_epoch: 5                        # base2new test epoch (default: the config's OPTIM.MAX_EPOCH)
    data: /datasets                      # --root (default: $DATA)
    output: output                       # output root (default: output, in the repository)
    nproc_per_node: 1                    # > 1: each run is `torchrun --nproc_per_node=N train.py`
    jobs: 1                              # local runs at a time on CPU (GPUs: one run per N GPUs)
    slurm: {partition: gpu, time: 240, gpus_per_node: 1, cpus_per_task: 8, mem_gb: 32,
            array_parallelism: 64, account: null, qos: null, constraint: null}

Output folders are the reference scripts' (scripts/lib/run.sh):
- base2new, one unit = train then test: <output>/base2new/train_base/<dataset>/shots_<K>/<trainer>/
  <config>/seed<S>, then the test on the new classes in <output>/base2new/test_new/... (same tail).
- fewshot: <output>/<dataset>/<trainer>/<config>_<K>shots/seed<S>.
A step whose log shows it finished ("Finish training" / "=> result") is skipped. A step whose
folder exists without that is interrupted: it is listed and left alone unless --resume is given;
then it runs again into its folder (its log.txt renamed log.txt-interrupted-<time>) and train.py
resumes from the last checkpoint there.

Local execution runs one unit per GPU group (CUDA_VISIBLE_DEVICES) or `jobs` units at a time on
CPU. --slurm submits one SLURM job array through submitit (one array task per unit). A failing
unit does not stop the others; failures are listed at the end with their log paths, and the exit
status is 1. A progress line shows units done, running, failed and pending. At the end the results
are summarised with parse_test_res.py into <output>/sweep_summary.md.
"""
from __future__ import annotations

import argparse
import glob
import itertools
import os
import shlex
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Optional, Sequence

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROTOCOLS = ("base2new", "fewshot")
TRAIN_DONE, EVAL_DONE = "Finish training", "=> result"
SLURM_KEYS = ("partition", "time", "gpus_per_node", "cpus_per_task", "mem_gb", "array_parallelism",
              "account", "qos", "constraint")


class SweepError(Exception):
    """A mistake in the sweep file or flags, reported as one line."""


@dataclass
class Step:
    """One train.py call: its output folder, its arguments and the log line that means finished."""

    name: str
    output_dir: str
    args: list[str]
    done_marker: str

    def state(self) -> str:
        """"finished", "interrupted" (folder without the marker) or "new"."""
        if not os.path.isdir(self.output_dir):
            return "new"
        for path in glob.glob(os.path.join(self.output_dir, "log.txt*")):
            with open(path, errors="replace") as f:
                if self.done_marker in f.read():
                    return "finished"
        return "interrupted"


@dataclass
class Unit:
    """Steps run one after the other in one job (base2new: train, then test on the new classes)."""

    name: str
    steps: list[Step]
    console_log: str  # stdout and stderr of every step (tracebacks do not reach log.txt)
    env: dict = field(default_factory=dict)

    def pending_steps(self) -> list[Step]:
        return [s for s in self.steps if s.state() != "finished"]

    def log_paths(self) -> list[str]:
        return [self.console_log] + [os.path.join(s.output_dir, "log.txt") for s in self.steps]


def as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def load_sweep(path: str) -> dict:
    if not os.path.isfile(path):
        raise SweepError(f"sweep file not found: {path}")
    with open(path) as f:
        try:
            spec = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            raise SweepError(f"{path}: invalid YAML: {' '.join(str(e).split())}") from None
    if not isinstance(spec, dict):
        raise SweepError(f"{path}: expected a mapping of keys")
    known = {"trainer", "config", "configs", "protocol", "datasets", "seeds", "shots", "opts", "load_epoch",
             "data", "output", "nproc_per_node", "jobs", "gpus", "slurm", "python"}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise SweepError(f"{path}: unknown key(s) {unknown}; known: {sorted(known)}")
    for key in ("trainer", "datasets", "seeds"):
        if not as_list(spec.get(key)):
            raise SweepError(f"{path}: `{key}` is required")
    return spec


def config_file(trainer: str, config: str) -> str:
    if config.endswith(".yaml"):
        return config
    return os.path.join("configs", "trainers", trainer, f"{config}.yaml")


def config_name(config: str) -> str:
    return os.path.splitext(os.path.basename(config))[0]


def max_epoch(path: str) -> int:
    """OPTIM.MAX_EPOCH of a method config (the base2new test loads that epoch, as the scripts)."""
    with open(os.path.join(REPO, path) if not os.path.isabs(path) else path) as f:
        cfg = yaml.safe_load(f) or {}
    epoch = (cfg.get("OPTIM") or {}).get("MAX_EPOCH")
    if epoch is None:
        raise SweepError(f"{path} sets no OPTIM.MAX_EPOCH: give load_epoch in the sweep file")
    return int(epoch)


def opts_list(opts: Any) -> list[str]:
    if isinstance(opts, dict):
        return [str(x) for kv in opts.items() for x in kv]
    return [str(x) for x in as_list(opts)]


def expand(spec: dict, data: str, output: str, log_dir: str) -> list[Unit]:
    """The units of a sweep, in trainer, config, dataset, shots, seed order."""
    protocol = spec.get("protocol", "base2new")
    if protocol not in PROTOCOLS:
        raise SweepError(f"unknown protocol {protocol!r}; one of {PROTOCOLS}")
    configs = as_list(spec.get("configs")) or as_list(spec.get("config"))
    if not configs:
        raise SweepError("`config` (or `configs`) is required")
    extra = opts_list(spec.get("opts"))
    units = []
    for trainer, config, dataset, shots, seed in itertools.product(
            as_list(spec["trainer"]), configs, as_list(spec["datasets"]), as_list(spec.get("shots", 16)),
            as_list(spec["seeds"])):
        cfg_path = config_file(trainer, str(config))
        cfg = config_name(str(config))
        common = ["--root", data, "--seed", str(seed), "--trainer", trainer,
                  "--dataset-config-file", os.path.join("configs", "datasets", f"{dataset}.yaml"),
                  "--config-file", cfg_path]
        if protocol == "base2new":
            tail = os.path.join(str(dataset), f"shots_{shots}", trainer, cfg, f"seed{seed}")
            train_dir = os.path.join(output, "base2new", "train_base", tail)
            test_dir = os.path.join(output, "base2new", "test_new", tail)
            load_epoch = spec.get("load_epoch") or max_epoch(cfg_path)
            steps = [
                Step("train", train_dir, [*common, "--output-dir", train_dir, "DATASET.NUM_SHOTS", str(shots),
                                          "DATASET.SUBSAMPLE_CLASSES", "base", *extra], TRAIN_DONE),
                Step("test", test_dir, [*common, "--output-dir", test_dir, "--model-dir", train_dir,
                                        "--load-epoch", str(load_epoch), "--eval-only",
                                        "DATASET.NUM_SHOTS", str(shots), "DATASET.SUBSAMPLE_CLASSES", "new",
                                        *extra], EVAL_DONE),
            ]
        else:
            run_dir = os.path.join(output, str(dataset), trainer, f"{cfg}_{shots}shots", f"seed{seed}")
            steps = [Step("train", run_dir, [*common, "--output-dir", run_dir, "DATASET.NUM_SHOTS", str(shots),
                                             *extra], TRAIN_DONE)]
        name = f"{trainer}-{cfg}-{dataset}-shots{shots}-seed{seed}"
        units.append(Unit(name, steps, os.path.join(log_dir, f"{name}.log")))
    return units


def step_command(step: Step, python: str, nproc: int) -> list[str]:
    if nproc > 1:
        return [python, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "train.py",
                *step.args]
    return [python, "train.py", *step.args]


def keep_interrupted_log(output_dir: str) -> None:
    """Rename the interrupted run's log.txt, so that the resumed run writes log.txt (the file
    parse_test_res.py reads) instead of a timestamped copy."""
    log = os.path.join(output_dir, "log.txt")
    if os.path.isfile(log):
        os.replace(log, f"{log}-interrupted-{time.strftime('%Y-%m-%d-%H-%M-%S')}")


def run_unit(unit: dict, python: str, nproc: int, resume: bool) -> int:
    """Run the unfinished steps of `unit` (an asdict'ed Unit) in the repository; the first failing
    step's exit status, or 0. Module level so that submitit can pickle it for SLURM jobs."""
    steps = [Step(**s) for s in unit["steps"]]
    os.makedirs(os.path.dirname(unit["console_log"]), exist_ok=True)
    env = dict(os.environ, **unit.get("env", {}))
    with open(unit["console_log"], "a") as console:
        for step in steps:
            state = step.state()
            if state == "finished" or (state == "interrupted" and not resume):
                continue
            if state == "interrupted":
                keep_interrupted_log(step.output_dir)
            command = step_command(step, python, nproc)
            console.write(f"$ {shlex.join(command)}\n")
            console.flush()
            code = subprocess.call(command, cwd=REPO, env=env, stdout=console, stderr=subprocess.STDOUT)
            if code != 0:
                console.write(f"exit status {code}\n")
                return code
    return 0


class Progress:
    """One line: units done, running, failed, pending (rewritten in place on a terminal)."""

    def __init__(self, total: int, stream=None):
        self.total = total
        self.stream = stream or sys.stdout
        self.counts = {"done": 0, "running": 0, "failed": 0}
        self.lock = threading.Lock()
        self.last = ""

    def update(self, **delta: int) -> None:
        with self.lock:
            for k, v in delta.items():
                self.counts[k] += v
            c = self.counts
            pending = self.total - c["done"] - c["running"] - c["failed"]
            line = (f"[sweep] {c['done'] + c['failed']}/{self.total} finished: {c['done']} done, "
                    f"{c['running']} running, {c['failed']} failed, {pending} pending")
            if line == self.last:
                return
            self.last = line
            tty = getattr(self.stream, "isatty", lambda: False)()
            self.stream.write(("\r" + line) if tty else (line + "\n"))
            self.stream.flush()

    def close(self) -> None:
        if getattr(self.stream, "isatty", lambda: False)():
            self.stream.write("\n")


def run_local(units: list[Unit], slots: list[Optional[str]], python: str, nproc: int, resume: bool,
              progress: Progress) -> dict[str, int]:
    """Units on a pool of slots (CUDA_VISIBLE_DEVICES values, or None on CPU); name -> status."""
    free = list(slots)
    lock = threading.Lock()
    codes: dict[str, int] = {}

    def work(unit: Unit) -> None:
        with lock:
            slot = free.pop(0)
        progress.update(running=1)
        try:
            data = asdict(unit)
            if slot is not None:
                data["env"] = dict(data["env"], CUDA_VISIBLE_DEVICES=slot)
            code = run_unit(data, python, nproc, resume)
        except Exception as e:  # an OSError starting the process: a failure of this unit only
            with open(unit.console_log, "a") as f:
                f.write(f"sweep: {type(e).__name__}: {e}\n")
            code = -1
        finally:
            with lock:
                free.append(slot)
        codes[unit.name] = code
        progress.update(running=-1, **({"done": 1} if code == 0 else {"failed": 1}))

    with ThreadPoolExecutor(max_workers=len(slots)) as pool:
        list(pool.map(work, units))
    return codes


def run_slurm(units: list[Unit], slurm: dict, python: str, nproc: int, resume: bool, progress: Progress,
              folder: str, cluster: Optional[str] = None) -> dict[str, int]:
    """One submitit job array (one task per unit); waits for it. cluster="local" runs the same
    array with submitit's local executor (the tests' stand-in for SLURM)."""
    import submitit

    executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
    poll_s = 5.0 if executor.cluster == "slurm" else 0.5  # submitit rate-limits its sacct calls anyway
    params: dict[str, Any] = {"name": "promptkit-sweep", "timeout_min": int(slurm.get("time") or 240)}
    gpus = slurm.get("gpus_per_node", nproc)
    if executor.cluster == "slurm":
        params.update(slurm_partition=slurm.get("partition"), gpus_per_node=gpus, tasks_per_node=1,
                      cpus_per_task=slurm.get("cpus_per_task") or 8,
                      slurm_array_parallelism=slurm.get("array_parallelism") or 256)
        if slurm.get("mem_gb"):
            params["mem_gb"] = slurm["mem_gb"]
        for key in ("account", "qos", "constraint"):
            if slurm.get(key):
                params[f"slurm_{key}"] = slurm[key]
        params = {k: v for k, v in params.items() if v is not None}
    executor.update_parameters(**params)
    datas = [asdict(u) for u in units]
    jobs = executor.map_array(run_unit, datas, [python] * len(units), [nproc] * len(units),
                              [resume] * len(units))
    print(f"Submitted {len(jobs)} jobs (array {jobs[0].job_id.split('_')[0] if jobs else '-'}); "
          f"submitit logs in {folder}")
    codes: dict[str, int] = {}
    started: set[str] = set()
    while len(codes) < len(jobs):
        for unit, job in zip(units, jobs):
            if unit.name in codes:
                continue
            if job.done():
                if unit.name in started:
                    progress.update(running=-1)
                try:
                    code = job.result()
                except Exception as e:  # the job itself failed (timeout, node failure, ...)
                    with open(unit.console_log, "a") as f:
                        f.write(f"sweep: job {job.job_id} failed: {e}\nsubmitit logs: {job.paths.stderr}\n")
                    code = -1
                codes[unit.name] = code
                progress.update(**({"done": 1} if code == 0 else {"failed": 1}))
            elif unit.name not in started and job.state in ("RUNNING", "COMPLETING"):
                started.add(unit.name)
                progress.update(running=1)
        if len(codes) < len(jobs):
            time.sleep(poll_s)
    return codes


def summarize(spec: dict, units: list[Unit], output: str) -> str:
    """parse_test_res.py over the sweep's results, written to <output>/sweep_summary.md."""
    python = sys.executable
    protocol = spec.get("protocol", "base2new")
    if protocol == "base2new":
        commands = [[python, "parse_test_res.py", "--base2new", os.path.join(output, "base2new"),
                     "--csv", os.path.join(output, "sweep_summary.csv")]]
    else:
        experiments = sorted({os.path.dirname(u.steps[0].output_dir) for u in units})
        commands = [[python, "parse_test_res.py", d] for d in experiments]
    parts = []
    for command in commands:
        result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
        parts.append(result.stdout + (result.stderr if result.returncode else ""))
    summary = "\n".join(parts)
    path = os.path.join(output, "sweep_summary.md")
    with open(path, "w") as f:
        f.write(summary)
    return path


def local_slots(gpus: Optional[str], jobs: int, nproc: int) -> list[Optional[str]]:
    """CUDA_VISIBLE_DEVICES per concurrent unit: groups of nproc GPUs, or `jobs` CPU slots."""
    if gpus is None:
        try:
            import torch

            count = torch.cuda.device_count()
        except ImportError:
            count = 0
        ids = [str(i) for i in range(count)]
    else:
        ids = [g for g in str(gpus).split(",") if g != ""]
    if not ids:
        return [None] * max(1, jobs)
    if len(ids) < nproc:
        raise SweepError(f"nproc_per_node={nproc} needs {nproc} GPUs; {len(ids)} available")
    return [",".join(ids[i:i + nproc]) for i in range(0, len(ids) - nproc + 1, nproc)]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dassl.sweep", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep", help="sweep YAML file")
    parser.add_argument("--resume", action="store_true", help="run interrupted runs again (they resume)")
    parser.add_argument("--dry-run", action="store_true", help="print the units and their commands only")
    parser.add_argument("--data", help="datasets folder (default: the YAML's data, then $DATA)")
    parser.add_argument("--output", help="output root (default: the YAML's output, then output)")
    parser.add_argument("--jobs", type=int, help="local runs at a time without GPUs")
    parser.add_argument("--gpus", help="local GPU ids to use, e.g. 0,1,2,3 (default: all visible)")
    parser.add_argument("--nproc-per-node", type=int, help="processes (GPUs) per run, through torchrun")
    parser.add_argument("--python", help="interpreter running train.py (default: this one)")
    parser.add_argument("--slurm", action="store_true", help="submit a SLURM job array through submitit")
    parser.add_argument("--partition", help="SLURM partition")
    parser.add_argument("--time", type=int, help="SLURM time limit per run, minutes")
    parser.add_argument("--gpus-per-node", type=int, help="SLURM GPUs per job")
    parser.add_argument("--array-parallelism", type=int, help="SLURM array tasks running at once")
    parser.add_argument("--submitit-cluster", default=None, help=argparse.SUPPRESS)  # tests: "local"
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except SweepError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    spec = load_sweep(args.sweep)
    data = args.data or spec.get("data") or os.environ.get("DATA")
    if not data:
        raise SweepError("no datasets folder: set `data` in the sweep file, --data or $DATA")
    data = os.path.abspath(os.path.expanduser(str(data)))
    output = os.path.abspath(os.path.join(REPO, os.path.expanduser(str(args.output or spec.get("output") or "output"))))
    python = args.python or spec.get("python") or sys.executable
    nproc = int(args.nproc_per_node or spec.get("nproc_per_node") or 1)
    sweep_dir = os.path.join(output, "sweep_logs")
    units = expand(spec, data, output, sweep_dir)

    finished = [u for u in units if not u.pending_steps()]
    interrupted = [u for u in units if u not in finished
                   and any(s.state() == "interrupted" for s in u.steps)]
    todo = [u for u in units if u not in finished and (args.resume or u not in interrupted)]
    print(f"{len(units)} runs: {len(finished)} finished (skipped), {len(interrupted)} interrupted"
          f"{' (resumed)' if args.resume else ' (left alone; --resume runs them again)'}, "
          f"{len(todo) - (len(interrupted) if args.resume else 0)} to run")
    if not args.resume:
        for unit in interrupted:
            print(f"  interrupted: {unit.name} ({unit.steps[0].output_dir})")
    if args.dry_run:
        for unit in todo:
            for step in unit.pending_steps():
                print(shlex.join(step_command(step, python, nproc)))
        return 0

    progress = Progress(len(todo))
    if args.slurm or args.submitit_cluster:
        slurm = dict(spec.get("slurm") or {})
        for key, value in (("partition", args.partition), ("time", args.time),
                           ("gpus_per_node", args.gpus_per_node), ("array_parallelism", args.array_parallelism)):
            if value is not None:
                slurm[key] = value
        codes = run_slurm(todo, slurm, python, nproc, args.resume, progress, os.path.join(sweep_dir, "submitit"),
                          cluster=args.submitit_cluster) if todo else {}
    else:
        slots = local_slots(args.gpus if args.gpus is not None else spec.get("gpus"),
                            int(args.jobs or spec.get("jobs") or 1), nproc)
        codes = run_local(todo, slots, python, nproc, args.resume, progress) if todo else {}
    progress.close()

    failed = [u for u in todo if codes.get(u.name, -1) != 0]
    summary = summarize(spec, units, output)
    print(f"Summary (parse_test_res.py): {summary}")
    if failed:
        print(f"{len(failed)} failed run(s):")
        for unit in failed:
            print(f"  {unit.name}: exit status {codes.get(unit.name)}; logs: {', '.join(unit.log_paths())}")
        return 1
    print("All runs finished")
    return 0


if __name__ == "__main__":
    sys.exit(main())
