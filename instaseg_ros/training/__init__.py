"""instaseg_ros.training."""
