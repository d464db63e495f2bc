#!/usr/bin/env bash
# Label Studio (PyPI `label-studio`) in its own virtual environment, .venv/labelstudio: its pinned
# dependencies (Django, numpy, ...) differ from ours, so it never shares .venv's site-packages.
# Used by the Label Studio round-trip test (test/web/test_label_studio_roundtrip.py) and by you to
# annotate: `.venv/labelstudio/bin/label-studio start`. Idempotent: a second run returns in a second.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LS_VENV="${INSTASEG_LABEL_STUDIO_VENV:-$ROOT/.venv/labelstudio}"
PYTHON="${INSTASEG_PYTHON:-python3.11}"
SPEC="label-studio>=1.23,<2"
say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

if [ "$(cat "$LS_VENV/.instaseg-req" 2>/dev/null)" = "$SPEC" ] && [ -x "$LS_VENV/bin/label-studio" ]; then
  say "Label Studio up to date ($LS_VENV)"
  exit 0
fi
command -v "$PYTHON" >/dev/null || die "$PYTHON not found (set INSTASEG_PYTHON)"
say "installing Label Studio into $LS_VENV (its own environment; a few minutes the first time)"
start=$(date +%s)
[ -x "$LS_VENV/bin/python" ] || "$PYTHON" -m venv "$LS_VENV" || die "could not create $LS_VENV"
log="$LS_VENV/pip-install.log"
"$LS_VENV/bin/python" -m pip install --progress-bar off "$SPEC" > "$log" 2>&1 \
  || { grep -v "is ignored" "$log" | tail -30; die "pip install $SPEC failed (log: $log)"; }
"$LS_VENV/bin/python" -c "import label_studio, label_studio_sdk" || die "label-studio does not import (log: $log)"
echo "$SPEC" > "$LS_VENV/.instaseg-req"
say "Label Studio $("$LS_VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("label-studio"))') installed in $(( $(date +%s) - start )) s"
