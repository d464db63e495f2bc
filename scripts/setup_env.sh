#!/usr/bin/env bash
# One set-up step for a machine without a ROS install: creates .venv/ from the package registries only,
# builds the test-only vision_msgs stand-in where the real one is missing, and writes nothing else.
# Idempotent: a second run checks stamps and returns in seconds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
ROS_WS="$ROOT/.ros_ws"
PYTHON="${INSTASEG_PYTHON:-python3.11}"
say() { printf '[setup] %s\n' "$*"; }
pip_install() {  # quiet pip with its log kept; a failure prints the log's tail and stops
  local log="$ROOT/.venv/pip-install.log"
  "$VENV/bin/python" -m pip install --progress-bar off "$@" > "$log" 2>&1 \
    || { grep -v "is ignored" "$log" | tail -30; die "pip install $* failed (log: $log)"; }
}
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

command -v "$PYTHON" >/dev/null || die "$PYTHON not found: the ROS 2 Jazzy wheels need CPython 3.11 (set INSTASEG_PYTHON)"

# 1. the virtual environment and its packages, re-installed only when the requirement files change
req_hash=$(cat requirements/base.txt requirements/ros-jazzy.txt requirements/web.txt setup.py | sha256sum | cut -c1-16)
if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV" || die "could not create the virtual environment"
fi
if [ "$(cat "$VENV/.instaseg-req" 2>/dev/null)" != "$req_hash" ]; then
  say "installing Python packages (torch CUDA build, ROS 2 Jazzy wheels, tools): a few minutes the first time"
  pip_install --upgrade pip wheel "setuptools<80"
  pip_install -r requirements/base.txt -r requirements/ros-jazzy.txt -r requirements/web.txt
  pip_install --no-deps --no-build-isolation -e .
  "$VENV/bin/python" -m pip check >/dev/null || { "$VENV/bin/python" -m pip check; die "inconsistent packages"; }
  "$VENV/bin/python" -c "import torch, torchvision, rclpy, cv2, pycocotools, onnxruntime, rosbags, instaseg_ros" \
    || die "installed packages do not import (see above)"
  echo "$req_hash" > "$VENV/.instaseg-req"
else
  say "Python packages up to date ($VENV)"
fi

# 1b. the web tests: Debian's chromium + chromium-driver (apt, as root only; the tests name what is
# missing elsewhere) and Label Studio in its own environment (.venv/labelstudio)
if ! command -v chromedriver >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  say "installing Debian's chromium and chromium-driver (browser tests of instaseg web)"
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      chromium chromium-driver; } > "$VENV/apt-chromium.log" 2>&1 \
    || { tail -20 "$VENV/apt-chromium.log"; die "apt-get install chromium chromium-driver failed"; }
fi
bash "$ROOT/scripts/setup_label_studio.sh"

# 2. vision_msgs: use the distro's where it exists, else build the stand-in from test/interfaces/
if "$VENV/bin/python" -c "import vision_msgs.msg" 2>/dev/null; then
  say "vision_msgs importable: using the installed package"
else
  msg_hash=$(cat test/interfaces/vision_msgs/CMakeLists.txt test/interfaces/vision_msgs/package.xml \
    test/interfaces/vision_msgs/msg/*.msg | sha256sum | cut -c1-16)
  if [ "$(cat "$ROS_WS/.instaseg-msgs" 2>/dev/null)" != "$msg_hash" ] || [ ! -d "$ROS_WS/install/vision_msgs" ]; then
    say "building the vision_msgs stand-in with colcon into $ROS_WS"
    # The rosidl wheels' CMake files point at the manylinux build paths: link them to this machine's.
    py_inc=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
    np_inc=$("$VENV/bin/python" -c "import numpy; print(numpy.get_include())")
    for pair in "/opt/python/cp311-cp311/include/python3.11:$py_inc" \
                "/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include:$np_inc"; do
      link=${pair%%:*}; target=${pair#*:}
      if [ "$(readlink -f "$link" 2>/dev/null)" != "$(readlink -f "$target")" ]; then
        mkdir -p "$(dirname "$link")" 2>/dev/null && ln -sfn "$target" "$link" \
          || die "cannot create $link -> $target (needs write access to /opt/python; run as root once)"
      fi
    done
    # Incremental first (the .msg hash above covers added/changed files; the installed package is
    # replaced only at colcon's install step, so processes using it see a short gap, not a long one);
    # a failed incremental build is retried from scratch.
    build_msgs() (
      export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV" PATH="$VENV/bin:$PATH"
      "$VENV/bin/colcon" --log-base "$ROS_WS/log" build --base-paths test/interfaces/vision_msgs \
        --build-base "$ROS_WS/build" --install-base "$ROS_WS/install" \
        --cmake-args -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=OFF
    )
    build_msgs > "$ROS_WS.log" 2>&1 || { rm -rf "$ROS_WS/build" "$ROS_WS/install"; build_msgs > "$ROS_WS.log" 2>&1; } \
      || { tail -40 "$ROS_WS.log"; die "colcon build of vision_msgs failed (log: $ROS_WS.log)"; }
    echo "$msg_hash" > "$ROS_WS/.instaseg-msgs"
  else
    say "vision_msgs stand-in up to date ($ROS_WS)"
  fi
fi

# 3. check the whole environment the way the tests and the demo will see it
# shellcheck disable=SC1091
. "$ROOT/env.sh"
python -c "import rclpy, vision_msgs.msg, sensor_msgs.msg, diagnostic_msgs.msg, lifecycle_msgs.msg" \
  || die "ROS Python packages do not import through env.sh"
say "ready: 'source env.sh' gives the same environment as the tests and the demo"
