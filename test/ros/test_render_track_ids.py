"""render_outputs / instances_to_detections with track ids: mask values = Detection2D ids = track ids."""

from __future__ import annotations

import numpy as np
import pytest

from instaseg_ros.core.instances import Instances
from instaseg_ros.core.masks import masks_to_boxes
from instaseg_ros.ros import conversions as conv


def scene() -> Instances:
    masks = np.zeros((4, 30, 40), bool)
    masks[0, 2:12, 2:15] = True
    masks[1, 15:28, 5:30] = True
    masks[3, 3:10, 4:10] = True  # under instance 0 (lower score): owns no pixel, dropped
    masks[2, 2:20, 30:39] = True
    return Instances(masks_to_boxes(masks), np.array([0.9, 0.8, 0.6, 0.3]), [0, 1, 2, 0], masks, (30, 40),
                     ["a", "b", "c"])  # fmt: skip


def test_track_ids_become_mask_values_and_detection_ids():
    inst = scene()
    track = np.array([700, 65535, 1, 9], np.uint16)
    r = conv.render_outputs(inst, track)
    assert r.keep.tolist() == [0, 1, 2] and r.ids.tolist() == [700, 65535, 1]
    assert set(np.unique(r.instance_ids).tolist()) == {0, 700, 65535, 1}
    plain = conv.render_outputs(inst)
    assert np.array_equal(r.index_image, plain.instance_ids) and np.array_equal(r.semantic, plain.semantic)
    lut = np.zeros(4, np.uint16)
    lut[1:] = r.ids
    assert np.array_equal(r.instance_ids, lut[plain.instance_ids])  # same pixels, values replaced
    vision_msgs = pytest.importorskip("vision_msgs.msg")
    assert vision_msgs
    det = conv.instances_to_detections(r.source, None, keep=r.keep, ids=r.ids)
    assert [d.id for d in det.detections] == ["700", "65535", "1"]
    plain_det = conv.instances_to_detections(r.source, None, keep=r.keep)
    assert [d.id for d in plain_det.detections] == ["1", "2", "3"]


def test_wrong_number_of_track_ids_is_an_error():
    with pytest.raises(ValueError, match="3 track ids for 4 instances"):
        conv.render_outputs(scene(), np.array([1, 2, 3]))
