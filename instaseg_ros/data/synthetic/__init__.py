"""Synthetic indoor scenes with instance masks, deterministic from a seed.

Five classes, in this order (0-based): person, chair, couch, dining table, toilet.
Each class has a consistent procedural shape (person = head + torso + arms + legs,
chair = seat + back + 4 legs, couch = long low body + arms + cushions, dining table =
slab + legs, toilet = tank + bowl + pedestal) drawn with per-class palettes,
texture and shading, standing on the floor of a room rendered in perspective
(back wall, side walls, floor pattern, wall decorations, rug, lighting gradient).

Objects are placed far to near with a size that follows the floor perspective
(their bottom edge on the floor sets their scale), so near objects occlude far ones;
occlusion is capped so every kept instance keeps at least ``min_visible_fraction``
of its area. Non-annotated distractors (plants, boxes, lamps) add clutter.

``generate_scene(seed)`` gives one :class:`SyntheticScene`; ``generate_sequence``
renders a smooth camera pan/zoom over one static scene. :class:`SyntheticDataset`
is a map-style dataset following the project's sample contract, and
``write_coco`` / ``write_synthetic_bag`` write COCO JSON + images or a rosbag2 (mcap).

With ``SynthConfig(depth=True)`` scenes also carry metric depth, the true camera and 3D
ground truth (``depth``), and the bag writer can add noisy registered depth topics.

The package is split along its seams: ``config`` (settings, class list), ``textures``,
``objects`` (the procedural drawers), ``room`` (the perspective room), ``depth`` (camera,
depth, 3D ground truth, depth noise), ``scene`` (placement and rendering), ``sequence``
(camera motion), ``dataset``, ``export`` (COCO writers) and ``bag`` (the rosbag2 writer).
The public names are re-exported here.
"""

from instaseg_ros.data.synthetic.bag import BagSpec, write_synthetic_bag
from instaseg_ros.data.synthetic.config import CLASS_NAMES, GENERATOR_VERSION, SynthConfig, demo_stream_config
from instaseg_ros.data.synthetic.dataset import SyntheticDataset
from instaseg_ros.data.synthetic.depth import DepthNoise, encode_depth
from instaseg_ros.data.synthetic.export import coco_categories, scene_annotations, scenes_to_coco, write_coco
from instaseg_ros.data.synthetic.scene import SyntheticScene, generate_scene
from instaseg_ros.data.synthetic.sequence import generate_sequence, iter_sequence_frames, iter_sequences

__all__ = [
    "CLASS_NAMES",
    "GENERATOR_VERSION",
    "BagSpec",
    "DepthNoise",
    "SynthConfig",
    "SyntheticDataset",
    "SyntheticScene",
    "coco_categories",
    "demo_stream_config",
    "encode_depth",
    "generate_scene",
    "generate_sequence",
    "iter_sequence_frames",
    "iter_sequences",
    "scene_annotations",
    "scenes_to_coco",
    "write_coco",
    "write_synthetic_bag",
]
