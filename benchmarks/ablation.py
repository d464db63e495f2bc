"""Ablation runner: N variants x S seeds of one training config, identical data, iterations, schedule
and held-out evaluation; one JSON + Markdown table with mean, std and the paired difference to the
baseline (same seed) with a 95 % t-interval over seeds.

    python benchmarks/ablation.py --config config/ablation/yolact_se_r18.yaml [--jobs 1]
        [--work runs/ablation/NAME] [--results benchmarks/results/ablation_NAME]
        [--variants a,b] [--seeds 0,1] [--report-only]

The ablation config (YAML)::

    name: yolact_se_r18
    base: config/train/some.yaml    # a training config (path, relative to the repository) or a mapping
    overrides: {...}                # the budget, merged into base for every variant
    variants: {yolact: {model: {attention: false}}, both: {}}   # merged after the overrides
    baseline: yolact                # the paired differences are taken against this variant
    seeds: [0, 1, 2]                # the experiment seed (weights, augmentation, sampler); data stays fixed
    eval: {num_images: 300, seed: 2000, width: 320, height: 240, score_threshold: 0.05}
    classes: [chair, dining table]  # per-class AP columns
    latency: {images: 50, warmup: 5}   # batch-1 CPU timing of every variant, interleaved, 1 thread

Each run (variant, seed) trains in its own process through ``instaseg train`` (1 thread) into
``WORK/VARIANT/seed_S`` and is scored there by
:func:`instaseg_ros.training.heldout.evaluate_heldout` on ``final.pth`` loaded through
``load_model``; ``result.json`` marks it finished. Resuming: finished runs are skipped, a run
with a ``last_state.pth`` continues from it (``instaseg train --resume``), others start afresh.
Runs go in seed-major order (every variant of seed 0, then seed 1, ...), so a stopped
ablation leaves complete seeds. ``--report-only`` writes the table from the finished runs.
Exit status: 0, 1 when a run failed (the table is still written), 2 for a bad config.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
METRICS = ("box_AP", "mask_AP")
#: per-run fields of result.json copied into the report
RUN_FIELDS = ("weights_sha256", "final_loss", "iterations", "train_wall_s", "train_cpu_s", "loadavg_start",
              "status", "finished")
NAME_RE = re.compile(r"^[A-Za-z0-9_.+-]+$")


class AblationError(ValueError):
    """An ablation config that cannot be used (one line naming the field)."""


@dataclass
class Ablation:
    """A parsed ablation config (see the module docstring)."""

    name: str
    base: dict[str, Any]
    overrides: dict[str, Any]
    variants: dict[str, dict[str, Any]]
    baseline: str
    seeds: list[int]
    eval: dict[str, Any] = field(default_factory=dict)
    classes: list[str] = field(default_factory=lambda: ["chair", "dining table"])
    latency: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    def run_config(self, variant: str, seed: int, out_dir: Path) -> dict[str, Any]:
        """The training config of one run: base <- overrides <- variant, seed and out_dir set."""
        cfg = deep_merge(deep_merge(self.base, self.overrides), self.variants[variant])
        cfg["seed"] = int(seed)
        cfg["out_dir"] = str(out_dir)
        return cfg


def deep_merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """``a`` updated by ``b`` recursively (mappings merge, anything else replaces); new dict."""
    out = copy.deepcopy(a)
    for k, v in (b or {}).items():
        both = isinstance(v, dict) and isinstance(out.get(k), dict)
        out[k] = deep_merge(out[k], v) if both else copy.deepcopy(v)
    return out


def load_ablation(path: str | Path) -> Ablation:
    """Read and check an ablation YAML; every error is an :class:`AblationError` naming the field."""
    import yaml

    from instaseg_ros.training.config import ConfigError, config_from_dict

    p = Path(path)
    if not p.is_file():
        raise AblationError(f"{p}: no such file")
    try:
        d = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise AblationError(f"{p}: YAML error: {str(e).splitlines()[0]}") from None
    if not isinstance(d, dict):
        raise AblationError(f"{p}: expected a mapping")
    known = {"name", "base", "overrides", "variants", "baseline", "seeds", "eval", "classes", "latency"}
    if set(d) - known:
        raise AblationError(f"{p}: unknown keys {sorted(set(d) - known)}; known: {sorted(known)}")
    base = d.get("base")
    if isinstance(base, str):
        bp = Path(base) if Path(base).is_absolute() else REPO / base
        if not bp.is_file():
            raise AblationError(f"{p}: base: {base} does not exist")
        base = yaml.safe_load(bp.read_text(encoding="utf-8"))
    if not isinstance(base, dict):
        raise AblationError(f"{p}: base: expected a training config path or mapping")
    variants = d.get("variants")
    if not isinstance(variants, dict) or not variants:
        raise AblationError(f"{p}: variants: expected a non-empty mapping name -> overrides")
    for v, o in variants.items():
        if not NAME_RE.match(str(v)):
            raise AblationError(f"{p}: variants: name {v!r} must match {NAME_RE.pattern}")
        if o is not None and not isinstance(o, dict):
            raise AblationError(f"{p}: variants.{v}: expected a mapping of overrides, got {o!r}")
    variants = {str(k): dict(v or {}) for k, v in variants.items()}
    seeds = d.get("seeds")
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise AblationError(f"{p}: seeds: expected a non-empty list of integers")
    if len(set(seeds)) != len(seeds):
        raise AblationError(f"{p}: seeds: repeated seeds {seeds}")
    baseline = d.get("baseline", next(iter(variants)))
    if baseline not in variants:
        raise AblationError(f"{p}: baseline: {baseline!r} is not one of the variants {list(variants)}")
    name = str(d.get("name") or p.stem)
    if not NAME_RE.match(name):
        raise AblationError(f"{p}: name {name!r} must match {NAME_RE.pattern}")
    ab = Ablation(name=name, base=base, overrides=dict(d.get("overrides") or {}), variants=variants,
                  baseline=baseline, seeds=list(seeds), eval=dict(d.get("eval") or {}),
                  classes=list(d.get("classes") or ["chair", "dining table"]),
                  latency=dict(d.get("latency") or {}), source=str(p))
    unknown_eval = set(ab.eval) - {"num_images", "seed", "width", "height", "score_threshold"}
    if unknown_eval:
        raise AblationError(f"{p}: eval: unknown keys {sorted(unknown_eval)}")
    for v in variants:  # every run's training config must be valid before anything starts
        try:
            config_from_dict(ab.run_config(v, seeds[0], Path("unused")))
        except ConfigError as e:
            raise AblationError(f"{p}: variant {v}: {e}") from None
    return ab


# ---------------------------------------------------------------------- one run (worker process)


def weights_digest(path: Path) -> str:
    """SHA-256 over the checkpoint's tensors (names, dtypes, bytes): equal weights, equal digest."""
    import torch

    from instaseg_ros.weights.torch_io import load_torch_file

    obj = load_torch_file(path, "checkpoint")
    h = hashlib.sha256()

    def walk(prefix: str, x: Any) -> None:
        if isinstance(x, torch.Tensor):
            h.update(f"{prefix}:{x.dtype}:{tuple(x.shape)}".encode())
            h.update(x.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
        elif isinstance(x, dict):
            for k in sorted(x, key=str):
                walk(f"{prefix}.{k}", x[k])

    walk("", obj)
    return h.hexdigest()


def worker(run_dir: Path) -> int:
    """Train (or resume) and score the run in ``run_dir`` (``train.yaml``, ``eval.json`` written by the
    parent); writes ``result.json``. Returns the exit status."""
    import torch

    from instaseg_ros.cli import main as cli_main

    torch.set_num_threads(1)
    spec = json.loads((run_dir / "eval.json").read_text())
    t0, c0, load0 = time.perf_counter(), time.process_time(), os.getloadavg()
    status = "fresh"
    if not (run_dir / "final.pth").is_file():
        args = ["train", "--config", str(run_dir / "train.yaml"), "--out", str(run_dir), "--device", "cpu",
                "--no-progress"]
        if (run_dir / "last_state.pth").is_file():
            status = "resumed"
            args += ["--resume", str(run_dir / "last_state.pth")]
        rc = cli_main(args)
        if rc:
            return rc
    else:
        status = "evaluated"
    t1, c1 = time.perf_counter(), time.process_time()

    from instaseg_ros.models.loading import load_model
    from instaseg_ros.training.heldout import evaluate_heldout

    seg = load_model("yolact", run_dir / "final.pth")
    ev = {k: spec[k] for k in ("num_images", "seed", "width", "height", "score_threshold") if k in spec}
    m = evaluate_heldout(seg, **ev)
    t2, c2 = time.perf_counter(), time.process_time()
    rows = _csv_rows(run_dir / "metrics.csv")
    result = {
        "status": status, "metrics": m, "weights_sha256": weights_digest(run_dir / "final.pth"),
        "iterations": int(rows[-1]["iteration"]) if rows else None,
        "final_loss": float(rows[-1]["loss_total"]) if rows else None,
        "train_wall_s": t1 - t0, "train_cpu_s": c1 - c0, "eval_wall_s": t2 - t1, "eval_cpu_s": c2 - c1,
        "loadavg_start": list(load0), "loadavg_end": list(os.getloadavg()),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "git": git_info(),
    }  # fmt: skip
    tmp = run_dir / "result.json.tmp"
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, run_dir / "result.json")
    return 0


def _csv_rows(path: Path) -> list[dict[str, str]]:
    import csv

    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------------- scheduling (parent)


def prepare_run(ab: Ablation, work: Path, variant: str, seed: int) -> Path:
    """Write the run's ``train.yaml`` and ``eval.json``; a finished or started run must have been made
    from the same config (else the runner refuses to mix them)."""
    import yaml

    run_dir = work / variant / f"seed_{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = ab.run_config(variant, seed, run_dir)
    text = yaml.safe_dump(cfg, sort_keys=True)
    path = run_dir / "train.yaml"
    if path.is_file() and path.read_text() != text and (
            (run_dir / "last_state.pth").exists() or (run_dir / "final.pth").exists()):
        raise AblationError(f"{run_dir}: was started with another config (train.yaml differs); "
                            "use another --work folder or delete the run")
    path.write_text(text)
    (run_dir / "eval.json").write_text(json.dumps(ab.eval))
    return run_dir


def run_one(run_dir: Path, log: Any = print) -> dict[str, Any]:
    """Train + score ``run_dir`` in a child process unless ``result.json`` exists."""
    if (run_dir / "result.json").is_file():
        return {"run": str(run_dir), "status": "skipped"}
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    log(f"[ablation] start {run_dir} ({time.strftime('%H:%M:%S')})")
    with (run_dir / "worker.log").open("a") as f:
        rc = subprocess.call([sys.executable, str(Path(__file__).resolve()), "--worker", str(run_dir)],
                             stdout=f, stderr=subprocess.STDOUT, env=env, cwd=str(REPO))
    if rc:
        tail = (run_dir / "worker.log").read_text(errors="replace").strip().splitlines()[-1:]
        log(f"[ablation] FAILED {run_dir} (exit {rc}): {tail[0] if tail else ''}")
        return {"run": str(run_dir), "status": "failed", "rc": rc}
    r = json.loads((run_dir / "result.json").read_text())
    log(f"[ablation] done {run_dir}: {r['status']}, mask AP {r['metrics']['segm']['AP']:.4f}, "
        f"train {r['train_wall_s']:.0f} s wall / {r['train_cpu_s']:.0f} s CPU")
    return {"run": str(run_dir), "status": r["status"]}


def run_all(ab: Ablation, work: Path, jobs: int = 1, variants: list[str] | None = None,
            seeds: list[int] | None = None, log: Any = print) -> list[dict[str, Any]]:
    """Every selected run, seed-major, ``jobs`` at a time; returns one status per run."""
    vs = variants or list(ab.variants)
    ss = seeds if seeds is not None else ab.seeds
    dirs = [prepare_run(ab, work, v, s) for s in ss for v in vs]
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(lambda d: run_one(d, log), dirs))


# ---------------------------------------------------------------------- statistics and table


def run_metrics(result: dict[str, Any], classes: list[str]) -> dict[str, float]:
    """Flat metrics of one run: box/mask AP, AP50, AP75 and per-class box/mask AP."""
    m = result["metrics"]
    out = {"box_AP": m["bbox"]["AP"], "mask_AP": m["segm"]["AP"], "box_AP50": m["bbox"]["AP50"],
           "mask_AP50": m["segm"]["AP50"], "mask_AP75": m["segm"]["AP75"]}
    for c in classes:
        out[f"box_AP[{c}]"] = m["bbox"]["per_class"][c]
        out[f"mask_AP[{c}]"] = m["segm"]["per_class"][c]
    return {k: float(v) for k, v in out.items()}


def summarize(values: list[float]) -> dict[str, Any]:
    """Mean and sample standard deviation (ddof 1; None with one value)."""
    a = np.asarray(values, dtype=float)
    return {"n": len(a), "mean": float(a.mean()) if len(a) else None,
            "std": float(a.std(ddof=1)) if len(a) > 1 else None}


def paired_difference(variant: list[float], baseline: list[float], level: float = 0.95) -> dict[str, Any]:
    """Mean of ``variant[i] - baseline[i]`` (same seed) with its ``level`` t-interval over the seeds
    (``scipy.stats.t``, n-1 degrees of freedom; None below two pairs)."""
    from scipy import stats

    d = np.asarray(variant, float) - np.asarray(baseline, float)
    out: dict[str, Any] = {"n": len(d), "mean": float(d.mean()) if len(d) else None, "ci95": None,
                           "std": float(d.std(ddof=1)) if len(d) > 1 else None}
    if len(d) > 1:
        sem = float(stats.sem(d))
        lo, hi = (out["mean"], out["mean"]) if sem == 0 else stats.t.interval(level, len(d) - 1,
                                                                                loc=out["mean"], scale=sem)
        out["ci95"] = [float(lo), float(hi)]
    return out


def verdict(diff: dict[str, Any]) -> str:
    """'better' / 'worse' when the 95 % interval excludes 0, 'within noise' otherwise."""
    ci = diff.get("ci95")
    if ci is None:
        return "n/a (one seed)"
    return "better" if ci[0] > 0 else "worse" if ci[1] < 0 else "within noise"


def measure_latency(weights: dict[str, Path], spec: dict[str, Any], images: int = 50,
                    warmup: int = 5) -> dict[str, dict[str, float]]:
    """Batch-1 ``segment()`` time of each variant's model (1 thread), interleaved image by image so
    load changes of the shared machine hit every variant alike: wall and thread-CPU ms."""
    import torch

    from instaseg_ros.core.segmenter import InferenceParams
    from instaseg_ros.data.synthetic import SynthConfig, SyntheticDataset
    from instaseg_ros.models.loading import load_model

    torch.set_num_threads(1)
    segs = {v: load_model("yolact", p) for v, p in weights.items()}
    size = SynthConfig(width=int(spec.get("width", 320)), height=int(spec.get("height", 240)))
    ds = SyntheticDataset(images + warmup, seed=int(spec.get("seed", 2000)), config=size)
    params = InferenceParams()  # deployment defaults
    wall: dict[str, list[float]] = {v: [] for v in segs}
    cpu: dict[str, list[float]] = {v: [] for v in segs}
    for i in range(len(ds)):
        image = ds[i][0]
        order = list(segs) if i % 2 == 0 else list(reversed(segs))
        for v in order:
            t0, c0 = time.perf_counter(), time.thread_time()
            segs[v].segment([image], params)
            if i >= warmup:
                wall[v].append((time.perf_counter() - t0) * 1e3)
                cpu[v].append((time.thread_time() - c0) * 1e3)
    return {v: {"wall_ms_median": float(np.median(wall[v])), "wall_ms_p95": float(np.percentile(wall[v], 95)),
                "cpu_ms_median": float(np.median(cpu[v])), "images": len(wall[v]), "warmup": warmup}
            for v in segs}


def git_info() -> dict[str, Any]:
    def git(*a: str) -> str:
        try:
            out = subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True, timeout=30)
            return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    dirty = git("status", "--porcelain", "--", "instaseg_ros", "benchmarks/ablation.py").splitlines()
    return {"commit": git("rev-parse", "HEAD"), "dirty_files": dirty}


def build_report(ab: Ablation, work: Path, latency: bool = True, command: str = "") -> dict[str, Any]:
    """Collect the finished runs of ``work`` into the report (JSON layout)."""
    import yaml

    runs: dict[str, dict[int, dict[str, Any]]] = {v: {} for v in ab.variants}
    for v in ab.variants:
        for s in ab.seeds:
            p = work / v / f"seed_{s}" / "result.json"
            if p.is_file():
                runs[v][s] = json.loads(p.read_text())
    keys = list(run_metrics(next(r for rr in runs.values() for r in rr.values()), ab.classes)) if any(
        runs.values()) else []
    base_runs = runs[ab.baseline]
    variants: dict[str, Any] = {}
    for v, rr in runs.items():
        per_seed = {s: run_metrics(r, ab.classes) for s, r in sorted(rr.items())}
        entry: dict[str, Any] = {
            "overrides": ab.variants[v], "seeds": sorted(rr),
            "per_seed": {str(s): {**m, **{k: rr[s][k] for k in RUN_FIELDS}, "git": rr[s].get("git"),
                                  "eval_latency_s": rr[s]["metrics"]["latency_s"]}
                         for s, m in per_seed.items()},
            "summary": {k: summarize([m[k] for m in per_seed.values()]) for k in keys},
        }
        common = sorted(set(rr) & set(base_runs))
        if v != ab.baseline:
            bm = {s: run_metrics(base_runs[s], ab.classes) for s in common}
            entry["vs_baseline"] = {
                k: paired_difference([per_seed[s][k] for s in common], [bm[s][k] for s in common])
                for k in keys}
            for k in (k for k in METRICS if k in entry["vs_baseline"]):
                entry["vs_baseline"][k]["verdict"] = verdict(entry["vs_baseline"][k])
        variants[v] = entry
    report: dict[str, Any] = {
        "name": ab.name, "config": ab.source, "command": command, "baseline": ab.baseline, "seeds": ab.seeds,
        "base": ab.base, "overrides": ab.overrides, "eval": ab.eval, "classes": ab.classes,
        "git": git_info(), "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "variants": variants,
    }
    try:
        from instaseg_ros.evaluation.benchmark import machine_info

        report["machine"] = machine_info() | {"loadavg_at_report": list(os.getloadavg())}
    except Exception as e:  # noqa: BLE001 - machine description is informative only
        report["machine"] = {"error": str(e), "loadavg_at_report": list(os.getloadavg())}
    if latency:
        weights = {v: work / v / f"seed_{min(rr)}" / "final.pth" for v, rr in runs.items() if rr}
        if weights:
            report["latency"] = measure_latency(weights, ab.eval, int(ab.latency.get("images", 50)),
                                                int(ab.latency.get("warmup", 5)))
    report["budget"] = yaml.safe_load(yaml.safe_dump(ab.overrides))
    return report


def _fmt(s: dict[str, Any]) -> str:
    if s.get("mean") is None:
        return "-"
    return f"{s['mean']:.3f} ± {s['std']:.3f}" if s.get("std") is not None else f"{s['mean']:.3f}"


def _fmt_diff(d: dict[str, Any]) -> str:
    if d.get("mean") is None:
        return "-"
    if d.get("ci95") is None:
        return f"{d['mean']:+.3f}"
    return f"{d['mean']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]"


def report_markdown(rep: dict[str, Any]) -> str:
    """The report as a Markdown table (one row per variant) plus provenance lines."""
    cls = rep["classes"]
    head = (["variant", "seeds", "box AP", "mask AP"] + [f"mask AP {c}" for c in cls]
            + ["Δ box AP vs baseline [95 % CI]", "Δ mask AP vs baseline [95 % CI]", "mask verdict",
               "latency ms (wall / CPU)"])
    lines = [f"# Ablation {rep['name']}", "",
             f"Baseline: `{rep['baseline']}`; mean ± std over seeds; Δ = paired difference to the baseline "
             "with the same seed, 95 % t-interval over seeds (scipy.stats.t).", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for v, e in rep["variants"].items():
        sm = e["summary"]
        row = [f"`{v}`", str(len(e["seeds"])), _fmt(sm.get("box_AP", {})), _fmt(sm.get("mask_AP", {}))]
        row += [_fmt(sm.get(f"mask_AP[{c}]", {})) for c in cls]
        if "vs_baseline" in e:
            vb = e["vs_baseline"]
            row += [_fmt_diff(vb["box_AP"]), _fmt_diff(vb["mask_AP"]), vb["mask_AP"]["verdict"]]
        else:
            row += ["(baseline)", "(baseline)", "-"]
        lat = rep.get("latency", {}).get(v)
        row.append(f"{lat['wall_ms_median']:.1f} / {lat['cpu_ms_median']:.1f}" if lat else "-")
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "Per-class box AP (mean ± std):", "",
              "| variant | " + " | ".join(f"box AP {c}" for c in cls) + " |", "|---|" + "---|" * len(cls)]
    for v, e in rep["variants"].items():
        cells = [_fmt(e["summary"].get(f"box_AP[{c}]", {})) for c in cls]
        lines.append(f"| `{v}` | " + " | ".join(cells) + " |")
    defs = "; ".join(f"`{v}` = {json.dumps(e['overrides'])}" for v, e in rep["variants"].items())
    lines += ["", f"- variants: {defs}",
              f"- budget (overrides of the base config, every variant): `{json.dumps(rep['overrides'])}`",
              f"- held-out evaluation: `{json.dumps(rep['eval'])}`",
              f"- commit {rep['git']['commit']}; command: `{rep['command']}`",
              f"- machine: {rep['machine'].get('cpu', rep['machine'].get('processor', ''))}; "
              f"load average at report {rep['machine'].get('loadavg_at_report')}"]
    walls = [r["train_wall_s"] for e in rep["variants"].values() for r in e["per_seed"].values()]
    cpus = [r["train_cpu_s"] for e in rep["variants"].values() for r in e["per_seed"].values()]
    if walls:
        lines.append(f"- training per run: median {np.median(walls):.0f} s wall, {np.median(cpus):.0f} s CPU "
                     "(1 thread; wall > CPU = other processes' load on the shared cores)")
    if rep.get("latency"):
        any_lat = next(iter(rep["latency"].values()))
        lines.append(f"- latency: `segment()` batch 1, 1 thread, deployment thresholds, {any_lat['images']} "
                     f"held-out images after {any_lat['warmup']} warm-up, variants interleaved; "
                     "median wall / thread-CPU ms")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------- CLI


def _int_list(text: str | None) -> list[int] | None:
    return None if text is None else [int(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", help="ablation YAML (config/ablation/)")
    ap.add_argument("--work", default=None, help="run folders (default runs/ablation/NAME)")
    ap.add_argument("--results", default=None,
                    help="output prefix for .json/.md (default benchmarks/results/ablation_NAME)")
    ap.add_argument("--jobs", type=int, default=1, help="runs in parallel (1 thread each)")
    ap.add_argument("--variants", default=None, help="comma-separated subset of the variants")
    ap.add_argument("--seeds", default=None, help="comma-separated subset of the seeds")
    ap.add_argument("--report-only", action="store_true", help="write the table from the finished runs")
    ap.add_argument("--no-latency", action="store_true", help="skip the interleaved latency timing")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(Path(args.worker))
    if not args.config:
        print("ablation: --config is required", file=sys.stderr)
        return 2
    try:
        ab = load_ablation(args.config)
        variants = args.variants.split(",") if args.variants else None
        bad = [v for v in variants or [] if v not in ab.variants]
        if bad:
            raise AblationError(f"--variants: unknown {bad}; the config has {list(ab.variants)}")
        seeds = _int_list(args.seeds)
        if seeds is not None and not set(seeds) <= set(ab.seeds):
            extra = sorted(set(seeds) - set(ab.seeds))
            raise AblationError(f"--seeds: {extra} not in the config's {ab.seeds}")
        if args.jobs < 1:
            raise AblationError("--jobs must be >= 1")
        work = Path(args.work) if args.work else REPO / "runs" / "ablation" / ab.name
        statuses = [] if args.report_only else run_all(ab, work, args.jobs, variants, seeds)
    except (AblationError, ValueError) as e:
        print(f"ablation: {e}", file=sys.stderr)
        return 2
    command = "python benchmarks/ablation.py " + " ".join(argv if argv is not None else sys.argv[1:])
    rep = build_report(ab, work, latency=not args.no_latency, command=command)
    rep["runs"] = statuses
    prefix = Path(args.results) if args.results else REPO / "benchmarks" / "results" / f"ablation_{ab.name}"
    prefix.parent.mkdir(parents=True, exist_ok=True)
    md = report_markdown(rep)
    Path(f"{prefix}.json").write_text(json.dumps(rep, indent=1))
    Path(f"{prefix}.md").write_text(md)
    print(md)
    print(f"wrote {prefix}.json and {prefix}.md")
    return 1 if any(s["status"] == "failed" for s in statuses) else 0


if __name__ == "__main__":
    sys.exit(main())
