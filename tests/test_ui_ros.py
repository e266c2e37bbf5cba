"""The operator's page as a node of the hardware graph in the twin (hardware_pick_twin: every node its own process
over DDS), driven from a real headless Chromium: the cameras reach the page, scene ready starts an episode, a held
key is a takeover the actor flags, a success click lands as the episode's operator label, and E-STOP goes straight
to the arm's ~/estop (the arm holds and refuses commands until re-armed) while the actor stores its episode."""

import os
import random
import signal
import socket
import time

import numpy as np
import pytest
import yaml

os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(100, 200)))  # isolate from other runs on this machine

rclpy = pytest.importorskip("rclpy")  # the `ros` extra

from geometry_msgs.msg import PoseStamped  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from test_hardware_graph import TASK, _start_logged, save_classifier  # noqa: E402
from test_ros import exit_codes  # noqa: E402

from robotrl.config import config_path  # noqa: E402
from robotrl.data import EpisodeStore  # noqa: E402
from robotrl.data.store import source_name  # noqa: E402
from robotrl.ros import convert  # noqa: E402
from robotrl.ros.graph import load_graph  # noqa: E402
from robotrl.ui import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

TOKEN = "test-token-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_the_operator_page_runs_the_hardware_graph_in_the_twin(tmp_path, monkeypatch):
    from playwright.sync_api import sync_playwright

    save_classifier(tmp_path / "runs/pick_classifier.pt", TASK, always=False)  # episodes run to their time limit
    port = free_port()
    (tmp_path / "ci.yaml").write_text(yaml.safe_dump({"base": str(config_path("hardware_pick_twin", "graphs")), "nodes": {
        "twin": {"parameters": {"task_kwargs": TASK | {"episode_seconds": 6.0}, "camera_hz": 10.0}},
        "classifier": {"parameters": {"task_kwargs": TASK | {"episode_seconds": 6.0}, "rate_hz": 20.0}},
        # The learner's fresh policy (its learner node is left out: this test is about the operator, not learning).
        "actor": {"parameters": {"task_kwargs": TASK | {"episode_seconds": 6.0}, "max_obs_age": 1.0, "run": "runs/ui_ros",
                                 "learner": {"batch_size": 16, "hidden": 32, "cnn_channels": 8, "image_features": 16,
                                             "num_threads": 1, "device": "cpu"}}},
        "ui": {"parameters": {"port": port, "token": TOKEN, "run": ""}}}, "remove": ["learner"]}))
    monkeypatch.chdir(tmp_path)
    graph = load_graph(tmp_path / "ci.yaml")

    rclpy.init()
    executor = SingleThreadedExecutor()
    probe = rclpy.create_node("ui_probe")
    poses: list[np.ndarray] = []
    probe.create_subscription(PoseStamped, "/arm/ee_pose", lambda m: poses.append(convert.pose_arrays(m)[0]),
                              qos_profile_sensor_data)
    executor.add_node(probe)
    procs = {name: _start_logged(name, spec, tmp_path) for name, spec in graph.nodes.items()}

    page = None

    def seen() -> str:
        return "" if page is None else page.inner_text("header") + " | " + page.inner_text("#banner")

    def logs() -> str:
        return str({n: (tmp_path / f"{n}.log").read_text()[-1500:] for n in procs})

    def wait_for(cond, timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while not cond():
            executor.spin_once(timeout_sec=0.02)
            dead = [n for n, p in procs.items() if p.poll() is not None]
            assert not dead, f"graph node(s) {dead} exited: {logs()}"
            assert time.monotonic() < end, f"timed out waiting for {what}; logs: {logs()}; page: {seen()}"

    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.on("pageerror", lambda exc: pytest.fail(f"page error: {exc}"))
            wait_for(lambda: _serving(port), 90, "the ui node's server")
            page.goto(f"http://127.0.0.1:{port}/#token={TOKEN}")
            wait_for(lambda: "in control" in page.inner_text("#role"), 60, "control")
            wait_for(lambda: page.locator(".cam").count() == 2, 90, "both cameras on the page")
            page.click("#resume")  # the page starts held; resume releases /operator/hold
            store_path = tmp_path / "runs/ui_ros/episodes.zarr"
            wait_for(store_path.exists, 60, "the actor's store")
            wait_for(lambda: "waiting for the scene" in page.inner_text("#banner"), 60, "the actor to wait for the scene")
            page.click("#ready")  # the actor homed the arm and waits for the scene
            wait_for(lambda: "step 0" not in page.inner_text("#episode"), 30, "the episode's first steps")
            page.keyboard.down("KeyR")  # +z: the scripted expert would go down to the cube
            for _ in range(30):
                executor.spin_once(timeout_sec=0.05)
            # The actor's ~/step reaches the page: the policy's action beside the executed one, the intervention rate.
            wait_for(lambda: page.locator("#actions .bar").count() == 4, 10, "the actions on the page")
            wait_for(lambda: page.inner_text("#irate") != "0 %", 10, "the intervention rate on the page")
            page.click("#success")
            page.keyboard.up("KeyR")
            page.click("#estop")
            wait_for(lambda: "E-STOP latched" in page.inner_text("#banner"), 10, "the latched banner")
            n = len(poses)
            wait_for(lambda: len(poses) > n + 60, 30, "arm poses after E-STOP")
            held = np.array(poses[n + 20:])  # from ~0.2 s after: the arm holds where it stopped
            assert np.ptp(held, axis=0).max() < 0.003, np.ptp(held, axis=0)
            store = EpisodeStore(store_path)
            wait_for(lambda: store.refresh() or store.n_episodes >= 1, 30, "the held episode stored")
            rows = store.episode(0)
            took = rows["intervention"][:-1].astype(bool)
            assert took.sum() >= 3 and {source_name(c) for c in rows["intervention_source"][:-1][took]} == {"keyboard"}
            # The command's age, over /teleop/command's stamp: the page's input time on the ui node's ROS clock.
            ages = rows["teleop/age_ms"][:-1]
            assert np.isfinite(ages[took]).all() and (ages[took] > -10).all() and np.isnan(ages[~took]).all(), ages
            wait_for(lambda: store.labels(0), 20, "the operator's label")
            assert [(lab.source, lab.success) for lab in store.labels(0)] == [("operator", True)]
            browser.close()
        arm_log = (tmp_path / "twin.log").read_text()
        assert "estop done" in arm_log
        assert "/twin/reset: episode 1; scene ready" in (tmp_path / "ui.log").read_text()  # the twin set the scene
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGINT)
        codes = exit_codes(procs)
        probe.destroy_node()
        rclpy.try_shutdown()
    assert all(code == 0 for code in codes.values()), (codes, logs())


def _serving(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
