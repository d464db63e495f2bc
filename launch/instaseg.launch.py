"""Launch instaseg_node on a camera topic, optionally with RViz.

    ros2 launch instaseg_ros instaseg.launch.py image:=/camera/color/image_raw weights:=/path/model.pth
    ros2 launch instaseg_ros instaseg.launch.py use_compressed:=true rviz:=true \\
        params_file:=$(ros2 pkg prefix instaseg_ros)/share/instaseg_ros/config/yolo_fcn.yaml
    ros2 launch instaseg_ros instaseg.launch.py depth:=true rviz:=true \\
        depth_image:=/camera/camera/aligned_depth_to_color/image_raw \\
        depth_camera_info:=/camera/camera/aligned_depth_to_color/camera_info

Arguments: image, namespace, params_file, weights (overrides model.weights when non-empty),
use_compressed, depth (sets depth.enabled), depth_image, depth_camera_info (the registered depth
image and its CameraInfo), rviz, node_name, use_sim_time, log_level.

The node gets FASTRTPS_DEFAULT_PROFILES_FILE=<share>/config/fastdds_large_images.xml (Fast DDS's default
shared-memory segment is smaller than one camera image) unless the environment already names a profile;
set the same profile for the camera driver (see the README's robot section).
"""

from __future__ import annotations

import os
import tempfile

from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchContext, LaunchDescription

PACKAGE = "instaseg_ros"
TRUE = ("true", "1", "yes", "on")
PROFILE_VARS = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")


def dds_profile_env(share: str, environ: dict | None = None) -> dict[str, str]:
    """{FASTRTPS_DEFAULT_PROFILES_FILE: the package's large-image profile}, or {} when the environment
    already sets a Fast DDS profile file (the user's choice wins)."""
    environ = os.environ if environ is None else environ
    if any(environ.get(v) for v in PROFILE_VARS):
        return {}
    return {PROFILE_VARS[0]: os.path.join(share, "config", "fastdds_large_images.xml")}


def _resolve(context: LaunchContext, name: str) -> str:
    return LaunchConfiguration(name).perform(context)


def _rviz_config(share: str, node_ns: str, image: str, compressed: bool) -> str:
    """config/instaseg.rviz with its topics pointed at this node and camera (written to a temp file)."""
    with open(os.path.join(share, "config", "instaseg.rviz")) as f:
        text = f.read()
    for topic in ("debug_image", "markers", "points"):
        text = text.replace(f"/instaseg_node/{topic}", f"{node_ns}/{topic}")
    # rviz2 picks the image_transport plugin from a topic ending in its name
    text = text.replace("/camera/color/image_raw", image + ("/compressed" if compressed else ""))
    fd, path = tempfile.mkstemp(prefix="instaseg_", suffix=".rviz")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def _launch_setup(context: LaunchContext) -> list:
    share = FindPackageShare(PACKAGE).perform(context)
    namespace = _resolve(context, "namespace").strip("/")
    name = _resolve(context, "node_name")
    image = _resolve(context, "image")
    compressed = _resolve(context, "use_compressed").lower() in TRUE
    overrides: dict = {
        "input_transport": "compressed" if compressed else "raw",
        "use_sim_time": _resolve(context, "use_sim_time").lower() in TRUE,
    }
    if _resolve(context, "weights"):
        overrides["model.weights"] = _resolve(context, "weights")
    if _resolve(context, "depth").lower() in TRUE:
        overrides["depth.enabled"] = True
    actions = [
        Node(
            package=PACKAGE,
            executable="instaseg_node",
            name=name,
            namespace=namespace,
            parameters=[_resolve(context, "params_file"), overrides],
            remappings=[
                ("image", image),
                ("depth/image_raw", _resolve(context, "depth_image")),
                ("depth/camera_info", _resolve(context, "depth_camera_info")),
            ],
            arguments=["--ros-args", "--log-level", _resolve(context, "log_level")],
            output="screen",
            emulate_tty=True,
            additional_env=dds_profile_env(share),
        )
    ]
    if _resolve(context, "rviz").lower() in TRUE:
        node_ns = f"/{namespace}/{name}" if namespace else f"/{name}"
        actions.append(
            Node(
                package="rviz2",
                executable="rviz2",
                name="instaseg_rviz",
                arguments=["-d", _rviz_config(share, node_ns, image, compressed)],
                parameters=[{"use_sim_time": overrides["use_sim_time"]}],
                output="screen",
            )
        )
    return actions


def generate_launch_description() -> LaunchDescription:
    default_params = PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "yolact.yaml"])
    args = [
        ("image", "/camera/color/image_raw", "input image topic (compressed input: <image>/compressed)"),
        ("namespace", "", "namespace of the node"),
        ("node_name", "instaseg_node", "name of the node"),
        ("params_file", default_params, "ROS parameter file (config/yolact.yaml, config/yolo_fcn.yaml, ...)"),
        ("weights", "", "model checkpoint; overrides model.weights of the parameter file when set"),
        ("use_compressed", "false", "subscribe to sensor_msgs/CompressedImage on <image>/compressed"),
        ("depth", "false", "depth.enabled: 3D outputs from the registered depth image"),
        ("depth_image", "/camera/aligned_depth_to_color/image_raw", "depth image registered to <image>"),
        ("depth_camera_info", "/camera/aligned_depth_to_color/camera_info", "CameraInfo of depth_image"),
        ("rviz", "false", "start RViz with config/instaseg.rviz (images, 3D markers, points)"),
        ("use_sim_time", "false", "use /clock (bag replay)"),
        ("log_level", "info", "node log level"),
    ]
    return LaunchDescription(
        [DeclareLaunchArgument(n, default_value=d, description=desc) for n, d, desc in args]
        + [OpaqueFunction(function=_launch_setup)]
    )
