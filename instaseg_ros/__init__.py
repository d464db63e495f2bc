"""instaseg_ros: real-time instance segmentation for ROS 2 robots.

The package has a ROS-free core (``core``, ``models``, ``weights``, ``runtime``,
``data``, ``training``, ``evaluation``) and thin ROS edges (``ros``).
"""

__version__ = "0.1.0"
