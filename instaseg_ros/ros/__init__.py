"""instaseg_ros.ros."""
