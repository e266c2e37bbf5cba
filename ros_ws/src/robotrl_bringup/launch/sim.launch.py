"""ros2 launch robotrl_bringup sim.launch.py [graph:=sim_pick]: a robotrl graph against the MuJoCo twin.

The graph (robotrl's configs/graphs/<name>.yaml, or a path) is the same file `robotrl launch <name>` starts
without ROS; this file only turns its nodes into launch_ros Node actions.
"""

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
    return LaunchDescription([
        DeclareLaunchArgument("graph", default_value="sim_pick", description="graph name in robotrl/configs/graphs or a .yaml path"),
        OpaqueFunction(function=nodes),
    ])
