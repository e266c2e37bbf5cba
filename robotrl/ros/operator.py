"""The operator's topics on a robot, beside teleop (robotrl.ros.teleop):

    /operator/ready  std_msgs/Empty               the scene is set: an actor with ``wait_ready`` starts the next
                                                  episode (it homes the arm, then waits for this; RosEnv ``ready``)
    /operator/label  robotrl_interfaces/Label     an episode's outcome, as the operator saw it: recorded into the
                                                  actor's episode store as a label of its source (never rewriting a
                                                  recorded row), which the reward classifier learns from
    /operator/hold   std_msgs/Bool (latched)      True: the robot is held (E-STOP, the operator's page lost, not yet
                                                  resumed): the actor stores the episode in progress as it stands and
                                                  steps no policy until False. The devices were stopped directly
                                                  (their ~/estop), not through the actor
    /operator/learning  std_msgs/Bool (latched)   False: the learner pauses its updates (it keeps ingesting)
"""

from __future__ import annotations

import queue

from rclpy.node import Node
from std_msgs.msg import Bool

from robotrl.data import EpisodeStore
from robotrl.ros import convert
from robotrl.ros.devices import COMMAND_QOS
from robotrl.ros.ros_env import LATCHED_QOS
from robotrl.runtime.actor import Actor, PendingLabels

READY_TOPIC = "/operator/ready"
LABEL_TOPIC = "/operator/label"
HOLD_TOPIC = "/operator/hold"  # hold and learning are latched (LATCHED_QOS): a node that starts late gets the state
LEARNING_TOPIC = "/operator/learning"


class OperatorFlag:
    """The last value of a latched std_msgs/Bool operator topic (``value``; ``default`` until one arrives)."""

    def __init__(self, node: Node, topic: str, default: bool):
        self.value = default
        node.create_subscription(Bool, topic, self._on_msg, LATCHED_QOS)

    def _on_msg(self, msg: Bool) -> None:
        self.value = bool(msg.data)


class OperatorLabels:
    """Labels from ``topic`` into the actor's store. Which episode a label means is decided when it arrives -- the
    actor may be in the next episode by the time it is written: an index as given; -1 during an episode, that
    episode, written once it is stored (and dropped with it if the robot loses its observations); -1 between
    episodes, the last one stored. Written by ``apply``, in the thread that writes the store (the actor's)."""

    def __init__(self, node: Node, store: EpisodeStore, actor: Actor | None = None, topic: str = LABEL_TOPIC):
        """``actor``: the actor writing ``store``; may be set later (``self.actor``): its first reset already waits
        for the operator, whose labels then mean the store's last episode."""
        self.node, self.actor, self.store, self.topic = node, actor, store, topic
        self._arrived: queue.SimpleQueue = queue.SimpleQueue()  # (("index" | "episode", n), label)
        self._pending = PendingLabels()  # labels of an episode still in progress
        self.written: list[tuple[int, convert.OperatorLabel]] = []  # (store index, label), oldest first
        node.create_subscription(convert.Label, topic, self._on_label, COMMAND_QOS)

    def _on_label(self, msg) -> None:  # the executor's thread: decide the target now, write in apply()
        try:
            label = convert.label(msg)
        except ValueError as exc:
            self.node.get_logger().error(f"{self.topic}: label ignored: {exc}")
            return
        actor = self.actor
        number = actor.episodes if actor else 0  # read before `recording`: the actor ends an episode, then counts it
        if label.episode >= 0:
            target = ("index", label.episode)
        elif actor and actor.recording:
            target = ("episode", number)  # the actor's number of the episode in progress
        else:
            target = ("index", actor.last_stored if actor else self.store.n_episodes - 1)
        self._arrived.put((target, label))

    def dropped(self) -> None:
        """The episode in progress was dropped (never stored): so are its labels."""
        assert self.actor is not None
        lost = self._pending.discard(self.actor.episodes)
        if lost:
            self.node.get_logger().warning(f"{self.topic}: {lost} label(s) of the dropped episode discarded")

    def apply(self) -> None:
        """Write every label whose episode is stored; keep those of the episode in progress."""
        while True:
            try:
                (kind, n), label = self._arrived.get_nowait()
            except queue.Empty:
                break
            if kind == "index":
                self._write(n, label)
            else:
                self._pending.add(n, label)
        if self.actor is None:
            return
        for index, label in self._pending.take_stored(self.actor):
            self._write(index, label)

    def _write(self, index: int, label: convert.OperatorLabel) -> None:
        if index < 0 or index >= self.store.n_episodes:
            self.node.get_logger().error(f"{self.topic}: label of episode {label.episode} ignored: the store "
                                         f"{self.store.path} has {self.store.n_episodes} episode(s)")
            return
        self.store.add_label(index, success=label.success, source=label.source)
        self.written.append((index, label))
        self.node.get_logger().info(f"episode {index} labelled {'success' if label.success else 'failure'} by {label.source}")
