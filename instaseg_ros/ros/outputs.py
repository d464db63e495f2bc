"""The node's per-frame 2D outputs: render only what someone listens to, reuse buffers, publish.

Always published (CONVENTIONS.md section 2): ``~/instance_mask`` (mono16) and then ``~/detections``
(last, so a consumer holding the detections can expect the mask of the same stamp). Rendered and
published only while subscribed: ``~/semantic_mask`` (mono8), ``~/semantic_confidence`` (mono8) and
``~/debug_image`` (bgr8, also switched off by the ``debug_image`` parameter).

Costs cut here (measured by ``benchmarks/bench_node_overhead.py``): the instance mask is rendered
straight into the message's reused pixel buffer (:class:`~instaseg_ros.ros.conversions.ImageBuffer`);
the Detection2DArray goes out pre-serialised (:func:`~instaseg_ros.ros.detections_cdr.detections_cdr`,
about 10x cheaper than building the Python message and converting it), but only after
:func:`~instaseg_ros.ros.detections_cdr.detections_cdr_matches` confirmed the bytes against rclpy's own
serialiser and the installed vision_msgs; otherwise the message path is used.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from instaseg_ros.core.instances import Instances
from instaseg_ros.ros import conversions as conv
from instaseg_ros.ros import conversions_3d as c3
from instaseg_ros.ros.detections_cdr import detections_cdr


class Outputs2D:
    """Renders and publishes one frame's 2D outputs on the node's lifecycle publishers.

    Args:
        pubs: the node's publishers by short name (``detections``, ``instance_mask``, ``semantic_mask``,
            ``semantic_confidence``, ``debug_image``).
        serialised_detections: publish ``~/detections`` as pre-serialised bytes (only where
            ``detections_cdr_matches()``; the node checks it at configure).
    """

    def __init__(self, pubs: dict[str, Any], serialised_detections: bool = False) -> None:
        self.pubs = pubs
        self.serialised_detections = serialised_detections
        self._instance_mask = conv.ImageBuffer("mono16")
        self._draw = None

    def publish(
        self, inst: Instances, header, track_ids: np.ndarray | None = None, class_id_format: str = "name"
    ) -> conv.Rendered:
        """~/instance_mask, ~/detections and, while subscribed, ~/semantic_mask and ~/semantic_confidence
        for ``inst`` ([N] instances at input resolution), all with ``header``; mask values and Detection2D
        ids are ``track_ids`` ([N] uint16, else 1..M). Returns the rendered arrays (for 3D and debug);
        their ``instance_ids`` is the reused message buffer, overwritten by the next call."""
        pubs = self.pubs
        semantic_pub = pubs["semantic_mask"]
        want_semantic = semantic_pub.get_subscription_count() > 0
        h, w = inst.image_size
        pixels = self._instance_mask.pixels(h, w)
        out = conv.render_outputs(inst, track_ids, semantic=want_semantic, instance_out=pixels)
        pubs["instance_mask"].publish(self._instance_mask.message(header))
        if out.semantic is not None:
            semantic_pub.publish(conv.numpy_to_image(out.semantic, "mono8", header))
        build = detections_cdr if self.serialised_detections else conv.instances_to_detections
        pubs["detections"].publish(build(out.source, header, class_id_format, keep=out.keep, ids=out.ids))
        confidence = pubs["semantic_confidence"]
        if confidence.get_subscription_count() > 0:  # for the Nav2 semantic segmentation layer
            table = c3.IdTable.from_instances(out.instances)
            image = c3.confidence_image(out.index_image, table)
            confidence.publish(conv.numpy_to_image(image, "mono8", header))
        return out

    def wants_debug(self) -> bool:
        """True while ``~/debug_image`` has subscribers."""
        return self.pubs["debug_image"].get_subscription_count() > 0

    def publish_debug(self, image: np.ndarray, inst: Instances, header) -> None:
        """~/debug_image: ``inst`` drawn over ``image`` ([H, W, 3] uint8 BGR), with ``header``."""
        if self._draw is None:
            from instaseg_ros.core.draw import draw_instances

            self._draw = draw_instances
        self.pubs["debug_image"].publish(conv.numpy_to_image(self._draw(image, inst), "bgr8", header))
