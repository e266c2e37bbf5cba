"""robotrl's ROS 2 bringup: launch files and the hardware graph. The nodes themselves live in robotrl.ros."""
