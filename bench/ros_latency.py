"""ROS 2 latency and image throughput: what running the actor through ROS costs against running it in-process.

1. Observation-to-command latency on robotrl/ArmPickCube-v0 (state observations) at 10 Hz and 50 Hz.
   ROS: this process serves the twin (TwinNode in real time, state topics at the control rate) plus a probe that
   marks the monotonic time each arm reading goes out and the time the /arm/target_pose command answering it
   (header stamp = the reading's stamp) comes back; a separate actor process runs the real RosEnv and the
   policy. In-process: the same policy on gym.make(task) paced at the same rate; latency runs from the moment
   the observation is in hand to the command reaching the arm (policy + wrappers + safety filter).
   Reported: p50 / p99 / max of both and the added latency (ROS - in-process) at p50 and p99.
   Goal: p99 added latency < 5 ms at 50 Hz.
2. Image throughput: two CameraNodes (640x480 rgb8, 30 fps, sensor-data QoS) in this process, fed by a camera
   that hands out pre-generated frames stamped with the monotonic clock (no rendering cost); a subscriber in
   another process counts frames per camera by stamp. Reported: published, received, dropped, fps and
   transport latency (receipt - capture stamp). Goal: 0 dropped.

Every process runs on one random ROS_DOMAIN_ID (100-200) so concurrent runs on the machine do not cross-talk.
Transport settings come from the environment (RMW_IMPLEMENTATION, FASTDDS_DEFAULT_PROFILES_FILE, ...): every
process inherits them, and the result records them.
Needs the ros extra (pip install -e '.[ros]'); the default policy (SAC's MLP actor) needs torch (the learn extra).

    python bench/ros_latency.py                 # writes out/bench/ros_latency.json (--update: bench/results/)
    python bench/ros_latency.py --seconds 5     # a quicker look
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import robotrl  # noqa: F401,I001  first: registers the envs and selects headless GL before mujoco loads

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from common import add_output_args, out_dir, write_result
from robotrl.interfaces import ArmCommand, CameraIntrinsics, Frame
from robotrl.policies import Policy

if TYPE_CHECKING:
    from rclpy.executors import Executor
    from rclpy.node import Node

TASK = "robotrl/ArmPickCube-v0"
RATES = (10.0, 50.0)
GOAL_ADDED_P99_MS = 5.0  # at 50 Hz
CAMERAS = ("front", "wrist")
WIDTH, HEIGHT, FPS = 640, 480, 30.0
FASTDDS_ENV = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTDDS_BUILTIN_TRANSPORTS")  # transport settings: recorded
WARMUP_S = 1.0  # discovery, first messages and caches: dropped from every measurement


# -- the policy (the same in both loops) ------------------------------------------------------------------------
def make_agent(policy: str, env: gym.Env) -> tuple[Policy, str]:
    """The policy and a line saying what it is. ``sac``: what a learning actor runs (untrained weights cost the
    same as trained ones); ``scripted``: the task's expert."""
    if policy == "scripted":
        from robotrl.tasks.experts import make_expert

        return make_expert(env), "scripted PickCube expert"
    from robotrl.learners.sac import SACAgent, load_sac_config

    cfg = load_sac_config()
    agent = SACAgent(env.observation_space, env.action_space, cfg)
    return agent.policy, f"SAC's GaussianPolicy.act (stochastic, untrained): {cfg.depth}x{cfg.hidden} MLP actor, device {agent.device}"


def warm(agent: Policy, env: gym.Env) -> None:
    """A steady actor has run its policy many times: keep first-call costs (allocations, dispatch) out."""
    obs, _ = env.reset(seed=0)
    agent.reset()
    for _ in range(50):
        agent.act(obs)


def begin(env: gym.Env, agent: Policy, seed: int) -> dict[str, np.ndarray]:
    obs, _ = env.reset(seed=seed)
    agent.reset()
    return obs


def stats(ms: list[float] | np.ndarray) -> dict[str, float]:
    a = np.asarray(ms, float)
    if not len(a):
        raise RuntimeError("no samples measured (see the messages above)")
    return {"n": len(a), "mean": a.mean(), "p50": np.percentile(a, 50), "p99": np.percentile(a, 99), "max": a.max()}


# -- child processes ----------------------------------------------------------------------------------------------
def spawn(role: str, *args: str, stdin: int | None = None) -> tuple[subprocess.Popen, Path]:
    """This script in another process (same ROS_DOMAIN_ID, inherited); stdout carries its JSON, stderr goes to
    a file shown if it fails."""
    log = Path(tempfile.mkstemp(prefix=f"ros_latency_{role}_", suffix=".log")[1])
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, __file__, "--role", role, *args], stdin=stdin, stdout=subprocess.PIPE,
                                stderr=err, text=True, env=os.environ.copy())
    return proc, log


def stop(proc: subprocess.Popen) -> None:
    """SIGINT (rclpy shuts down cleanly), then kill if it does not go."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def child_json(role: str, proc: subprocess.Popen, log: Path, timeout: float) -> dict:
    """The JSON line a child prints last; a clear error with its stderr when it fails."""
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(proc)
        raise RuntimeError(f"{role} process did not finish within {timeout:.0f} s; its log:\n{log.read_text()[-3000:]}")
    if proc.returncode != 0 or not out.strip():
        raise RuntimeError(f"{role} process failed (exit {proc.returncode}); its log:\n{log.read_text()[-3000:]}")
    log.unlink()
    return json.loads(out.strip().splitlines()[-1])


def shutdown(executor: Executor | None = None, *nodes: Node) -> None:
    """Executor, nodes, then the ROS context, explicitly: left to interpreter exit, the DDS participant may be
    destroyed after Fast DDS's own statics and the process aborts ("terminate called without an active exception")."""
    import rclpy

    if executor is not None:
        executor.shutdown()
    for node in nodes:
        node.destroy_node()
    context = rclpy.get_default_context()  # taken first: try_shutdown replaces the default context with a new one
    rclpy.try_shutdown(context=context)
    context.destroy()


def wait_for(cond: Callable[[], bool], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


# -- 1. observation -> command latency ---------------------------------------------------------------------------
def actor_role(rate: float, seconds: float, policy: str) -> None:
    """Child: the real RosEnv + policy against the twin the parent serves, for ``seconds``; prints a summary."""
    import rclpy
    from rclpy.node import Node

    from robotrl.ros.nodes import spin_in_background
    from robotrl.ros.ros_env import ObservationLost, RosEnv

    rclpy.init()
    node = Node("actor")
    executor = spin_in_background(node)
    env = RosEnv(node, TASK, {"control_hz": rate})
    agent, _ = make_agent(policy, env)
    warm(agent, env)
    # The twin's arm node and the probe: a command published before they match would be lost.
    wait_for(lambda: node.count_subscribers("/arm/target_pose") >= 2, 30, "the parent's subscribers of /arm/target_pose")
    obs: dict[str, np.ndarray] | None = None
    in_hand: list[tuple[int, int]] = []  # (reading stamp, monotonic ns its observation was in hand)
    act_ms, steps, episodes, lost = [], 0, 0, 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            if obs is None:
                obs = begin(env, agent, episodes)
                in_hand.append((env.state.stamp_ns, time.monotonic_ns()))
            t = time.perf_counter()
            action = agent.act(obs)
            act_ms.append((time.perf_counter() - t) * 1e3)
            obs, _, terminated, truncated, _ = env.step(action)
            in_hand.append((env.state.stamp_ns, time.monotonic_ns()))
            steps += 1
            if terminated or truncated:
                episodes, obs = episodes + 1, None
        except ObservationLost:  # as the real actor does: the watchdog held; wait for data, start the episode over
            lost, obs = lost + 1, None
            wait_for(lambda: env.silent is None, 10, "observations to come back")
    print(json.dumps({"steps": steps, "episodes_ended": episodes, "holds": len(env.holds), "observation_lost": lost,
                      "policy_ms": {k: v for k, v in stats(act_ms).items() if k != "n"}, "in_hand": in_hand},
                     default=float), flush=True)
    env.close()
    shutdown(executor, node)


def ros_loop(rate: float, seconds: float, policy: str) -> dict:
    """The twin served here, the actor in a child process; latency per reading paired by stamp."""
    from geometry_msgs.msg import PoseStamped

    from robotrl.ros import convert
    from robotrl.ros.devices import COMMAND_QOS, DeviceNode
    from robotrl.ros.nodes import spin_in_background
    from robotrl.ros.twin_node import TwinNode

    class LatencyProbe(DeviceNode):
        """No device: the twin's loop calls every device's publish() after each physics advance, and this one
        comes first, so it marks when each reading starts going out. Its subscription marks when the first
        command stamped with that reading arrives (a second subscriber beside the arm node: the arm node
        takes the twin's lock, which physics holds, and that wait is not transport)."""

        def __init__(self, twin: TwinNode):
            super().__init__("latency_probe", 0, twin.lock)
            self.arm = twin.env.arm
            self.sent: dict[int, int] = {}  # reading stamp -> monotonic ns it went out
            self.ee_pos: dict[int, tuple[float, ...]] = {}  # reading stamp -> measured TCP position
            self.answered: dict[int, int] = {}  # reading stamp -> monotonic ns its command arrived
            self.holds = 0
            self.create_subscription(PoseStamped, "/arm/target_pose", self._on_command, COMMAND_QOS)

        def publish(self) -> None:
            with self.lock:
                s = self.arm.state()
            self.ee_pos[s.stamp_ns] = tuple(s.ee_pos)
            self.sent[s.stamp_ns] = time.monotonic_ns()

        def _on_command(self, msg: PoseStamped) -> None:
            now, stamp = time.monotonic_ns(), convert.from_time(msg.header.stamp)
            # A watchdog hold re-sends the reading's own ee_pose: exactly the measured position, which a policy's
            # command (measured + action step, through the safety filter) practically never is.
            if tuple(convert.pose_arrays(msg)[0]) == self.ee_pos.get(stamp):
                self.holds += 1
            else:
                self.answered.setdefault(stamp, now)

    twin = TwinNode(TASK, {"control_hz": rate}, speed=1.0, rate_hz=rate)
    probe = LatencyProbe(twin)
    twin.devices.insert(0, probe)
    executor = spin_in_background(*twin.nodes)
    twin.start()
    actor, log = spawn("actor", "--rate", str(rate), "--seconds", str(WARMUP_S + seconds), "--policy", policy)
    try:
        with tqdm(total=round(rate * (WARMUP_S + seconds)), desc=f"ROS {rate:g} Hz", unit="cmd", leave=False) as bar:
            deadline = time.monotonic() + WARMUP_S + seconds + 120  # + start-up: imports, torch, discovery
            while actor.poll() is None and time.monotonic() < deadline:
                bar.update(len(probe.answered) - bar.n)
                time.sleep(0.2)
        summary = child_json("actor", actor, log, timeout=max(1.0, deadline - time.monotonic()))
    finally:
        stop(actor)
        twin.stop()
        executor.shutdown()
        for node in twin.nodes:
            node.destroy_node()
        twin.env.close()
    sent, answered, in_hand = dict(probe.sent), dict(probe.answered), dict(summary.pop("in_hand"))
    paired = sorted(s for s in answered if s in sent)
    if not paired:
        raise RuntimeError(f"no command at {rate:g} Hz carried the stamp of a reading; actor summary: {summary}")
    start, end = sent[paired[0]] + WARMUP_S * 1e9, sent[paired[-1]]
    window = [s for s, t in sent.items() if start <= t <= end]
    done = [s for s in window if s in answered]
    # Where the time goes: reading out -> observation in the actor's hand (transport + RosEnv's alignment), then
    # -> command received (policy, safety filter, command transport).
    legs = [s for s in done if s in in_hand]
    return {"latency_ms": stats([(answered[s] - sent[s]) / 1e6 for s in done]),
            "legs_ms": {"reading_to_observation": stats([(in_hand[s] - sent[s]) / 1e6 for s in legs]),
                        "observation_to_command": stats([(answered[s] - in_hand[s]) / 1e6 for s in legs])},
            "window_s": (end - start) / 1e9, "readings_published": len(window), "readings_answered": len(done),
            "readings_unanswered": len(window) - len(done), "hold_commands_received": probe.holds, **summary}


def in_process_loop(rate: float, seconds: float, policy: str) -> dict:
    """The same policy on the twin env in this process, paced at ``rate``: observation in hand -> arm.command."""
    env = gym.make(TASK, control_hz=rate)
    agent, description = make_agent(policy, env)
    warm(agent, env)
    arm = env.unwrapped.arm
    issued: list[int] = []
    device_command = arm.command

    def command(cmd: ArmCommand) -> None:  # the device boundary: where ArmNode would hand the command to the arm
        issued.append(time.monotonic_ns())
        device_command(cmd)

    arm.command = command
    obs, episodes = begin(env, agent, 0), 0
    ms, act_ms = [], []
    period, next_t = 1.0 / rate, time.monotonic()
    for _ in tqdm(range(round(rate * seconds)), desc=f"in-process {rate:g} Hz", unit="step", leave=False):
        next_t += period
        time.sleep(max(0.0, next_t - time.monotonic()))  # the observation "arrives" on the control tick
        t0, n = time.monotonic_ns(), len(issued)
        action = agent.act(obs)
        act_ms.append((time.monotonic_ns() - t0) / 1e6)
        obs, _, terminated, truncated, _ = env.step(action)
        ms.append((issued[n] - t0) / 1e6)
        if terminated or truncated:
            episodes += 1
            obs = begin(env, agent, episodes)
    env.close()
    return {"latency_ms": stats(ms), "episodes_ended": episodes, "policy": description,
            "policy_ms": {k: v for k, v in stats(act_ms).items() if k != "n"}}


# -- 2. image throughput ------------------------------------------------------------------------------------------
class SyntheticCamera:
    """The device boundary of a 640x480 camera without rendering cost: pre-generated frames, each read stamped
    with the monotonic clock (CameraNode's capture thread paces the reads at the frame rate)."""

    def __init__(self, name: str, width: int, height: int, n_frames: int = 8):
        rng = np.random.default_rng(0)
        self.name = name
        self.frames = [rng.integers(0, 256, (height, width, 3), np.uint8) for _ in range(n_frames)]
        self.intrinsics = CameraIntrinsics.from_fovy(width, height, 60.0)
        self.stamps: list[int] = []

    def read(self) -> Frame:
        stamp = time.monotonic_ns()
        self.stamps.append(stamp)
        return Frame(self.frames[len(self.stamps) % len(self.frames)], stamp, self.intrinsics)


def frames_role() -> None:
    """Child: counts frames per camera by stamp until stdin closes, then prints {camera: [[stamp, receipt]...]}."""
    import rclpy
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from robotrl.ros import convert
    from robotrl.ros.nodes import spin_in_background

    rclpy.init()
    node = Node("frame_counter")
    got: dict[str, list[tuple[int, int]]] = {c: [] for c in CAMERAS}
    for c in CAMERAS:
        node.create_subscription(Image, f"/{c}_camera/image",
                                 lambda m, c=c: got[c].append((convert.from_time(m.header.stamp), time.monotonic_ns())),
                                 qos_profile_sensor_data)
    executor = spin_in_background(node)
    wait_for(lambda: all(node.count_publishers(f"/{c}_camera/image") >= 1 for c in CAMERAS), 60, "the camera publishers")
    print("ready", flush=True)
    sys.stdin.read()  # the parent closes stdin when it has stopped publishing
    print(json.dumps(got), flush=True)
    shutdown(executor, node)


def image_throughput(seconds: float) -> dict:
    from robotrl.ros.devices import CameraNode

    cameras = [SyntheticCamera(c, WIDTH, HEIGHT) for c in CAMERAS]
    nodes = [CameraNode(cam, rate_hz=FPS) for cam in cameras]  # publishers only: nothing to spin
    counter, log = spawn("frames", stdin=subprocess.PIPE)
    try:
        wait_for(lambda: all(n.count_subscribers(f"/{c}_camera/image") >= 1 for n, c in zip(nodes, CAMERAS)), 60,
                 "the frame counter process to subscribe")
        if not select.select([counter.stdout], [], [], 60)[0] or counter.stdout.readline().strip() != "ready":
            raise RuntimeError(f"frame counter process not ready; its log:\n{log.read_text()[-3000:]}")
        time.sleep(WARMUP_S)
        start = time.monotonic_ns()
        for _ in tqdm(range(round(seconds * 10)), desc="images", unit="0.1s", leave=False):
            time.sleep(0.1)
        end = time.monotonic_ns()
        time.sleep(0.5)  # frames captured inside the window may still be in flight
        for n in nodes:
            n.destroy_node()
        nodes = []
        got = child_json("frame counter", counter, log, timeout=30)  # closing its stdin tells it to report
    finally:
        for n in nodes:
            n.destroy_node()
        stop(counter)
    duration = (end - start) / 1e9
    out: dict[str, dict] = {}
    for cam in cameras:
        published = [s for s in cam.stamps if start <= s <= end]
        receipts = {s: r for s, r in got[cam.name]}
        received = [s for s in published if s in receipts]
        ms = [(receipts[s] - s) / 1e6 for s in received]
        out[cam.name] = {"published": len(published), "received": len(received), "dropped": len(published) - len(received),
                         "published_fps": len(published) / duration, "received_fps": len(received) / duration,
                         "latency_ms": {k: v for k, v in stats(ms).items() if k in ("mean", "p99", "max")}}
    return out


# -- the report ---------------------------------------------------------------------------------------------------
def table(result: dict) -> str:
    lines = [f"\nobservation -> command latency, ms ({TASK}, state observations; policy: {result['settings']['policy']})",
             f"{'rate':>6}  {'path':<11} {'n':>6} {'p50':>7} {'p99':>7} {'max':>7}"]
    for rate, case in result["latency"].items():
        for path in ("in_process", "ros"):
            s = case[path]["latency_ms"]
            lines.append(f"{rate:>4} Hz  {path:<11} {s['n']:>6} {s['p50']:>7.2f} {s['p99']:>7.2f} {s['max']:>7.2f}")
        for leg, s in case["ros"]["legs_ms"].items():
            lines.append(f"{'':>7}  {'  ' + leg:<26} {s['p50']:>7.2f} {s['p99']:>7.2f} {s['max']:>7.2f}")
        a = case["added_ms"]
        lines.append(f"{rate:>4} Hz  {'added':<11} {'':>6} {a['p50']:>7.2f} {a['p99']:>7.2f}")
    lines += [f"\nimages: {len(CAMERAS)} x {WIDTH}x{HEIGHT} rgb8 at {FPS:g} fps, sensor-data QoS, across processes",
              f"{'camera':<8} {'published':>9} {'received':>9} {'dropped':>8} {'fps':>6} {'lat mean':>9} {'lat p99':>8}"]
    for name, c in result["images"]["cameras"].items():
        lines.append(f"{name:<8} {c['published']:>9} {c['received']:>9} {c['dropped']:>8} {c['received_fps']:>6.1f} "
                     f"{c['latency_ms']['mean']:>9.2f} {c['latency_ms']['p99']:>8.2f}")
    lines.append(f"\ngoals met: {result['goal_met']}\n")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="measured wall time of each loop and of the image stream (default: 10; plus 1 s warm-up each)")
    parser.add_argument("--policy", choices=["sac", "scripted"], default="sac",
                        help="sac: SAC's GaussianPolicy.act, the MLP a learning actor runs (default); scripted: the task's expert")
    parser.add_argument("--role", choices=["bench", "actor", "frames"], default="bench", help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, default=50.0, help=argparse.SUPPRESS)
    add_output_args(parser)
    args = parser.parse_args()
    try:
        import rclpy
    except ImportError as e:
        raise SystemExit(f"ros_latency needs ROS 2's rclpy and messages: pip install -e '.[ros]'  ({e})")
    if args.policy == "sac":
        try:
            import torch  # noqa: F401
        except ImportError as e:
            raise SystemExit(f"--policy sac needs torch: pip install -e '.[learn]', or use --policy scripted  ({e})")
    if args.role == "actor":
        return actor_role(args.rate, args.seconds, args.policy)
    if args.role == "frames":
        return frames_role()

    os.environ["ROS_DOMAIN_ID"] = str(random.randint(100, 200))  # before rclpy.init; children inherit it
    load_start = os.getloadavg()
    rclpy.init()
    result: dict = {
        "goals": {"latency": f"p99 added latency (ROS - in-process) < {GOAL_ADDED_P99_MS:g} ms at 50 Hz, state observations",
                  "images": f"0 frames dropped, {len(CAMERAS)} cameras {WIDTH}x{HEIGHT} at {FPS:g} fps"},
        "settings": {"task": TASK, "rates_hz": list(RATES), "seconds": args.seconds, "warmup_s": WARMUP_S,
                     "policy": args.policy, "ros_domain_id": int(os.environ["ROS_DOMAIN_ID"]),
                     "rmw": os.environ.get("RMW_IMPLEMENTATION", "default (rmw_fastrtps_cpp)"),
                     **{v: os.environ.get(v, "") for v in FASTDDS_ENV}},
        "latency": {},
    }
    try:
        for rate in RATES:
            local = in_process_loop(rate, args.seconds, args.policy)
            result["settings"]["policy"] = local.pop("policy")
            ros = ros_loop(rate, args.seconds, args.policy)
            added = {q: ros["latency_ms"][q] - local["latency_ms"][q] for q in ("p50", "p99")}
            result["latency"][f"{rate:g}"] = {"in_process": local, "ros": ros, "added_ms": added}
        cams = image_throughput(args.seconds)
    finally:
        shutdown()
    result["images"] = {"cameras": cams, "total_dropped": sum(c["dropped"] for c in cams.values())}
    result["load_avg_1_5_15"] = {"start": load_start, "end": os.getloadavg()}
    result["goal_met"] = {"latency": bool(result["latency"]["50"]["added_ms"]["p99"] < GOAL_ADDED_P99_MS),
                          "images": result["images"]["total_dropped"] == 0}
    print(table(result))
    write_result(out_dir(args), "ros_latency", result)


if __name__ == "__main__":
    main()
