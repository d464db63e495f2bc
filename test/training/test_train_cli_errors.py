"""``instaseg train`` with a bad config: exit status 2 and one line naming the file, the field and the
problem, never a traceback; a config must name its data; the shipped configs load."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from instaseg_ros.training.config import ConfigError, config_from_dict, load_config

REPO = Path(__file__).resolve().parents[2]
GOOD: dict[str, Any] = {
    "task": "fcn", "seed": 0, "out_dir": "run",
    "model": {"arch": "resnet18", "width": 0.25, "crop_size": 32},
    "data": {"train": {"kind": "synthetic", "num_images": 2, "seed": 1, "width": 96, "height": 72},
             "batch_size": 1},
    "optim": {"max_iters": 1},
}  # fmt: skip


def variant(path: tuple[str, ...], value: Any = None, delete: bool = False) -> dict[str, Any]:
    """GOOD with the entry at ``path`` set to ``value`` (or deleted)."""
    d = copy.deepcopy(GOOD)
    node = d
    for k in path[:-1]:
        node = node[k]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return d


# (case, file text or mapping, words the one error line must contain)
CASES: list[tuple[str, Any, list[str]]] = [
    ("yaml_syntax", "task: fcn\ndata: [\n  train: {kind: synthetic\n", ["YAML syntax error", "line"]),
    ("empty", "", ["empty", "data"]),
    ("only_comments", "# nothing here\n", ["empty"]),
    ("no_data", variant(("data",), delete=True), ["data: missing", "must name its data"]),
    ("no_train_split", variant(("data", "train"), delete=True), ["data.train: missing"]),
    ("no_kind", variant(("data", "train", "kind"), delete=True), ["data.train.kind: missing"]),
    ("max_iters_abc", variant(("optim", "max_iters"), "abc"), ["max_iters: expected an integer, got 'abc'"]),
    ("amp_maybe", variant(("train",), {"amp": "maybe"}), ["train.amp: expected true or false, got 'maybe'"]),
    ("unknown_key", variant(("optim", "learning_rate"), 0.1), ["optim: unknown keys ['learning_rate']"]),
    ("unknown_section", variant(("trainer",), {}), ["unknown keys ['trainer']"]),
    ("data_not_mapping", variant(("data",), "abc"), ["data: expected a mapping, got 'abc'"]),
    ("not_a_mapping", "- a\n- b\n", ["expected a mapping"]),
    ("interval_zero", variant(("train",), {"checkpoint_interval": 0}),
     ["train.checkpoint_interval: must be >= 1"]),
    ("model_field_type", variant(("model", "crop_size"), "abc"), ["model.crop_size: expected an integer"]),
    ("augment_field_type", variant(("data", "augment"), {"hflip": "abc"}),
     ["data.augment.hflip: expected a number"]),
]


def run_train(config: Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "instaseg_ros.cli", "train", "--config", str(config),
                           "--no-progress", "--device", "cpu"], cwd=cwd or REPO, env=env, capture_output=True,
                          text=True, timeout=240)  # fmt: skip


@pytest.mark.parametrize("case,content,words", CASES, ids=[c[0] for c in CASES])
def test_bad_config_exits_2_with_one_line_naming_file_field_and_problem(case, content, words, tmp_path):
    path = tmp_path / f"{case}.yaml"
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    proc = run_train(path, cwd=tmp_path)  # the relative out_dir "run" would land in tmp_path
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("instaseg train:")]
    assert len(lines) == 1, proc.stderr[-2000:]
    assert str(path) in lines[0], lines[0]
    for w in words:
        assert w in lines[0], lines[0]
    assert not (tmp_path / "run").exists()


def test_config_that_is_a_directory_or_missing(tmp_path):
    for path, words in ((tmp_path, "is not a file"), (tmp_path / "nope.yaml", "does not exist")):
        proc = run_train(path)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert words in proc.stderr and str(path) in proc.stderr


def test_float_fields_take_yaml_exponent_strings_and_ints():
    cfg = config_from_dict(variant(("optim",), {"lr": "2e-3", "max_iters": 1, "gamma": 1}))
    assert cfg.optim.lr == pytest.approx(2e-3) and isinstance(cfg.optim.gamma, float)
    with pytest.raises(ConfigError, match=r"optim.lr: expected a number, got 'fast'"):
        config_from_dict(variant(("optim", "lr"), "fast"))
    with pytest.raises(ConfigError, match=r"data.train.classes\[1\]: expected a string, got 3"):
        config_from_dict(variant(("data", "train", "classes"), ["chair", 3]))


@pytest.mark.parametrize("path", sorted((REPO / "config" / "train").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_load_and_name_their_data(path):
    with open(path) as f:
        raw = yaml.safe_load(f)
    assert raw["data"]["train"]["kind"] in ("synthetic", "coco")
    cfg = load_config(path)
    assert cfg.data.train.kind == raw["data"]["train"]["kind"]
