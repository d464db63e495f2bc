"""Tracking in the node over real DDS: a slowly moving synthetic scene keeps its ids frame to frame,
``~/instance_mask`` values equal the Detection2D ids, a stamp going backwards starts new tracks, and
``tracking.*`` parameters are validated (cross-field rules included) and diagnosed."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy not importable: source env.sh")

from oracle_node import load_recording, match_boxes, oracle_node  # noqa: E402
from ros_probe import connected_probe, ensure_ros_env  # noqa: E402

from instaseg_ros.ros import conversions as conv  # noqa: E402

pytestmark = pytest.mark.ros
NS = "/t15trk"
FQN = f"{NS}/instaseg_node"
TOPIC = "/cam15/image_raw"


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    from instaseg_ros.data.synthetic import BagSpec, SynthConfig, write_synthetic_bag

    cfg = SynthConfig(width=160, height=120, min_objects=3, max_objects=5, max_distractors=0)
    spec = BagSpec(num_frames=24, rate=10.0, sequence_length=24, write_images=True)
    _, gt = write_synthetic_bag(tmp_path_factory.mktemp("trk"), seed=5, config=cfg, spec=spec)
    return gt


@pytest.fixture(scope="module")
def probe(recording, tmp_path_factory):
    ensure_ros_env()
    args = ["-r", f"__ns:={NS}", "-r", f"image:={TOPIC}", "-p", "qos_reliability:=reliable"]
    with oracle_node(recording, args, tmp_path_factory.mktemp("log") / "node.log"):
        with connected_probe(FQN, TOPIC) as p:
            yield p


def send(probe, image: np.ndarray, stamp_ns: int) -> dict:
    """Publish one bgr8 frame stamped ``stamp_ns``; its (detections, instance mask) outputs."""
    header = probe.next_header()
    header.stamp.sec, header.stamp.nanosec = divmod(int(stamp_ns), 10**9)
    probe.publish(conv.numpy_to_image(image, "bgr8", header))
    out = probe.result_for(header, timeout=30.0)
    assert out is not None, "no outputs for a frame"
    return {"det": out["detections"][-1], "mask": conv.image_to_numpy(out["instance_mask"][-1])}


def ids_and_boxes(det) -> tuple[list[int], np.ndarray]:
    ids = [int(d.id) for d in det.detections]
    rows = []
    for d in det.detections:
        c, hw, hh = d.bbox.center.position, d.bbox.size_x / 2, d.bbox.size_y / 2
        cx, cy = c.x, c.y
        rows.append([cx - hw, cy - hh, cx + hw, cy + hh])
    boxes = np.array(rows).reshape(-1, 4)
    return ids, boxes


def test_ids_are_stable_across_a_moving_scene_and_equal_the_mask_values(probe, recording):
    _, frames = load_recording(recording)
    gt_to_node: dict[int, set[int]] = {}
    first_ids: list[int] = []
    for k, f in enumerate(frames):
        out = send(probe, f["image"], f["rec"]["stamp_ns"])
        ids, boxes = ids_and_boxes(out["det"])
        assert len(ids) == len(set(ids)) and all(1 <= i <= 65535 for i in ids)
        # one to one: the set of mask values is the set of Detection2D ids
        values = set(np.unique(out["mask"]).tolist()) - {0}
        assert values == set(ids), (k, values, ids)
        for det_id, j in zip(ids, match_boxes(boxes, f["anns"])):
            gt_to_node.setdefault(f["anns"][j]["track_id"], set()).add(det_id)
        if k == 0:
            first_ids = ids
    assert len(gt_to_node) >= 3
    switched = {t: s for t, s in gt_to_node.items() if len(s) != 1}
    assert not switched, f"ground-truth tracks with more than one node id: {switched}"
    assert len(set().union(*gt_to_node.values())) == len(gt_to_node)  # no id shared by two objects

    # a stamp going backwards (a looping bag) starts new tracks: none of the old ids comes back
    seen = set().union(*gt_to_node.values())
    out = send(probe, frames[0]["image"], frames[0]["rec"]["stamp_ns"] - 10**9)
    ids, _ = ids_and_boxes(out["det"])
    assert len(ids) == len(first_ids) and not set(ids) & seen, (ids, seen)
    assert set(np.unique(out["mask"]).tolist()) - {0} == set(ids)
    diag = probe.latest_diagnostics(timeout=5.0)
    assert diag["tracking_enabled"] == "True" and int(diag["track_time_jumps"]) >= 1
    assert int(diag["track_births"]) >= len(seen) + len(ids) and int(diag["tracks_live"]) == len(ids)
    assert float(diag["tracking_ms_p50"]) > 0


def test_tracking_parameters_are_validated_and_tracking_can_be_switched_off(probe, recording):
    res = probe.set_params(**{"tracking.low_threshold": 0.9})  # above high_threshold 0.5
    assert not res[0].successful and "must not exceed" in res[0].reason
    assert probe.set_params(**{"tracking.box_weight": 0.0})[0].successful  # mask IoU alone is fine
    res = probe.set_params(**{"tracking.mask_weight": 0.0})  # ... but not neither
    assert not res[0].successful and "must be positive" in res[0].reason
    assert probe.get_params("tracking.mask_weight")["tracking.mask_weight"] == 0.5
    assert probe.set_params(**{"tracking.box_weight": 0.5})[0].successful
    _, frames = load_recording(recording)
    assert all(r.successful for r in probe.set_params(**{"tracking.enabled": False}))
    out = send(probe, frames[3]["image"], frames[3]["rec"]["stamp_ns"] + 10**10)
    ids, _ = ids_and_boxes(out["det"])
    assert ids == list(range(1, len(ids) + 1))  # per-frame numbering, still one to one with the mask
    assert set(np.unique(out["mask"]).tolist()) - {0} == set(ids)
    assert all(r.successful for r in probe.set_params(**{"tracking.enabled": True}))
