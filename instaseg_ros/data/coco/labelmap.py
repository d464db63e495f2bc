"""Class-name lists (label maps) from lists or files, and name normalisation."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path


def read_label_map(source: str | Path | Sequence[str]) -> list[str]:
    """Class names in model order from a list, or a file: ``.txt`` (one name a line),
    ``.json``/``.yaml`` (a list, ``{names: [...]}``, or ``{index: name}``)."""
    if not isinstance(source, (str, Path)):
        names = [str(n) for n in source]
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"label map file not found: {path}")
        text = path.read_text()
        if path.suffix.lower() == ".txt":
            names = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        else:
            if path.suffix.lower() == ".json":
                data = json.loads(text)
            else:
                import yaml

                data = yaml.safe_load(text)
            if isinstance(data, dict) and "names" in data:
                data = data["names"]
            if isinstance(data, dict):
                data = [data[k] for k in sorted(data, key=lambda k: int(k))]
            if not isinstance(data, list):
                raise ValueError(
                    f"label map {path}: expected a list of names, {{names: [...]}} or {{index: name}}"
                )
            names = [str(n) for n in data]
    if not names:
        raise ValueError(f"label map {source!r} is empty")
    dup = [n for n, c in Counter(names).items() if c > 1]
    if dup:
        raise ValueError(f"label map {source!r} repeats class names: {dup}")
    return names


def _norm(name: str) -> str:
    return " ".join(str(name).strip().lower().replace("_", " ").split())
