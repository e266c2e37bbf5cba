"""robotrl on ROS 2: device nodes, the twin as hardware, RosEnv, actor and learner nodes, graphs.

Importing this package points Fast DDS at configs/fastdds.xml (large shared-memory segments, so camera frames
are not dropped) unless FASTDDS_DEFAULT_PROFILES_FILE is already set; import it before ``rclpy.init``.
"""

import os

from robotrl.config import configs_dir

os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(configs_dir() / "fastdds.xml"))
