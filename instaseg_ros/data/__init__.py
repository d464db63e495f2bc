"""instaseg_ros.data."""
