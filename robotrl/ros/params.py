"""Node parameters: one strict config model per node kind, the same validation wherever a graph starts.

A graph file (configs/graphs/*.yaml) is validated whole when it is loaded -- by ``robotrl launch`` and by the ROS
launch files, before any node process is spawned -- and each node process validates its parameters again with the
same model (a node started by hand with ``--ros-args -p`` gets the same errors). Mappings and lists (``task_kwargs``,
``learner``, ``joint_names``) are YAML in the graph; since ROS parameters have no dict type they travel to the
process as YAML text in a string parameter (:func:`to_ros` / :func:`from_ros`). No rclpy here: validating a graph
needs no ROS.
"""

from __future__ import annotations

from typing import Any, Literal

import yaml
from pydantic import Field, ValidationInfo, field_validator, model_validator

from robotrl.config import StrictModel


class NodeParams(StrictModel):
    """Base of every node kind's parameters."""


class _TaskParams(NodeParams):
    task: str = "robotrl/ArmPickCube-v0"
    task_kwargs: dict[str, Any] = {}  # task config overrides (configs/tasks keys), as for gym.make

    @field_validator("task_kwargs")
    @classmethod
    def _task_validates(cls, kwargs: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        from robotrl.tasks import make_task

        if "task" in info.data:  # else the task id itself failed, and says so
            make_task(info.data["task"], **kwargs)  # a bad task id or config key fails here, naming it
        return kwargs


class TwinParams(_TaskParams):
    speed: float = Field(1.0, ge=0)  # sim seconds per wall second; 0: as fast as the CPU allows
    seed: int = 0
    rate_hz: float = Field(100.0, gt=0)  # state topics per sim second
    camera_hz: float = Field(10.0, gt=0)
    objects: bool = True  # publish the tracked objects' true poses (motion capture); false: only what a bare robot serves


class ActorParams(_TaskParams):
    policy: str = "scripted"  # scripted | learn | a run folder
    episodes: int = Field(0, ge=0)  # 0: until stopped
    store: str = ""  # episode store path (default: <run>/episodes.zarr)
    run: str = ""  # the learner's run folder (policy "learn")
    algo: str = "sac"  # the learner (configs/learners/<algo>.yaml) with policy "learn"
    learner: dict[str, Any] = {}  # overrides of that learner config
    demos: str = ""
    seed: int = 0
    random_steps: int = Field(0, ge=0)
    twin: str = "/twin"  # the twin node ("" on hardware)
    in_twin: bool = False  # the devices are the twin though ``twin`` is "" (stored with each episode; set ``twin``: twin)
    judge: str = ""  # a robotrl_interfaces/Judgement topic (a reward classifier's); "": the task judges from tracked objects
    max_obs_age: float = Field(0.0, ge=0)  # s; 0: 1.5 control periods
    teleop: bool = False  # listen to a human on /teleop/command and /teleop/* (robotrl.ros.teleop) only where the graph says so
    checkpoint: Literal["best", "last"] = "best"
    wait_ready: bool = False  # on a robot: once the arm is home, wait for the operator's /operator/ready before each episode

    @model_validator(mode="after")
    def _consistent(self):
        if self.policy == "learn":
            from robotrl.learners import load_learner_config

            if not self.run:
                raise ValueError("policy 'learn' needs 'run' (the learner's run folder)")
            load_learner_config(self.algo, self.learner)
        if not (self.store or self.run):
            raise ValueError("set 'store' (an episode store path) or 'run'")
        return self


class ClassifierParams(_TaskParams):
    """A reward classifier judging the task's camera frames (robotrl.ros.classifier_node)."""

    model: str = Field(min_length=1)  # a classifier file from `robotrl train classifier`
    threshold: float = Field(-1.0, ge=-1.0, le=1.0)  # success when P >= this; -1: the file's calibrated threshold
    rate_hz: float = Field(0.0, ge=0)  # judgements per second of capture time; 0: the task's control rate

    @field_validator("model")
    @classmethod
    def _model_fits_the_task(cls, model: str, info: ValidationInfo) -> str:
        from pathlib import Path

        if not Path(model).is_file():
            raise ValueError(f"no classifier file {model} (from {Path.cwd()}); train one with `robotrl train classifier`")
        if "task_kwargs" in info.data:  # else the task failed, and says so
            from robotrl.ros.classifier_node import load_classifier

            load_classifier(model, info.data["task"], info.data["task_kwargs"])  # its inputs must be the task's cameras
        return model


class LearnerParams(NodeParams):
    run: str = Field(min_length=1)  # the actor's run folder
    wait_s: float = Field(120.0, gt=0)  # how long to wait for the actor's run.yaml and store


class CameraParams(NodeParams):
    driver: Literal["realsense", "opencv"] = "realsense"
    camera: str = "front"  # publishes /<camera>_camera/image
    serial: str = ""  # RealSense serial ("" with one camera)
    source: str = "0"  # OpenCV device index, file or stream URL
    width: int = Field(640, gt=0)
    height: int = Field(480, gt=0)
    fps: int = Field(30, gt=0)
    depth: bool = False


class ArmNodeParams(NodeParams):
    robot: str = "panda"  # configs/robots/<robot>.yaml: the workspace outside which targets are rejected
    interface: Literal["forward", "trajectory"] = "forward"
    controller: str = ""
    joint_names: list[str] = []  # [] : the controller's
    gripper_joint: str = "gripper"
    gripper_range: tuple[float, float] = (0.0, 1.0)  # joint position closed, open
    gripper_topic: str = "/gripper_controller/commands"
    rate_hz: float = Field(100.0, gt=0)


class QuadNodeParams(NodeParams):
    connection: str = "udpin:0.0.0.0:14540"
    flavour: Literal["px4", "ardupilot"] = "px4"
    robot: str = "crazyflie"  # configs/robots/<robot>.yaml: mass, thrust and the rates the node accepts
    rate_hz: float = Field(50.0, gt=0)


class UiParams(NodeParams):
    """The operator's page (robotrl.ros.ui_node); control needs ``token`` ("": a fresh one, logged at start)."""

    host: str = "127.0.0.1"  # remote operators: an SSH tunnel (README)
    port: int = Field(8765, ge=0, le=65535)
    token: str = ""
    devices: list[str] = ["/arm"]  # device nodes whose ~/estop and ~/rearm E-STOP calls
    cameras: list[str] = []  # image topics shown, e.g. /front_camera/image
    ee_pose: str = "/arm/ee_pose"
    judgement: str = ""  # a classifier's robotrl_interfaces/Judgement topic
    threshold: float = -1.0  # the classifier's threshold, drawn on its meter (< 0: 0.5)
    actor: str = "/actor"  # the actor node: its steps, its waiting for the scene, its weights version
    # A robotrl_interfaces/Reset service that "Scene ready" calls before the actor hears it: in the twin the twin
    # sets the scene the operator would (hardware_pick_twin: /twin/reset); "": none (on a robot a person sets it).
    scene_reset: str = ""
    robot: str = ""  # configs/robots/<robot>.yaml: the workspace box drawn on the page ("": none)
    run: str = ""  # the learner's run folder: curves and episodes in the learning view
    teleop_hz: float = Field(50.0, gt=0)
    spacemouse: bool = False  # a SpaceMouse on this host takes over too (its left button is the deadman)


NODE_PARAMS: dict[str, type[NodeParams]] = {
    "twin": TwinParams, "actor": ActorParams, "learner": LearnerParams, "camera": CameraParams, "arm": ArmNodeParams,
    "quad": QuadNodeParams, "classifier": ClassifierParams, "ui": UiParams,
}
NodeKind = Literal["twin", "camera", "arm", "quad", "actor", "learner", "classifier", "ui"]


def to_ros(params: NodeParams) -> dict[str, Any]:
    """ROS parameter values: scalars as they are, mappings and lists as YAML text."""
    return {k: yaml.safe_dump(v, default_flow_style=True).strip() if isinstance(v, (dict, list, tuple)) else v
            for k, v in params.model_dump().items()}


def from_ros(kind: str, values: dict[str, Any]) -> NodeParams:
    """A node's parameters from its ROS values (YAML text back into mappings and lists), validated."""
    model = NODE_PARAMS[kind]
    structured = {k for k, f in model.model_fields.items() if _is_structured(f.annotation)}
    parsed = {k: yaml.safe_load(v) if k in structured and isinstance(v, str) else v for k, v in values.items()}
    return model.model_validate(parsed)


def _is_structured(annotation: Any) -> bool:
    return getattr(annotation, "__origin__", annotation) in (dict, list, tuple)
