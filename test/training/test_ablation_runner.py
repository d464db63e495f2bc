"""benchmarks/ablation.py end to end on a tiny budget: 2 variants x 2 seeds (a few iterations, 96x72
images, 3 held-out scenes), each run trained by ``instaseg train`` in its own process. Checks the
table's structure, that another seed gives other weights and results, that the same seed reproduces
them in a fresh folder, and that a second invocation skips finished runs and resumes an unfinished
one from its ``last_state.pth``."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from tiny_tasks import MODELS

REPO = Path(__file__).resolve().parents[2]


def _ablation_module() -> Any:
    spec = importlib.util.spec_from_file_location("ablation_runner", REPO / "benchmarks" / "ablation.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


ablation = _ablation_module()


def tiny_config(tmp_path: Path) -> Path:
    base = {
        "task": "yolact", "seed": 0, "out_dir": "unused",
        "model": {**MODELS["yolact"], "attention": True},
        "init": {"proto_bias": 1.0},
        "data": {"train": {"kind": "synthetic", "num_images": 6, "seed": 1, "width": 96, "height": 72},
                 "val": None, "augment": {"hflip": 0.5, "photometric": 0.5, "blur": 0.0, "jpeg": 0.0},
                 "batch_size": 2},
        "optim": {"optimizer": "adamw", "lr": 1e-3, "warmup_iters": 1, "max_iters": 3},
        "train": {"val_interval": 0, "checkpoint_interval": 2, "log_interval": 1, "num_threads": 1},
    }  # fmt: skip
    cfg = {
        "name": "tiny", "base": base, "overrides": {"optim": {"max_iters": 4}},
        "variants": {"plain": {"model": {"attention": False}},
                     "both": {"loss": {"contextual": {"weight": 0.1, "dim": 4, "max_pixels": 64}}}},
        "baseline": "plain", "seeds": [0, 1],
        "eval": {"num_images": 3, "seed": 2000, "width": 96, "height": 72, "score_threshold": 0.05},
        "classes": ["chair", "dining table"], "latency": {"images": 2, "warmup": 1},
    }  # fmt: skip
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def run(args: list[str], prefix: Path) -> dict[str, Any]:
    assert ablation.main([*args, "--results", str(prefix)]) == 0
    return json.loads(Path(f"{prefix}.json").read_text())


@pytest.mark.slow
def test_ablation_runner_end_to_end(tmp_path):
    cfg = tiny_config(tmp_path)
    work = tmp_path / "work"
    rep = run(["--config", str(cfg), "--work", str(work)], tmp_path / "res")

    # structure: both variants, both seeds, mean/std, per-class AP, paired differences, latency
    assert list(rep["variants"]) == ["plain", "both"] and rep["baseline"] == "plain"
    keys = {"box_AP", "mask_AP", "mask_AP[chair]", "mask_AP[dining table]", "box_AP[chair]",
            "box_AP[dining table]"}
    for v, e in rep["variants"].items():
        assert e["seeds"] == [0, 1], v
        assert keys <= set(e["summary"]), v
        for k in keys:
            s = e["summary"][k]
            assert s["n"] == 2 and 0.0 <= s["mean"] <= 1.0 and s["std"] >= 0.0, (v, k, s)
        for r in e["per_seed"].values():
            assert r["iterations"] == 4 and r["status"] == "fresh" and math.isfinite(r["final_loss"])
    assert "vs_baseline" not in rep["variants"]["plain"]
    for k in ("box_AP", "mask_AP"):
        d = rep["variants"]["both"]["vs_baseline"][k]
        lo, hi = d["ci95"]
        assert d["n"] == 2 and lo <= d["mean"] <= hi
        assert d["verdict"] in ("better", "worse", "within noise")
    for v in ("plain", "both"):
        lat = rep["latency"][v]
        assert lat["images"] == 2 and lat["wall_ms_median"] > 0 and lat["cpu_ms_median"] > 0
    md = Path(f"{tmp_path / 'res'}.md").read_text()
    rows = [ln for ln in md.splitlines() if ln.startswith("| `")]
    assert len(rows) == 4 and rows[0].startswith("| `plain` | 2 |") and "(baseline)" in rows[0]
    header = next(ln for ln in md.splitlines() if ln.startswith("| variant | seeds"))
    assert "mask AP chair" in header and "mask AP dining table" in header and "95 % CI" in header

    # another seed: other weights, other training loss (the data and schedule are identical)
    for v, e in rep["variants"].items():
        s0, s1 = e["per_seed"]["0"], e["per_seed"]["1"]
        assert s0["weights_sha256"] != s1["weights_sha256"], v
        assert s0["final_loss"] != s1["final_loss"], v
    # the same seed in a fresh folder: the same weights and the same metrics
    again = run(["--config", str(cfg), "--work", str(tmp_path / "again"), "--variants", "both",
                 "--seeds", "0", "--no-latency"], tmp_path / "again_res")
    first, second = rep["variants"]["both"]["per_seed"]["0"], again["variants"]["both"]["per_seed"]["0"]
    for k in ("weights_sha256", "final_loss", *sorted(keys)):
        assert first[k] == second[k], k
    assert again["variants"]["plain"]["seeds"] == []

    # a second invocation: finished runs are skipped, an unfinished one resumes from its state
    unfinished = work / "plain" / "seed_1"
    (unfinished / "result.json").unlink()
    (unfinished / "final.pth").unlink()
    rerun = run(["--config", str(cfg), "--work", str(work), "--no-latency"], tmp_path / "rerun")
    status = {Path(r["run"]).relative_to(work).as_posix(): r["status"] for r in rerun["runs"]}
    assert status == {"plain/seed_0": "skipped", "both/seed_0": "skipped", "plain/seed_1": "resumed",
                      "both/seed_1": "skipped"}
    resumed = rerun["variants"]["plain"]["per_seed"]["1"]
    assert resumed["weights_sha256"] == rep["variants"]["plain"]["per_seed"]["1"]["weights_sha256"]


def test_bad_ablation_config_is_one_line_exit_2(tmp_path, capsys):
    cfg = yaml.safe_load(tiny_config(tmp_path).read_text())
    cfg["baseline"] = "nope"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert ablation.main(["--config", str(bad), "--work", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "baseline" in err[0] and "nope" in err[0]
    cfg["baseline"] = "plain"
    cfg["variants"]["plain"] = {"optim": {"max_iters": "many"}}
    bad.write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert ablation.main(["--config", str(bad), "--work", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "variant plain" in err[0] and "max_iters" in err[0]
    assert not (tmp_path / "w").exists()


def test_paired_difference_matches_a_t_interval():
    from scipy import stats

    d = ablation.paired_difference([0.30, 0.34, 0.29], [0.25, 0.27, 0.28])
    diffs = [0.05, 0.07, 0.01]
    mean = sum(diffs) / 3
    lo, hi = stats.t.interval(0.95, 2, loc=mean, scale=stats.sem(diffs))
    assert d["mean"] == pytest.approx(mean) and d["ci95"] == pytest.approx([lo, hi])
    assert ablation.verdict(d) == ("better" if lo > 0 else "within noise")
    same = ablation.paired_difference([0.3, 0.3], [0.3, 0.3])
    assert same["ci95"] == [0.0, 0.0] and ablation.verdict(same) == "within noise"
