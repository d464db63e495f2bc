"""draw_instances: masks, boxes and labels land where the instances are, overlaps by score."""

from __future__ import annotations

import numpy as np
import pytest

from instaseg_ros.core.draw import draw_instances, instance_color
from instaseg_ros.core.instances import Instances


def _inst() -> Instances:
    masks = np.zeros((2, 60, 80), bool)
    masks[0, 10:40, 10:40] = True
    masks[1, 30:50, 30:70] = True  # overlaps instance 0 in [30:40, 30:40]
    return Instances(
        boxes=np.array([[10, 10, 40, 40], [30, 30, 70, 50]], np.float32),
        scores=np.array([0.9, 0.6], np.float32),
        class_ids=np.array([0, 1]),
        masks=masks,
        image_size=(60, 80),
        class_names=["person", "chair"],
    )


def test_masks_tinted_with_instance_colour_and_overlaps_by_score():
    img = np.zeros((60, 80, 3), np.uint8)
    out = draw_instances(img, _inst(), alpha=0.5, draw_boxes=False, draw_labels=False)
    assert out.shape == img.shape and out.dtype == np.uint8
    c0, c1 = np.array(instance_color(0)), np.array(instance_color(1))
    assert not np.array_equal(c0, c1)
    np.testing.assert_allclose(out[20, 20], c0 * 0.5, atol=1)
    np.testing.assert_allclose(out[45, 60], c1 * 0.5, atol=1)
    np.testing.assert_allclose(out[35, 35], c0 * 0.5, atol=1)  # contested pixel: higher score wins
    assert np.all(out[0:5, :] == 0) and np.all(out[55:, :] == 0)  # background untouched
    assert np.all(img == 0)  # input not modified


def test_boxes_and_labels_are_drawn():
    img = np.full((60, 80, 3), 128, np.uint8)
    inst = _inst()
    plain = draw_instances(img, inst, draw_boxes=False, draw_labels=False)
    boxed = draw_instances(img, inst, draw_labels=False)
    assert np.array_equal(boxed[25, 10], np.array(instance_color(0), np.uint8))  # left edge of box 0
    labelled = draw_instances(img, inst)
    assert (labelled != boxed).any() and (boxed != plain).any()


def test_empty_and_bad_inputs():
    img = np.zeros((60, 80, 3), np.uint8)
    assert np.array_equal(draw_instances(img, Instances.empty((60, 80), ["a"])), img)
    with pytest.raises(ValueError, match="instances are for an image of"):
        draw_instances(np.zeros((10, 10, 3), np.uint8), _inst())
    with pytest.raises(ValueError, match="uint8 BGR"):
        draw_instances(np.zeros((60, 80), np.uint8), _inst())
