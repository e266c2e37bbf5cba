"""Node graphs: described once in configs/graphs/<name>.yaml, started by ``robotrl launch <name>`` (no ROS
install: pip rclpy) or by ``ros2 launch robotrl_bringup sim.launch.py`` (ros_ws/), which read the same file.

    nodes:
      <node name>:
        kind: twin | camera | arm | quad | actor | learner   (robotrl.ros.nodes)
        parameters: {...}                   ROS parameters of that kind
        until_exit: true                    the graph stops when this node exits (e.g. an actor with N episodes)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import model_validator

from robotrl.config import StrictModel, config_path, load_config
from robotrl.ros.nodes import PARAMETERS


class NodeSpec(StrictModel):
    kind: Literal["twin", "camera", "arm", "quad", "actor", "learner"]
    parameters: dict[str, Any] = {}
    until_exit: bool = False

    @model_validator(mode="after")
    def _known_parameters(self) -> "NodeSpec":
        unknown = sorted(set(self.parameters) - set(PARAMETERS[self.kind]))
        if unknown:
            raise ValueError(f"unknown parameter(s) {unknown} for a {self.kind} node; allowed: {sorted(PARAMETERS[self.kind])}")
        return self


class Graph(StrictModel):
    nodes: dict[str, NodeSpec]


def graph_path(name_or_path: str | Path) -> Path:
    return config_path(name_or_path, "graphs")


def load_graph(name_or_path: str | Path) -> Graph:
    return load_config(Graph, graph_path(name_or_path))


def launch_entries(graph: Graph) -> list[dict[str, Any]]:
    """What a ROS launch file needs per node (ros_ws/src/robotrl_bringup/launch/*.launch.py): the executable's
    arguments, the node name and its parameters."""
    return [{"name": name, "arguments": [spec.kind], "parameters": dict(spec.parameters)} for name, spec in graph.nodes.items()]


def node_command(name: str, spec: NodeSpec, params_file: Path) -> list[str]:
    """The command line of one node process, named as a launch file's Node action names it (``-r __node:=``;
    robotrl.ros.nodes gives that name to the process's main node only)."""
    return [sys.executable, "-m", "robotrl.ros.nodes", spec.kind, "--ros-args", "--params-file", str(params_file),
            "-r", f"__node:={name}"]


def params_yaml(name: str, spec: NodeSpec) -> str:
    return yaml.safe_dump({name: {"ros__parameters": spec.parameters}})


def launch(graph: Graph, timeout: float | None = None, env: dict[str, str] | None = None) -> int:
    """Start every node as its own process; stop them all when an ``until_exit`` node exits, on Ctrl-C, or after
    ``timeout`` seconds. Any other node that exits is reported and the rest run on. Returns the exit code of the first ``until_exit`` node (0 if none)."""
    procs: dict[str, subprocess.Popen] = {}
    with tempfile.TemporaryDirectory(prefix="robotrl-graph-") as tmp:
        try:
            for name, spec in graph.nodes.items():
                params = Path(tmp) / f"{name}.yaml"
                params.write_text(params_yaml(name, spec))
                procs[name] = subprocess.Popen(node_command(name, spec, params), env={**os.environ, **(env or {})})
            end = time.monotonic() + timeout if timeout else None
            watched = [n for n, s in graph.nodes.items() if s.until_exit]
            gone: set[str] = set()
            while True:
                for name, proc in procs.items():
                    code = proc.poll()
                    if code is None or name in gone:
                        continue
                    gone.add(name)
                    print(f"robotrl launch: node {name} exited with code {code}", flush=True)
                    if name in watched:
                        return code
                    # Others may die without taking the graph down: an actor keeps acting (or holding) on its own.
                if end and time.monotonic() > end:
                    print(f"robotrl launch: stopping the graph after {timeout} s", flush=True)
                    return 0
                time.sleep(0.1)
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGINT)  # as ros2 launch stops its nodes (it escalates to SIGTERM)
            for name, proc in procs.items():
                try:
                    code = proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    code = proc.wait()
                if name not in gone and code != 0:  # a node that does not stop cleanly is a bug: say so
                    print(f"robotrl launch: node {name} exited with code {code} when stopped", flush=True)
