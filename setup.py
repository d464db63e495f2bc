"""ament_python package definition of instaseg_ros."""

import os
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "instaseg_ros"


def tree(src: str) -> list[tuple[str, list[str]]]:
    """data_files entries installing every file under ``src`` to share/instaseg_ros/<src>/..."""
    out: dict[str, list[str]] = {}
    for path in glob(os.path.join(src, "**", "*"), recursive=True):
        if os.path.isfile(path):
            out.setdefault(os.path.join("share", PACKAGE, os.path.dirname(path)), []).append(path)
    return sorted(out.items())


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        *tree("launch"),
        *tree("config"),
        *tree("models"),
    ],
    python_requires=">=3.10",
    # OpenCV comes from python3-opencv on robots and opencv-python(-headless) elsewhere; torch from pip.
    install_requires=["setuptools", "numpy", "scipy", "pyyaml"],
    extras_require={
        "torch": ["torch>=2.1", "torchvision>=0.16"],
        "train": ["albumentations>=1.4", "pycocotools>=2.0.7", "tensorboard", "matplotlib", "tqdm"],
        "eval": ["rosbags>=0.10", "pycocotools>=2.0.7", "motmetrics>=1.4", "matplotlib", "tqdm"],
        "onnx": ["onnx>=1.15", "onnxscript", "onnxruntime>=1.17"],
        # TensorRT 11 removed the FP16/INT8 builder flags and the calibrators the backend uses
        "tensorrt": ["tensorrt-cu13>=10.13,<11"],
        "test": ["pytest>=8", "pytest-timeout", "hypothesis", "ruff"],
    },
    zip_safe=True,
    maintainer="instaseg_ros developers",
    maintainer_email="dev@instaseg-ros.invalid",
    description="Real-time instance segmentation for ROS 2 robots",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "instaseg = instaseg_ros.cli:main",
            "instaseg_node = instaseg_ros.ros.node:main",
        ],
    },
)
