"""Ground-truth identities of the synthetic camera-motion sequences and their rosbag ground truth."""

from __future__ import annotations

import json

import numpy as np

from instaseg_ros.data.synthetic import (
    BagSpec,
    SynthConfig,
    generate_scene,
    generate_sequence,
    scenes_to_coco,
    write_synthetic_bag,
)
from instaseg_ros.evaluation.gt_tools import load_ground_truth

CFG = SynthConfig(width=160, height=120, min_objects=3, max_objects=5, max_distractors=1)


def _centroids(frame) -> dict[int, np.ndarray]:
    """Track id -> [2] (x, y) centroid of its visible mask."""
    out = {}
    for i, t in enumerate(frame.track_ids):
        ys, xs = np.nonzero(frame.id_map == i + 1)
        out[int(t)] = np.array([xs.mean(), ys.mean()])
    return out


def test_sequence_frames_carry_stable_track_ids():
    frames = generate_sequence((5, 2), 12, CFG)
    seen: dict[int, int] = {}
    for f in frames:
        assert f.track_ids is not None and f.track_ids.dtype == np.int64
        assert f.track_ids.shape == f.labels.shape
        assert len(set(f.track_ids.tolist())) == len(f.track_ids) and (f.track_ids >= 1).all()
        assert list(f.track_ids) == sorted(f.track_ids)  # instance order follows the base scene
        for t, lab in zip(f.track_ids.tolist(), f.labels.tolist()):
            assert seen.setdefault(t, lab) == lab  # one identity never changes class
    assert len(seen) >= 2
    # the same identity is the same object: its centroid moves a few pixels per frame, while
    # two different objects of a frame are further apart than that on average
    steps, gaps = [], []
    for a, b in zip(frames, frames[1:]):
        ca, cb = _centroids(a), _centroids(b)
        steps += [np.linalg.norm(ca[t] - cb[t]) for t in ca.keys() & cb.keys()]
        gaps += [np.linalg.norm(ca[s] - ca[t]) for s in ca for t in ca if s < t]
    assert steps and np.median(steps) < 4.0 < np.median(gaps)


def test_single_scenes_have_no_track_ids_and_coco_has_no_track_key():
    sc = generate_scene((0, 1), CFG)
    assert sc.track_ids is None
    assert all("track_id" not in a for a in scenes_to_coco([sc])["annotations"])


def test_bag_ground_truth_has_file_unique_track_ids_per_sequence(tmp_path):
    spec = BagSpec(num_frames=10, sequence_length=4)
    _, gt_path = write_synthetic_bag(tmp_path, seed=3, config=CFG, spec=spec)
    gt = json.loads(gt_path.read_text())
    seq_of = {im["id"]: im["sequence"] for im in gt["images"]}
    assert [seq_of[k] for k in sorted(seq_of)] == [0] * 4 + [1] * 4 + [2] * 2
    track_seq, track_cat = {}, {}
    for a in gt["annotations"]:
        t = a["track_id"]
        assert track_seq.setdefault(t, seq_of[a["image_id"]]) == seq_of[a["image_id"]]  # never reused
        assert track_cat.setdefault(t, a["category_id"]) == a["category_id"]
    per_image = {}
    for a in gt["annotations"]:
        per_image.setdefault(a["image_id"], []).append(a["track_id"])
    assert all(len(v) == len(set(v)) for v in per_image.values())
    # the frames of one sequence agree with generate_sequence's own identities
    first = generate_sequence((3, 0), 4, CFG)
    assert [sorted(per_image.get(k + 1, [])) for k in range(4)] == [sorted(f.track_ids) for f in first]
    # the evaluation loader reads the new file, and one without the new keys as before
    assert len(load_ground_truth(gt_path).stamps) == 10
    for im in gt["images"]:
        im.pop("sequence")
    for a in gt["annotations"]:
        a.pop("track_id")
    assert len(load_ground_truth(gt).stamps) == 10
