"""The hardware graph (configs/graphs/hardware_pick.yaml) run for real with the twin in place of the cameras and the
arm (its overlay, hardware_pick_twin): every node its own process over DDS, the reward a classifier node's, the
operator's ready, labels and teleop on their topics, and no truth on any input of the actor or the learner."""

import os
import random
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(100, 200)))  # isolate from other runs on this machine

rclpy = pytest.importorskip("rclpy")  # the `ros` extra

from geometry_msgs.msg import Twist, Vector3  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from std_msgs.msg import Bool, Empty, Int64  # noqa: E402

from robotrl.config import ConfigError, config_path, read_yaml  # noqa: E402
from robotrl.data import EpisodeStore  # noqa: E402
from robotrl.data.store import source_code  # noqa: E402
from robotrl.reward_classifier import SuccessClassifier  # noqa: E402
from robotrl.ros import convert  # noqa: E402
from robotrl.ros.classifier_node import image_processor  # noqa: E402
from test_ros import exit_codes  # noqa: E402
from robotrl.ros.devices import COMMAND_QOS  # noqa: E402
from robotrl.ros.graph import load_graph, node_command, params_yaml  # noqa: E402
from robotrl.ros.operator import LABEL_TOPIC, READY_TOPIC  # noqa: E402
from robotrl.ros.ros_env import LATCHED_QOS  # noqa: E402
from robotrl.tasks import make_task  # noqa: E402

PICK = "robotrl/ArmPickCube-v0"
# The hardware graph's task, made cheap for CI: small images, 2 s episodes that a detected success does not end.
TASK = {"observation": {"state": ["ee_pos", "ee_vel", "gripper"], "cameras": ["front", "wrist"], "image_size": 32},
        "episode_seconds": 2.0, "terminate_on_success": False}


def save_classifier(path: Path, task_kwargs: dict, keys=("images/front", "images/wrist"), always: bool = True) -> Path:
    """A classifier of the task's camera images whose verdict is fixed (threshold below or above any probability):
    plumbing, not accuracy -- a reward of 1 on every step can only have come from it (the twin serves no cube pose,
    and a random policy lifts no cube)."""
    model = SuccessClassifier(image_processor(make_task(PICK, **task_kwargs)).space, list(keys))
    model.threshold = -1.0 if always else 2.0
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return path


def test_the_hardware_graph_is_deployable_and_its_twin_overlay_swaps_only_the_devices(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    hardware = read_yaml(config_path("hardware_pick", "graphs"))["nodes"]
    with pytest.raises(ConfigError, match="node 'classifier'.*parameters.model.*no classifier file runs/pick_classifier.pt"):
        load_graph("hardware_pick")  # before the classifier is trained: the file is named
    save_classifier(tmp_path / "runs/pick_classifier.pt", hardware["classifier"]["parameters"]["task_kwargs"])
    graph, twin = load_graph("hardware_pick").nodes, load_graph("hardware_pick_twin").nodes
    assert {n: s.kind for n, s in graph.items()} == {"front_camera": "camera", "wrist_camera": "camera", "arm": "arm",
                                                       "classifier": "classifier", "actor": "actor", "learner": "learner",
                                                       "ui": "ui"}
    actor = graph["actor"].validated()
    pixels = read_yaml(config_path("arm_pick_cube_pixels", "tasks"))
    assert actor.task_kwargs["observation"] == pixels["observation"] == graph["classifier"].validated().task_kwargs["observation"]
    task = make_task(actor.task, **actor.task_kwargs)
    assert task.deployable and actor.judge == "/classifier/judgement" and actor.policy == "learn" and actor.wait_ready
    assert actor.twin == ""  # episodes begin with /arm/home, served by the arm node (and by the twin's)
    # The overlay: the devices out, the twin in as a bare robot (no object pose), the rest exactly the hardware's.
    assert set(twin) == {"twin", "classifier", "actor", "learner", "ui"}
    assert all(twin[n] == graph[n] for n in ("classifier", "learner"))
    # The actor's and the page's too, but for the episodes' provenance (the twin's, though its topics are a bare
    # robot's) and the scene: on "Scene ready" the twin sets it, where on the robot a person has.
    assert twin["actor"].validated().in_twin and not actor.in_twin  # on the robot (twin ""): stored as the robot's
    assert twin["ui"].validated().scene_reset == "/twin/reset" and not graph["ui"].validated().scene_reset
    for n in ("actor", "ui"):
        differ = {k for k in twin[n].parameters.keys() | graph[n].parameters.keys()
                  if twin[n].parameters.get(k) != graph[n].parameters.get(k)}
        assert differ == {"actor": {"in_twin"}, "ui": {"scene_reset"}}[n], (n, differ)
    t = twin["twin"].validated()
    assert not t.objects and t.task_kwargs["observation"]["cameras"] == ["front", "wrist"]
    # The topics the twin serves are the hardware nodes' (the node's name is the topic's namespace).
    assert {f"{graph[n].validated().camera}_camera" for n in ("front_camera", "wrist_camera")} == {"front_camera", "wrist_camera"}
    assert {"front_camera", "wrist_camera", "arm"} <= set(graph)


def test_an_overlay_that_names_a_missing_node_or_a_bad_key_fails_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    save_classifier(tmp_path / "runs/pick_classifier.pt", TASK | {"observation": {**TASK["observation"], "image_size": 96}})
    base = config_path("hardware_pick", "graphs")
    cases = {"remove: [gripper_camera]": "key 'remove': no node 'gripper_camera'",
             "nodes: {critic: {parameters: {a: 1}}}": "key 'nodes.critic': no node 'critic'",
             "nodes: {actor: {parameters: {polcy: learn}}}": "node 'actor' (actor): key 'parameters.polcy'",
             "nodes: {classifier: {parameters: {model: runs/none.pt}}}": "no classifier file runs/none.pt",
             "nodes: {classifier: {parameters: {task_kwargs: {observation: {cameras: [front]}}}}}": "reads 'images/wrist'"}
    for change, error in cases.items():
        overlay = tmp_path / "overlay.yaml"
        overlay.write_text(f"base: {base}\n{change}\n")
        with pytest.raises(ConfigError) as exc:
            load_graph(overlay)
        assert str(overlay) in str(exc.value) and error in str(exc.value), (change, str(exc.value))


def test_an_operator_label_converts_and_a_truth_or_classifier_source_is_refused():
    msg = convert.label_msg(-1, True, "operator:alice", 1_796_111_441_003_955_007)
    assert convert.label(msg) == convert.OperatorLabel(-1, True, "operator:alice", 1_796_111_441_003_955_007)
    assert convert.label(convert.label_msg(3, False, "")).source == "operator"  # "" means the operator
    for bad, field in ((convert.label_msg(0, True, "truth"), "source"), (convert.label_msg(0, True, "classifier"), "source"),
                       (convert.label_msg(-2, True), "episode")):
        with pytest.raises(ValueError, match=f"Label.{field}"):
            convert.label(bad)


def _start_logged(name: str, spec, tmp: Path) -> subprocess.Popen:
    params = tmp / f"{name}.yaml"
    params.write_text(params_yaml(name, spec))
    with (tmp / f"{name}.log").open("w") as out:  # a file, not a pipe: nobody reads it while the graph runs
        return subprocess.Popen(node_command(name, spec, params), cwd=tmp, stdout=out, stderr=subprocess.STDOUT)


@pytest.mark.slow
def test_the_hardware_graph_learns_in_the_twin_from_the_classifier_with_an_operator(tmp_path, monkeypatch):
    """hardware_pick_twin as separate processes over DDS. The actor waits for the operator's ready before each
    episode (none starts until it comes); the classifier node's judgements (source classifier) are the rewards the
    actor records and the learner learns from; weight versions advance and reach the actor; a /teleop takeover is
    flagged in the store with its source; live labels land as the episode's operator labels; and no subscription of
    the actor or the learner reads an object pose or anything of the twin's."""
    save_classifier(tmp_path / "runs/pick_classifier.pt", TASK)
    # CI's sizes as an overlay of the overlay: smaller images, shorter episodes, a tiny learner.
    # The operator's page has its own test (tests/test_ui_ros.py); here the operator is this test, on the topics.
    (tmp_path / "ci.yaml").write_text(yaml.safe_dump({"base": str(config_path("hardware_pick_twin", "graphs")), "remove": ["ui"], "nodes": {
        "twin": {"parameters": {"task_kwargs": TASK, "camera_hz": 20.0}},
        "classifier": {"parameters": {"task_kwargs": TASK, "rate_hz": 20.0}},  # every frame: the actor's judgement comes sooner
        "actor": {"parameters": {"task_kwargs": TASK, "max_obs_age": 1.0, "random_steps": 10,  # tolerant of a loaded CI machine
                                 "learner": {"batch_size": 16, "hidden": 32, "cnn_channels": 8, "image_features": 16,
                                             "num_threads": 1, "device": "cpu"}}}}}))
    monkeypatch.chdir(tmp_path)  # the graph's paths are relative to where it is launched
    graph = load_graph(tmp_path / "ci.yaml")
    assert graph.nodes["actor"].validated().task_kwargs["observation"]["image_size"] == 32
    run = tmp_path / graph.nodes["actor"].parameters["run"]

    rclpy.init()
    executor = SingleThreadedExecutor()
    probe = rclpy.create_node("operator_probe")
    got: dict[str, list] = {"classifier": [], "actor": [], "waiting": [], "acted_with": [], "published": []}
    probe.create_subscription(convert.Judgement, "/classifier/judgement", lambda m: got["classifier"].append(convert.judgement(m)), 50)
    probe.create_subscription(convert.Judgement, "/actor/judgement", lambda m: got["actor"].append(convert.judgement(m)), 50)
    probe.create_subscription(Bool, "/actor/waiting_ready", lambda m: got["waiting"].append(m.data), LATCHED_QOS)
    probe.create_subscription(Int64, "/actor/weights_version", lambda m: got["acted_with"].append(m.data), 10)
    probe.create_subscription(Int64, "/learner/weights_version", lambda m: got["published"].append(m.data), 10)
    ready = probe.create_publisher(Empty, READY_TOPIC, COMMAND_QOS)
    label = probe.create_publisher(convert.Label, LABEL_TOPIC, COMMAND_QOS)
    active = probe.create_publisher(Bool, "/teleop/active", COMMAND_QOS)
    twist = probe.create_publisher(Twist, "/teleop/twist", COMMAND_QOS)
    executor.add_node(probe)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    procs = {name: _start_logged(name, spec, tmp_path) for name, spec in graph.nodes.items()}

    def alive() -> None:
        dead = {n: (tmp_path / f"{n}.log").read_text()[-3000:] for n, p in procs.items() if p.poll() is not None}
        assert not dead, f"graph node(s) exited: {dead}"

    def wait_for(cond, timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while not cond():
            alive()
            assert time.monotonic() < end, f"timed out waiting for {what}; logs: " + str(
                {n: (tmp_path / f"{n}.log").read_text()[-1500:] for n in procs})
            time.sleep(0.02)

    def waits() -> int:  # how many times the actor has begun waiting for the operator
        return sum(got["waiting"])

    def episode(teleop: bool = False, labelled: bool | None = None) -> None:
        """The operator: ready, then (optionally) a takeover and a live label of this episode; back when the actor
        waits again."""
        n = waits()
        end = time.monotonic() + 20
        while got["waiting"][-1]:  # pressed again until taken, as a person would (a message may be lost)
            assert time.monotonic() < end, "the actor did not take the ready"
            alive()
            ready.publish(Empty())
            pressed = time.monotonic()
            while got["waiting"][-1] and time.monotonic() - pressed < 0.5:
                time.sleep(0.02)
        if teleop:
            wait_for(lambda: got["actor"], 20, "the first step")
            for _ in range(6):  # ~0.6 s of the human's deadman + motion: several control steps
                active.publish(Bool(data=True))
                twist.publish(Twist(linear=Vector3(z=1.0)))
                time.sleep(0.1)
        if labelled is not None:
            label.publish(convert.label_msg(-1, labelled, "operator:alice"))  # -1 during an episode: this one
            ready.publish(Empty())  # too early: a ready sent during an episode does not start the next one
        wait_for(lambda: waits() > n, 40, "the episode's end and the actor waiting again")

    try:
        wait_for(lambda: waits() >= 1, 90, "the actor waiting for the operator's first ready")
        store = EpisodeStore(run / "episodes.zarr")
        time.sleep(1.5)  # no episode starts without the ready: no step judged, nothing stored
        assert got["actor"] == [] and store.n_episodes == 0
        assert got["classifier"] and {j.source for j in got["classifier"]} == {"classifier"}  # it judges all along

        episode(teleop=True, labelled=True)
        store.refresh()
        assert store.n_episodes == 1
        stepped = len(got["actor"])
        label.publish(convert.label_msg(-1, False, "operator"))  # between episodes, -1: the last one stored
        time.sleep(1.5)  # the actor waits: no step, no episode
        assert len(got["actor"]) == stepped
        wait_for(lambda: {lab.source for lab in EpisodeStore(run / "episodes.zarr").labels(0)} == {"operator", "operator:alice"},
                 10, "both labels of episode 0 in the store")

        while not (got["acted_with"] and max(got["acted_with"]) >= 2):  # the actor has acted with learned weights
            assert len(got["acted_with"]) < 12, f"no learned weights reached the actor: {got['acted_with']}, learner {got['published']}"
            episode()

        store = EpisodeStore(run / "episodes.zarr")
        n = store.n_episodes
        assert n >= 2 and max(got["published"]) >= max(got["acted_with"]) >= 2
        first = store.episode(0)
        steps = slice(0, len(first["action"]) - 1)  # the last row is the final observation's padding
        assert first["intervention"][steps].any() and not first["intervention"][steps].all()
        assert set(first["intervention_source"][steps][first["intervention"][steps]]) == {source_code("teleop")}
        assert store.meta(0).source == "intervention" and all(m.twin for m in store.metas())  # the overlay's: twin
        labels = {lab.source: lab.success for lab in store.labels(0)}
        assert labels == {"operator:alice": True, "operator": False}
        assert store.judgements(0)["operator"].success is False and store.judgements(0)["operator:alice"].success is True
        assert all(not store.labels(i) for i in range(1, n))
        # The rewards recorded (the learner's) are the classifier's: 1 on every step of every episode; its verdicts
        # are kept as a classifier's (classifier/ columns), never as truth (a robot has none).
        for i in range(n):
            rows = store.episode(i)
            assert np.all(rows["reward"][:-1] == 1.0)
            judged = store.judgements(i)
            assert judged["classifier"].steps[1:].all() and np.isfinite(judged["classifier"].probability[1:]).all()
            assert not judged["truth"].steps.any() and not judged["truth"].success
        assert {j.source for j in got["actor"]} == {"classifier"} and {j.reward for j in got["actor"]} == {1.0}
        assert all(0.0 <= j.probability <= 1.0 for j in got["actor"] + got["classifier"])
        # Each step's judgement (stamped with the arm reading's stamp) is a classifier verdict on a frame of that moment.
        frames = np.array(sorted(j.stamp_ns for j in got["classifier"]))
        gaps = [np.abs(frames - j.stamp_ns).min() for j in got["actor"]]
        assert max(gaps) <= 0.1e9, max(gaps)  # within a control period (frames judged at 20 Hz; a busy CI drops some)
        # No input of the actor or the learner is truth: no object pose, nothing of the twin's node.
        inputs = {node: {t for t, _ in probe.get_subscriber_names_and_types_by_node(node, "/")}
                  for node in ("actor", "actor_observations", "learner")}
        assert "/classifier/judgement" in inputs["actor_observations"] and "/front_camera/image" in inputs["actor_observations"]
        truth = {t for topics in inputs.values() for t in topics if t.startswith(("/objects/", "/twin/"))}
        assert not truth, inputs
        assert not [t for t, _ in probe.get_topic_names_and_types() if t.startswith("/objects/")]  # none served at all
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        codes = exit_codes(procs)
        executor.shutdown()
        probe.destroy_node()
        rclpy.shutdown()
    logs = {n: (tmp_path / f"{n}.log").read_text() for n in procs}
    assert codes == dict.fromkeys(procs, 0), logs  # every node stops cleanly on SIGINT, the classifier too
    assert not {n: u for n, log in logs.items() for u in ("Traceback", "terminate called") if u in log}, logs
