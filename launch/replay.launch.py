"""Offline replay: play a rosbag2 into instaseg_node on simulated time, optionally with RViz.

    ros2 launch instaseg_ros replay.launch.py bag:=/data/run1 weights:=/path/model.pth rviz:=true
    ros2 launch instaseg_ros replay.launch.py bag:=synth.mcap image:=/camera/color/image_raw rate:=0.5

``ros2 bag play --clock`` drives /clock and the node runs with ``use_sim_time``; playback starts
``start_delay`` seconds after launch so that the node is active (model loaded) before the first frame.
Record the outputs alongside with ``record:=true`` (a bag under ``record_dir``).
Arguments: bag, image, rate, loop, start_delay, record, record_dir, plus those of instaseg.launch.py.

Before starting anything it checks that ``ros2 bag`` runs (ros-<distro>-rosbag2) and that the bag exists;
a problem ends the launch with one error line and exit code 1, and so does ``ros2 bag play`` failing, instead
of leaving the node waiting on /clock (instaseg_ros.ros.launch_checks).
"""

from __future__ import annotations

from launch.actions import (
    DeclareLaunchArgument,
    ExecuteProcess,
    IncludeLaunchDescription,
    OpaqueFunction,
    RegisterEventHandler,
    TimerAction,
)
from launch.event_handlers import OnProcessExit
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare

from instaseg_ros.ros.launch_checks import player_exit_problem, replay_problem
from launch import LaunchContext, LaunchDescription

PACKAGE = "instaseg_ros"
TRUE = ("true", "1", "yes", "on")
PASSED_ON = (
    "image",
    "namespace",
    "node_name",
    "params_file",
    "weights",
    "use_compressed",
    "rviz",
    "log_level",
)


def _on_player_exit(event, context: LaunchContext) -> None:
    problem = player_exit_problem(event.returncode, context.is_shutdown)
    if problem:
        raise RuntimeError(problem)


def _start(context: LaunchContext, node: IncludeLaunchDescription) -> list:
    """The node and the player, once ``ros2 bag`` and the bag are known to be there."""
    value = lambda name: LaunchConfiguration(name).perform(context)  # noqa: E731
    problem = replay_problem(value("bag"))
    if problem:
        raise RuntimeError(f"replay.launch.py: {problem}")
    play = ["ros2", "bag", "play", value("bag"), "--clock", "--rate", value("rate")]
    if value("loop").lower() in TRUE:
        play.append("--loop")
    player = ExecuteProcess(cmd=play, output="screen")
    actions = [
        node,
        RegisterEventHandler(OnProcessExit(target_action=player, on_exit=_on_player_exit)),
        TimerAction(period=float(value("start_delay")), actions=[player]),
    ]
    if value("record").lower() in TRUE:
        ns = "/".join(p for p in (value("namespace").strip("/"), value("node_name")) if p)
        topics = [f"/{ns}/{t}" for t in ("detections", "instance_mask", "semantic_mask", "label_info")]
        actions.append(
            ExecuteProcess(
                cmd=[
                    "ros2",
                    "bag",
                    "record",
                    "--use-sim-time",
                    "-o",
                    value("record_dir"),
                    *topics,
                    "/diagnostics",
                ],
                output="screen",
            )
        )
    return actions


def generate_launch_description() -> LaunchDescription:
    default_params = PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "yolact.yaml"])
    args = [
        DeclareLaunchArgument("bag", description="rosbag2 to play (directory or .mcap/.db3 file)"),
        DeclareLaunchArgument(
            "image", default_value="/camera/color/image_raw", description="image topic in the bag"
        ),
        DeclareLaunchArgument("rate", default_value="1.0", description="playback rate"),
        DeclareLaunchArgument("loop", default_value="false", description="loop the bag"),
        DeclareLaunchArgument("start_delay", default_value="5.0", description="seconds before playback"),
        DeclareLaunchArgument("record", default_value="false", description="record the node's outputs"),
        DeclareLaunchArgument("record_dir", default_value="instaseg_outputs", description="output bag"),
        DeclareLaunchArgument("namespace", default_value=""),
        DeclareLaunchArgument("node_name", default_value="instaseg_node"),
        DeclareLaunchArgument("params_file", default_value=default_params),
        DeclareLaunchArgument("weights", default_value=""),
        DeclareLaunchArgument("use_compressed", default_value="false"),
        DeclareLaunchArgument("rviz", default_value="false"),
        DeclareLaunchArgument("log_level", default_value="info"),
    ]
    node = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(
            PathJoinSubstitution([FindPackageShare(PACKAGE), "launch", "instaseg.launch.py"])
        ),
        launch_arguments=[(n, LaunchConfiguration(n)) for n in PASSED_ON] + [("use_sim_time", "true")],
    )
    return LaunchDescription([*args, OpaqueFunction(function=_start, args=[node])])
