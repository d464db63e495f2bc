"""The semantic image is rendered only when asked (the node asks while ~/semantic_mask has subscribers)."""

from __future__ import annotations

import numpy as np

from instaseg_ros.core.instances import Instances
from instaseg_ros.ros import conversions as conv


def test_semantic_image_is_optional_and_nothing_else_changes():
    masks = np.zeros((3, 40, 60), bool)
    masks[0, 5:20, 5:25] = True
    masks[1, 10:30, 20:50] = True  # overlaps instance 0; the higher score owns the overlap
    masks[2, 0:2, 0:2] = True
    boxes = np.array([[5, 5, 25, 20], [20, 10, 50, 30], [0, 0, 2, 2]], np.float32)
    scores = np.array([0.9, 0.8, 0.4], np.float32)
    inst = Instances(boxes, scores, np.array([0, 1, 2]), masks, (40, 60), ["a", "b", "c"])
    full = conv.render_outputs(inst, np.array([7, 3, 11]))
    lean = conv.render_outputs(inst, np.array([7, 3, 11]), semantic=False)
    assert lean.semantic is None and full.semantic is not None
    assert set(np.unique(full.semantic)) == {0, 1, 2, 3}
    np.testing.assert_array_equal(full.instance_ids, lean.instance_ids)
    np.testing.assert_array_equal(full.ids, lean.ids)
    np.testing.assert_array_equal(full.keep, lean.keep)
