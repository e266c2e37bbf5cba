"""The reward classifier as a node: a robot's judge of success, in place of the twin's truth.

It reads the camera topics the task's observation names (``/<camera>_camera/image``, as RosEnv does), turns each
frame into the policy's image through the same observation processor (the task's crop and resize), and publishes
the classifier's verdict as robotrl_interfaces/Judgement on ``~/judgement``: source "classifier", success when
P(success) >= the threshold, the reward the task's sparse reward (1.0 on success), stamped with the frame's capture
stamp. It judges at most once per control period of capture time, so an actor whose ``judge`` is this topic finds
a judgement beside each of its readings. With several cameras the first of the classifier's cameras sets the
stamp; the others' frames nearest to it, once one at or after it has arrived.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from robotrl.tasks import Task, make_task
from robotrl.tasks.observation import ObservationProcessor

if TYPE_CHECKING:
    from rclpy.node import Node

    from robotrl.ros.convert import StampedJudgement


def image_processor(task: Task) -> ObservationProcessor:
    """The task's observation processor for its cameras alone (a classifier node sees no proprioception)."""
    spec = task.config.observation.model_copy(update={"state": []})
    return ObservationProcessor(spec, task.state_dims())


def load_classifier(path: str | Path, task: str, task_kwargs: dict[str, Any] | None = None):
    """(the classifier of file ``path``, the task's image processor); ValueError naming the file and the key when the
    classifier reads an input the task's cameras do not give, or at another size."""
    from robotrl.reward_classifier import SuccessClassifier

    model = SuccessClassifier.load(path)
    processor = image_processor(make_task(task, **(task_kwargs or {})))
    for key in model.keys:
        if key not in processor.space.spaces:
            raise ValueError(f"classifier {path} reads {key!r}; a classifier node gives it the task's cameras only: "
                             f"{', '.join(processor.space.spaces) or 'none'} (task_kwargs observation.cameras)")
        want, got = processor.space[key].shape, model.obs_space[key].shape
        if want != got:
            raise ValueError(f"classifier {path} reads {key} at {list(got)}, the task's observation gives {list(want)} "
                             "(task_kwargs observation.image_size / frame_stack)")
    return model, processor


class ClassifierJudge:
    """Judges the camera frames read through its own TopicReader, in the thread that calls ``poll``."""

    def __init__(self, node: Node, task: str, task_kwargs: dict[str, Any] | None, model: str | Path,
                 threshold: float | None = None, rate_hz: float = 0.0):
        # rclpy here, not at the top: the parameter model (no ROS) validates a classifier file with load_classifier
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import Image

        from robotrl.ros import convert
        from robotrl.ros.devices import COMMAND_QOS
        from robotrl.ros.ros_env import _Stamped, camera_topic
        from robotrl.ros.topic_reader import TopicReader

        self._convert = convert
        self.model, self.processor = load_classifier(model, task, task_kwargs)
        if threshold is not None:
            self.model.threshold = float(threshold)
        self.cameras = [k.split("/", 1)[1] for k in self.model.keys]
        self.cameras.sort(key=self.processor.cameras.index)  # the task's first camera sets the stamp
        control_dt = make_task(task, **(task_kwargs or {})).control_dt
        self.period_ns = int(1e9 / rate_hz) if rate_hz else int(round(control_dt * 1e9))
        self.reader = TopicReader(f"{node.get_name()}_cameras", node.get_namespace(), node.context)
        self.frames = {c: _Stamped(8) for c in self.cameras}
        for c, buf in self.frames.items():
            self.reader.subscribe(Image, camera_topic(c), lambda m, b=buf: b.add(convert.from_time(m.header.stamp),
                                                                                 convert.image_array(m)), qos_profile_sensor_data)
        self._pub = node.create_publisher(convert.Judgement, "~/judgement", COMMAND_QOS)
        self.last_ns: int | None = None  # the stamp of the last frame judged
        self.judged = 0

    def poll(self, timeout: float) -> StampedJudgement | None:
        """Read the waiting frames (up to ``timeout`` s for one) and judge the newest, when its stamp is a control
        period (3/4 of one: camera clocks jitter) past the last judged; returns the judgement published, if any."""
        self.reader.poll(timeout)
        first = self.frames[self.cameras[0]]
        if not first.items:
            return None
        t = first.items[-1][0]
        if self.last_ns is not None and 0 <= t - self.last_ns < 0.75 * self.period_ns:
            return None  # judged already, or too soon (a clock that went back is judged at once)
        images = {}
        for c in self.cameras:
            got = self.frames[c].at(t)
            if got is None:  # that camera's frame of this moment is still on its way
                return None
            images[c] = got[1]
        p = self.model.probability(self.processor({}, images))
        success = p >= self.model.threshold
        convert = self._convert
        judgement = convert.StampedJudgement(t, float(success), success, False, {}, "classifier", p)  # sparse: 1 on success
        self._pub.publish(convert.judgement_msg(t, judgement.reward, success, False, {}, "classifier", p))
        self.last_ns, self.judged = t, self.judged + 1
        return judgement

    def close(self) -> None:
        self.reader.destroy()
