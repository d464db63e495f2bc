"""instaseg_ros.evaluation."""
