"""ros2 launch robotrl_bringup hardware.launch.py [graph:=<path>]: robotrl on the robot.

The default graph is this package's config/hardware_pick.yaml (= configs/graphs/hardware_pick.yaml: a RealSense in
front, a wrist camera, a ros2_control arm, a reward classifier, the actor acting for the learner, the operator's
ready and labels on /operator/*); copy and edit it for your cameras, controllers and paths. The same file runs
without a ROS install too: `robotrl launch hardware_pick`, and in the twin: `robotrl launch hardware_pick_twin`
(an overlay of it, robotrl.ros.graph).
"""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from robotrl.ros.graph import launch_entries, load_graph


def nodes(context):
    graph = load_graph(LaunchConfiguration("graph").perform(context))
    return [Node(package="robotrl_bringup", executable="robotrl_node", name=e["name"], arguments=e["arguments"],
                 parameters=[e["parameters"]], output="screen") for e in launch_entries(graph)]


def generate_launch_description():
    default = str(Path(get_package_share_directory("robotrl_bringup")) / "config" / "hardware_pick.yaml")
    return LaunchDescription([
        DeclareLaunchArgument("graph", default_value=default, description="a robotrl graph .yaml"),
        OpaqueFunction(function=nodes),
    ])
