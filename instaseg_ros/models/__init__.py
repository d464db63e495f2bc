"""Model families behind the ``Segmenter`` interface, and the name -> builder registry."""

from instaseg_ros.models.registry import available_families, build_segmenter, register_family

__all__ = ["available_families", "build_segmenter", "register_family"]
