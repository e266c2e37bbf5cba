"""Node graphs: described once in configs/graphs/<name>.yaml, started by ``robotrl launch <name>`` (no ROS
install: pip rclpy) or by ``ros2 launch robotrl_bringup sim.launch.py`` (ros_ws/), which read the same file.

    nodes:
      <node name>:
        kind: twin | camera | arm | quad | actor | learner | classifier | ui   (robotrl.ros.nodes)
        parameters: {...}                   that kind's parameters (robotrl.ros.params), mappings as YAML
        until_exit: true                    the graph stops when this node exits (e.g. an actor with N episodes)

Loading a graph validates every node's parameters (types, ranges, the task config, the learner config): a bad one
fails naming the file, the node and the key, before any process is spawned.

An overlay is a graph file that starts from another and changes some nodes, e.g. the hardware graph with the twin
in place of the cameras and the arm (configs/graphs/hardware_pick_twin.yaml):

    base: hardware_pick                     a graph name or a .yaml path (relative to this file); may be an overlay
    remove: [front_camera, arm]             base nodes dropped (each must exist)
    nodes:
      twin: {kind: twin, parameters: {...}} a node the base lacks (kind needed), or a base node of another kind: added
                                            as given, replacing that one
      actor:                                a base node without kind (or the same kind): edited, its parameters
        parameters: {learner: {...}}        merged key by key (mappings too), until_exit replaced when given

The result is validated as any graph, errors naming the overlay file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError

from robotrl.config import ConfigError, StrictModel, _deep_merge, config_path, describe_error, load_config, read_yaml
from robotrl.ros.params import NODE_PARAMS, NodeKind, NodeParams, to_ros


class NodeSpec(StrictModel):
    kind: NodeKind
    parameters: dict[str, Any] = {}
    until_exit: bool = False

    def validated(self) -> NodeParams:
        return NODE_PARAMS[self.kind].model_validate(self.parameters)

    def ros_parameters(self) -> dict[str, Any]:
        """The validated parameters as ROS parameter values (mappings as YAML text)."""
        return to_ros(self.validated())


class Graph(StrictModel):
    nodes: dict[str, NodeSpec]


def graph_path(name_or_path: str | Path) -> Path:
    return config_path(name_or_path, "graphs")


class OverlayNode(StrictModel):
    kind: NodeKind | None = None  # None: edit the base node of this name
    parameters: dict[str, Any] = {}
    until_exit: bool | None = None  # None: the base node's


class Overlay(StrictModel):
    base: str = Field(min_length=1)
    remove: list[str] = []
    nodes: dict[str, OverlayNode] = {}


def _overlaid(path: Path, depth: int = 0) -> Graph:
    """The graph of file ``path``, an overlay applied on its base (recursively); parameters not yet validated."""
    if "base" not in read_yaml(path):
        return load_config(Graph, path)
    if depth > 8:
        raise ConfigError(f"{path}: overlays nested more than 8 deep (a cycle of 'base'?)")
    overlay = load_config(Overlay, path)
    base_path = Path(overlay.base)
    base_path = path.parent / base_path if base_path.suffix in (".yaml", ".yml") and not base_path.is_absolute() else graph_path(overlay.base)
    try:
        nodes = dict(_overlaid(base_path, depth + 1).nodes)
    except ConfigError as exc:
        raise ConfigError(f"{path}: key 'base': {exc}") from None
    for name in overlay.remove:
        if name not in nodes:
            raise ConfigError(f"{path}: key 'remove': no node {name!r} in {base_path} (nodes: {', '.join(nodes)})")
        del nodes[name]
    for name, change in overlay.nodes.items():
        old = nodes.get(name)
        if old is not None and change.kind in (None, old.kind):
            nodes[name] = NodeSpec(kind=old.kind, parameters=_deep_merge(old.parameters, change.parameters),
                                   until_exit=old.until_exit if change.until_exit is None else change.until_exit)
        elif change.kind is None:
            raise ConfigError(f"{path}: key 'nodes.{name}': no node {name!r} in {base_path} to edit; a new node needs "
                              f"a 'kind' (nodes: {', '.join(nodes)})")
        else:
            nodes[name] = NodeSpec(kind=change.kind, parameters=change.parameters, until_exit=bool(change.until_exit))
    return Graph(nodes=nodes)


def load_graph(name_or_path: str | Path) -> Graph:
    """The graph (an overlay applied on its base), every node's parameters validated: errors name the file, the
    node and the key."""
    path = graph_path(name_or_path)
    graph = _overlaid(path)
    for name, spec in graph.nodes.items():
        try:
            spec.validated()
        except ValidationError as exc:
            raise ConfigError(f"{path}: node '{name}' ({spec.kind}): "
                              + "; ".join(describe_error(err, "parameters.") for err in exc.errors())) from None
    return graph


def launch_entries(graph: Graph) -> list[dict[str, Any]]:
    """What a ROS launch file needs per node (ros_ws/src/robotrl_bringup/launch/*.launch.py): the executable's
    arguments, the node name and its parameters."""
    return [{"name": name, "arguments": [spec.kind], "parameters": spec.ros_parameters()} for name, spec in graph.nodes.items()]


def node_command(name: str, spec: NodeSpec, params_file: Path) -> list[str]:
    """The command line of one node process, named as a launch file's Node action names it (``-r __node:=``;
    robotrl.ros.nodes gives that name to the process's main node only)."""
    return [sys.executable, "-m", "robotrl.ros.nodes", spec.kind, "--ros-args", "--params-file", str(params_file),
            "-r", f"__node:={name}"]


def params_yaml(name: str, spec: NodeSpec) -> str:
    return yaml.safe_dump({name: {"ros__parameters": spec.ros_parameters()}})


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
