from glob import glob

from setuptools import setup

PACKAGE = "robotrl_bringup"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=[PACKAGE],
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    description="Launch files and graphs for robotrl's ROS 2 nodes",
    license="Apache-2.0",
    # One executable for every node kind: `robotrl_node twin|actor|learner|camera|arm|quad --ros-args ...`
    entry_points={"console_scripts": ["robotrl_node = robotrl.ros.nodes:main"]},
)
