"""instaseg_ros.weights."""
