"""TopicReader: subscriptions read by the thread that needs their messages, not by an executor.

An rclpy executor spends ~300 us of Python per wake on these CPUs (it rebuilds its wait set from every entity
of every node), wakes about once per message, and then hands the message to the waiting thread through the
GIL. The actor needs five messages a control tick (joint_states, ee_pose, ee_twist, an object pose, the task
judgement), so that was most of its reading-to-observation time. A TopicReader keeps its subscriptions on a node
of its own that no executor spins, waits on just those with one rcl wait set, and in one wake takes every
message that is waiting, in the calling thread.
"""

from __future__ import annotations

import threading
from contextlib import ExitStack
from typing import Any, Callable

from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.node import Node
from rclpy.qos import QoSProfile


class TopicReader:
    def __init__(self, name: str, namespace: str = "", context=None):
        self.node = Node(name, namespace=namespace, context=context, start_parameter_services=False)
        self._subs: list = []
        self._destroyed = False
        self._lock = threading.Lock()  # one reader at a time: the stepping thread or the watchdog
        self._wake = self.node.create_guard_condition(lambda: None)  # wake(): ends a poll early

    def subscribe(self, msg_type: type, topic: str, on_message: Callable[[Any], None], qos: QoSProfile | int) -> None:
        with self._lock:
            self._subs.append(self.node.create_subscription(msg_type, topic, on_message, qos))

    def poll(self, timeout: float, blocking: bool = True) -> int:
        """Wait up to ``timeout`` seconds for messages, hand every waiting one to its callback in this thread,
        and return how many. With ``blocking=False``, returns 0 at once while another thread is polling (its
        poll delivers the messages)."""
        if not self._lock.acquire(blocking=blocking):
            return 0
        try:
            if self._destroyed:
                return 0
            with ExitStack() as handles:  # held while rcl uses them: nothing can destroy them meanwhile
                for entity in (*self._subs, self._wake):
                    handles.enter_context(entity.handle)
                wait_set = _rclpy.WaitSet(len(self._subs), 1, 0, 0, 0, 0, self.node.context.handle)
                for sub in self._subs:
                    wait_set.add_subscription(sub.handle)
                wait_set.add_guard_condition(self._wake.handle)
                wait_set.wait(max(0, int(timeout * 1e9)))  # releases the GIL
                ready = wait_set.get_ready_entities("subscription")
                n = 0
                for sub in self._subs:
                    if sub.handle.pointer in ready:
                        while (taken := sub.handle.take_message(sub.msg_type, sub.raw)) is not None:
                            sub.callback(taken[0])
                            n += 1
                return n
        finally:
            self._lock.release()

    def wake(self) -> None:
        """End the poll in progress now (another thread has news, such as a watchdog hold)."""
        self._wake.trigger()

    def destroy(self) -> None:
        with self._lock:
            self._destroyed = True
            self.node.destroy_node()
