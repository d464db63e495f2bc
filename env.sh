# Source this file (bash/zsh) for the project's environment: .venv, the ROS 2 wheels' ament prefix and,
# where it was built, the vision_msgs stand-in. Tests, the demo and your shell all use it.
# On a robot with an apt-installed ROS 2, source /opt/ros/<distro>/setup.bash and your workspace instead.
case $- in *u*) _instaseg_nounset=1; set +u;; *) _instaseg_nounset=;; esac
_instaseg_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)"
if [ -f "$_instaseg_root/.venv/bin/activate" ]; then
  # shellcheck disable=SC1091
  . "$_instaseg_root/.venv/bin/activate"
fi
case ":${AMENT_PREFIX_PATH:-}:" in *":$_instaseg_root/.venv:"*) ;; *)
  export AMENT_PREFIX_PATH="$_instaseg_root/.venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}";; esac
if [ -f "$_instaseg_root/.ros_ws/install/vision_msgs/share/vision_msgs/local_setup.sh" ]; then
  COLCON_CURRENT_PREFIX="$_instaseg_root/.ros_ws/install" \
    . "$_instaseg_root/.ros_ws/install/local_setup.sh"
fi
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
unset _instaseg_root
[ -n "$_instaseg_nounset" ] && set -u
unset _instaseg_nounset
