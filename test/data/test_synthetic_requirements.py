"""Scene requirements of the synthetic generator: a minimum visible count and required classes."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from instaseg_ros.data.synthetic import (
    CLASS_NAMES,
    BagSpec,
    SynthConfig,
    demo_stream_config,
    generate_scene,
    generate_sequence,
    write_synthetic_bag,
)

PERSON = CLASS_NAMES.index("person")


def test_demo_stream_has_a_person_and_3_to_6_objects_in_every_frame(tmp_path):
    """The demo's own stream (its seed, length, size and sequence length), as it writes it."""
    from instaseg_ros.cli.demo import SYNTH_SEED

    spec = BagSpec(num_frames=60, rate=10.0, sequence_length=30)
    _, gt_path = write_synthetic_bag(
        tmp_path, seed=SYNTH_SEED, config=demo_stream_config(640, 480), spec=spec
    )
    gt = json.loads(gt_path.read_text())
    assert len(gt["images"]) == 60
    per_image = Counter(a["image_id"] for a in gt["annotations"])
    persons = Counter(a["image_id"] for a in gt["annotations"] if a["category_id"] == PERSON + 1)
    for im in gt["images"]:
        assert 3 <= per_image[im["id"]] <= 6, im
        assert persons[im["id"]] >= 1, im
    assert len({a["category_id"] for a in gt["annotations"]}) >= 3  # more than people and one class


def test_required_class_appears_even_with_zero_sampling_weight():
    cfg = SynthConfig(width=160, height=120, class_weights=(0, 1, 1, 1, 1), required_classes=("person",))
    for i in range(8):
        assert PERSON in generate_scene((4, i), cfg).labels
    # without the requirement the weight keeps people out
    free = SynthConfig(width=160, height=120, class_weights=(0, 1, 1, 1, 1))
    assert all(PERSON not in generate_scene((4, i), free).labels for i in range(8))


def test_min_visible_objects_holds_in_scenes_and_every_sequence_frame():
    cfg = SynthConfig(width=160, height=120, min_objects=3, max_objects=5, min_visible_objects=3)
    counts = [len(generate_scene((7, i), cfg).labels) for i in range(10)]
    assert min(counts) >= 3
    base = SynthConfig(width=160, height=120, min_objects=3, max_objects=5)
    assert min(len(generate_scene((7, i), base).labels) for i in range(10)) < 3  # the requirement matters
    for s in range(3):
        frames = generate_sequence((8, s), 10, cfg)
        assert all(len(f.labels) >= 3 for f in frames)
        assert all(f.track_ids is not None and len(f.track_ids) == len(f.labels) for f in frames)


def test_requirements_are_deterministic():
    cfg = demo_stream_config(160, 120)
    a, b = generate_sequence(3, 5, cfg), generate_sequence(3, 5, cfg)
    for fa, fb in zip(a, b):
        np.testing.assert_array_equal(fa.image, fb.image)
        np.testing.assert_array_equal(fa.track_ids, fb.track_ids)


def test_bad_or_unreachable_requirements_are_named():
    with pytest.raises(ValueError, match="required_classes.*sofa"):
        SynthConfig(required_classes=("sofa",))
    with pytest.raises(ValueError, match="min_visible_objects <= max_objects"):
        SynthConfig(max_objects=2, min_visible_objects=3)
    assert SynthConfig.from_dict({"required_classes": ["person"]}).required_classes == ("person",)
    never = SynthConfig(width=64, height=48, min_visible_area=64 * 48 + 1, min_visible_objects=1)
    with pytest.raises(ValueError, match="50 renderings never kept min_visible_objects=1"):
        generate_scene(0, never)
    with pytest.raises(ValueError, match="synthetic sequence"):
        generate_sequence(0, 3, never)
