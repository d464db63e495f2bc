"""Configuration as plain YAML mapped onto dataclasses: the one helper every family's config uses."""

from __future__ import annotations

from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def load_config_mapping(config: str | Path | dict[str, Any] | None) -> dict[str, Any]:
    """A YAML path or a dict -> dict (a ``model:`` sub-mapping is unwrapped, ``family`` dropped).

    Raises:
        FileNotFoundError: the YAML file does not exist.
        ValueError: the file is not valid YAML or not a mapping (message names the file).
    """
    if config is None:
        return {}
    if isinstance(config, (str, Path)):
        import yaml

        p = Path(config)
        if not p.is_file():
            raise FileNotFoundError(f"model config {p} does not exist")
        try:
            with open(p) as f:
                data = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            raise ValueError(f"model config {p}: not valid YAML ({str(e).splitlines()[0]})") from None
        if not isinstance(data, dict):
            raise ValueError(f"model config {p}: expected a mapping, got {type(data).__name__}")
    elif isinstance(config, dict):
        data = dict(config)
    else:
        raise ValueError(f"config must be a YAML path or a dict, got {type(config).__name__}")
    if "model" in data and isinstance(data["model"], dict):
        data = dict(data["model"])
    data.pop("family", None)
    return data


def config_from_mapping(cls: type[T], d: dict[str, Any], source: str = "config") -> T:
    """``cls(**d)`` for a dataclass ``cls``; unknown keys raise ``ValueError`` naming them and ``source``."""
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"{source}: unknown {cls.__name__} keys {unknown}; known: {sorted(known)}")
    try:
        return cls(**d)
    except TypeError as e:
        raise ValueError(f"{source}: {cls.__name__}: {e}") from None


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Plain-Python mapping of a config dataclass (YAML / JSON / ``torch.save(weights_only)`` safe)."""
    return asdict(cfg)


class ConfigMixin:
    """``from_dict`` / ``from_yaml`` / ``to_dict`` for a config dataclass, via the helpers above."""

    @classmethod
    def from_dict(cls: type[T], d: dict[str, Any], source: str = "config") -> T:
        """Build from a mapping; unknown keys raise ``ValueError`` naming them."""
        return config_from_mapping(cls, d, source)

    @classmethod
    def from_yaml(cls: type[T], path: str | Path) -> T:
        """Load a YAML mapping (optionally nested under a top-level ``model:`` key)."""
        return cls.from_dict(load_config_mapping(path), source=str(path))  # type: ignore[attr-defined]

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python mapping (YAML / JSON / ``torch.save(weights_only)`` safe)."""
        return config_to_dict(self)


class FamilyConfigMixin(ConfigMixin):
    """:class:`ConfigMixin` that also accepts ``classes`` for ``class_names``, ignores an ``inference:``
    section (read by the builder into ``InferenceParams``) and writes pixel statistics as lists."""

    @classmethod
    def from_dict(cls: type[T], d: dict[str, Any], source: str = "config") -> T:
        """Build from a mapping; unknown keys raise ``ValueError`` naming them."""
        d = dict(d)
        if "classes" in d:
            d["class_names"] = d.pop("classes")
        d.pop("inference", None)
        return config_from_mapping(cls, d, source)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python mapping (pixel statistics as lists)."""
        d = config_to_dict(self)
        for key in ("pixel_mean", "pixel_std"):
            if key in d:
                d[key] = list(d[key])
        return d


def check_bounds(cfg: Any, bounds: dict[str, tuple[float, float]], name: str) -> None:
    """Refuse out-of-range sizes before a network is built from them (a checkpoint's stored config is
    user input: ``input_size: 60000`` or a million classes must not allocate gigabytes).

    ``bounds`` maps a field to its inclusive (low, high) range; a list field is checked per element, a
    ``class_names`` field by its length. Raises ``ValueError`` naming ``name``, the field, the value and
    the range.
    """
    for key, (lo, hi) in bounds.items():
        value = getattr(cfg, key)
        if value is None:
            continue
        if isinstance(value, (list, tuple)) and (key == "class_names" or key.endswith("_classes")):
            values, what = [len(value)], f"{key} (count)"
        elif isinstance(value, (list, tuple)):
            values, what = list(value), key
        else:
            values, what = [value], key
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError(f"{name}.{what}: expected a number, got {v!r}")
            if not lo <= v <= hi:
                raise ValueError(f"{name}.{what} = {v} is outside the supported range [{lo}, {hi}]")
