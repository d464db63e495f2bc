"""instaseg_ros.runtime."""
