"""The node's published outputs back as ``Instances`` (what live mode scores)."""

from __future__ import annotations

from typing import Any

import numpy as np

from instaseg_ros.core.instances import Instances


def class_names_from_label_info(msg: Any) -> list[str]:
    """``vision_msgs/LabelInfo`` (0 = background, k = class k-1) -> class names in class-id order."""
    table = {int(c.class_id): str(c.class_name) for c in msg.class_map if int(c.class_id) > 0}
    if sorted(table) != list(range(1, len(table) + 1)):
        raise ValueError(f"label_info class ids are not 1..N: {sorted(table)}")
    return [table[k] for k in range(1, len(table) + 1)]


def instances_from_outputs(
    detections: Any, instance_mask: Any, class_names: list[str], with_ids: bool = False
) -> Instances | tuple[Instances, np.ndarray]:
    """Rebuild ``Instances`` from one ``Detection2DArray`` and its mono16 ``instance_mask``.

    Detection ``id`` k owns the mask pixels equal to k; the hypothesis class is a class name or the
    label_info index (``class_id_format`` name or index); boxes come from the bbox centre/size.
    ``with_ids``: also return the [N] ids (the node's track ids) aligned with the instances.

    Raises:
        ValueError: wrong mask encoding, an id that is not a positive integer, or an unknown class.
    """
    from instaseg_ros.ros.conversions import image_to_numpy

    if instance_mask.encoding != "mono16":
        raise ValueError(f"instance_mask encoding is {instance_mask.encoding!r}, expected mono16")
    ids = np.asarray(image_to_numpy(instance_mask), dtype=np.uint16)
    h, w = ids.shape
    index = {n: i for i, n in enumerate(class_names)}
    dets = list(detections.detections)
    n = len(dets)
    keys = np.zeros(n, np.int64)
    boxes = np.zeros((n, 4), np.float32)
    scores = np.zeros(n, np.float32)
    classes = np.zeros(n, np.int64)
    for i, d in enumerate(dets):
        try:
            keys[i] = int(d.id)
        except ValueError:
            raise ValueError(f"Detection2D id {d.id!r} is not an integer instance-mask value") from None
        if keys[i] <= 0:
            raise ValueError(f"Detection2D id {d.id!r} must be >= 1 (0 is background)")
        if not d.results:
            raise ValueError(f"Detection2D {d.id} has no hypothesis")
        hyp = d.results[0].hypothesis
        cid = str(hyp.class_id)
        if cid in index:
            classes[i] = index[cid]
        elif cid.isdigit() and 1 <= int(cid) <= len(class_names):
            classes[i] = int(cid) - 1
        else:
            raise ValueError(f"Detection2D {d.id} has class {cid!r}, unknown to label_info {class_names}")
        scores[i] = float(hyp.score)
        cx, cy = d.bbox.center.position.x, d.bbox.center.position.y
        bw, bh = d.bbox.size_x, d.bbox.size_y
        boxes[i] = (cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2)
    order = np.argsort(-scores, kind="stable")  # Instances keep descending scores: align the ids
    keys, boxes, scores, classes = keys[order], boxes[order], scores[order], classes[order]
    masks = ids[None] == keys.astype(np.uint16)[:, None, None] if n else np.zeros((0, h, w), bool)
    inst = Instances(boxes, scores, classes, masks, (h, w), list(class_names))
    return (inst, keys) if with_ids else inst
