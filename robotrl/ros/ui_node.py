"""The operator's page as a node of a launch graph: the same page and protocol as `robotrl ui` (robotrl.ui), bridged
to the robot's topics instead of an in-process actor.

    page input      -> /teleop/command (robotrl_interfaces/Teleop, robotrl.ros.teleop: the actor maps it to the task's
                       action and records the steps with the device and the command's age), sent at ``teleop_hz``
                       while a key is held, stamped with the page's input time, and once with active false at release
    E-STOP          -> each device's ~/estop (std_srvs/Trigger), called at once from this node, never through the
                       actor; and /operator/hold True (the actor stores the episode in progress and steps nothing)
    re-arm          -> each device's ~/rearm; resume -> /operator/hold False
    success/failure -> /operator/label (episode -1: the one in progress); scene ready -> /operator/ready (after
                       ``scene_reset``, a robotrl_interfaces/Reset service, answered: the twin setting the scene)
    pause learning  -> /operator/learning False (the learner node pauses its updates)
    cameras         <- ``cameras`` image topics (their arrival time is the frame's stamp: the page's age meter
                       then leaves out the camera-to-node transport)
    status          <- the end-effector pose, the classifier's judgement, and the actor's: each step (~/step: episode,
                       step, the policy's action beside the executed one, who acted, the intervention rate), whether
                       it waits for the scene (~/waiting_ready), its weights version

A lost page (no heartbeat for 0.5 s) holds the robot through /operator/hold, as in the twin session.
"""

from __future__ import annotations

import threading
import time

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import Bool, Empty, Int64
from std_srvs.srv import Trigger

from robotrl.ros import convert
from robotrl.ros.devices import COMMAND_QOS
from robotrl.ros.operator import HOLD_TOPIC, LABEL_TOPIC, LEARNING_TOPIC, READY_TOPIC
from robotrl.ros.ros_env import LATCHED_QOS
from robotrl.ui.console import Console
from robotrl.ui.frames import FrameHub


class UiBridge:
    """``devices``: the device nodes' names whose ~/estop and ~/rearm the page calls (e.g. ["/arm"])."""

    def __init__(self, node: Node, devices: list[str], cameras: list[str], ee_pose: str = "", judgement: str = "",
                 threshold: float | None = None, actor: str = "/actor", bounds: dict | None = None,
                 teleop_hz: float = 50.0, scene_reset: str = ""):
        self.node, self.threshold, self.bounds = node, threshold, bounds
        self.console = Console(on_estop=[self._estop], on_rearm=[self._rearm], learning=self._learning)
        self.frames = FrameHub()
        self._estops = [node.create_client(Trigger, f"{d}/estop") for d in devices]
        self._rearms = [node.create_client(Trigger, f"{d}/rearm") for d in devices]
        self._teleop = node.create_publisher(convert.Teleop, "/teleop/command", COMMAND_QOS)
        self._label = node.create_publisher(convert.Label, LABEL_TOPIC, COMMAND_QOS)
        self._ready = node.create_publisher(Empty, READY_TOPIC, COMMAND_QOS)
        self._scene_reset = node.create_client(convert.Reset, scene_reset) if scene_reset else None
        self._hold = node.create_publisher(Bool, HOLD_TOPIC, LATCHED_QOS)
        self._learn = node.create_publisher(Bool, LEARNING_TOPIC, LATCHED_QOS)
        self.status: dict = {}
        for topic in cameras:
            name = topic.strip("/").split("/")[0].removesuffix("_camera")
            node.create_subscription(Image, topic, lambda msg, n=name: self.frames.publish(n, convert.image_array(msg)),
                                     qos_profile_sensor_data)
        if ee_pose:
            node.create_subscription(PoseStamped, ee_pose, self._on_pose, qos_profile_sensor_data)
        if judgement:
            node.create_subscription(convert.Judgement, judgement, self._on_judgement, qos_profile_sensor_data)
        self.status.update(episode=0, step=0, episode_s=0.0, waiting_ready=False)
        self._first_step_at = 0.0  # monotonic time of this episode's first step
        if actor:
            node.create_subscription(Int64, f"{actor}/weights_version", lambda m: self.status.update(weights_version=m.data), 10)
            node.create_subscription(Bool, f"{actor}/waiting_ready", self._on_waiting, LATCHED_QOS)
            node.create_subscription(convert.ActorStep, f"{actor}/step", self._on_step, COMMAND_QOS)
        self.period = 1.0 / teleop_hz
        self._held: bool | None = None
        self._was_active: str | None = None  # the device in control at the last tick
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ui-bridge", daemon=True)
        self._thread.start()

    # -- the page's commands, at once -------------------------------------------------------------------------
    def _estop(self) -> None:
        for client in self._estops:
            client.call_async(Trigger.Request()).add_done_callback(self._logged(client.srv_name))
        self._publish_hold(True)

    def _rearm(self) -> None:
        for client in self._rearms:
            client.call_async(Trigger.Request()).add_done_callback(self._logged(client.srv_name))

    def _logged(self, service: str):
        def done(future) -> None:
            result = future.result()
            log = self.node.get_logger()
            (log.info if result.success else log.error)(f"{service}: {result.message}")
        return done

    def _scene_ready(self) -> None:
        """/operator/ready, once ``scene_reset`` (if any) has set the scene; a refused reset is logged, no ready."""
        if self._scene_reset is None:
            return self._ready.publish(Empty())

        def done(future) -> None:
            result = future.result()
            if result.success:
                self.node.get_logger().info(f"{self._scene_reset.srv_name}: {result.message}; scene ready")
                self._ready.publish(Empty())
            else:
                self.node.get_logger().error(f"{self._scene_reset.srv_name} failed: {result.message}; not ready")
        self._scene_reset.call_async(convert.Reset.Request(seed=-1)).add_done_callback(done)

    def _learning(self, on: bool) -> None:
        self._learn.publish(Bool(data=on))

    def _publish_hold(self, held: bool) -> None:
        self._held = held
        self._hold.publish(Bool(data=held))

    # -- topics in -----------------------------------------------------------------------------------------
    def _on_pose(self, msg: PoseStamped) -> None:
        pos, _ = convert.pose_arrays(msg)
        self.status["state"] = {"ee_pos": np.round(pos, 4).tolist()}

    def _on_waiting(self, msg: Bool) -> None:
        if msg.data and not self.status["waiting_ready"] and self.status["step"]:
            self.status.update(episode=self.status["episode"] + 1, step=0, episode_s=0.0)  # the next episode's turn
        self.status["waiting_ready"] = bool(msg.data)

    def _on_step(self, msg) -> None:
        now = time.monotonic()
        if msg.step == 1:
            self._first_step_at = now
        self.status.update(episode=msg.episode, step=msg.step, recording=True,
                           episode_s=now - self._first_step_at,  # stops while the actor steps nothing
                           policy_action=np.round(msg.policy_action, 3).tolist(),
                           executed_action=np.round(msg.executed_action, 3).tolist(),
                           intervention_rate=msg.intervention_rate)

    def _on_judgement(self, msg) -> None:
        j = convert.judgement(msg)
        if j.probability is not None:
            self.status["classifier"] = {"probability": j.probability,
                                         "threshold": self.threshold if self.threshold is not None else 0.5}

    # -- the bridge loop: teleop out at its rate, hold and events, the page's status ---------------------------
    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            c = self.console
            c.check(factor=4)  # the server checks at 1x; this is for a server that is gone
            if c.holding != self._held:
                self._publish_hold(c.holding)
                self.node.get_logger().warning(f"robot held: {c.hold_reason}") if c.holding else \
                    self.node.get_logger().info("robot released by the operator")
            events = c.take_events()
            for success in events.labels:
                self._label.publish(convert.label_msg(-1, success, "operator", time.time_ns()))
            if events.ready:
                self._scene_ready()
            current = c.current_input()
            device = current[0].device if current is not None else None
            now_ns = self.node.get_clock().now().nanoseconds
            if current is not None:
                msg, age_ms = current  # the page's input time, on this node's ROS clock
                self._teleop.publish(convert.teleop_msg(device, True, msg.linear, msg.yaw, msg.gripper,
                                                        now_ns - int(age_ms * 1e6)))
            elif self._was_active is not None:  # hand back now, not after the actor's deadman
                self._teleop.publish(convert.teleop_msg(self._was_active, False, [0, 0, 0], 0, None, now_ns))
            self._was_active = device
            c.robot = {**self.status, "holding": c.holding, "hold_reason": c.hold_reason, "estopped": c.estopped,
                       "learning_paused": c.learning_paused, "intervening": current is not None,
                       "device": device, "human": c.human(), "bounds": self.bounds}

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
