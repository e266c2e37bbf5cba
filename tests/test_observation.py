"""The observation spec and processor: state key selection, camera crop and resize, frame stacking, errors."""

import subprocess
import sys

import numpy as np
import pytest

from robotrl.config import ConfigError, load_config
from robotrl.tasks.observation import ObservationProcessor, ObservationSpec, crop_box, crop_resize

DIMS = {"ee_pos": 3, "ee_vel": 3, "gripper": 1, "cube_pos": 3}
RED, GREEN, BLUE, WHITE, MAGENTA = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (255, 0, 255)


def state(seed: float = 0.0) -> dict[str, np.ndarray]:
    """Every state key of the task, as float64 (the processor casts)."""
    return {k: np.arange(n, dtype=np.float64) + seed for k, n in DIMS.items()}


def checked(proc: ObservationProcessor, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every output: exactly the space's keys in its order, its shapes and dtypes, and in the space."""
    assert list(obs) == list(proc.space)
    for key, value in obs.items():
        assert value.shape == proc.space[key].shape, key
        assert value.dtype == proc.space[key].dtype, key
    assert proc.space.contains(obs)
    return obs


def quadrant_frame() -> np.ndarray:
    """640x480: magenta side bands outside the centred 480x480 square, whose quadrants are red (top left),
    green (top right), blue (bottom left), white (bottom right)."""
    img = np.empty((480, 640, 3), np.uint8)
    img[:] = MAGENTA
    img[:240, 80:320] = RED
    img[:240, 320:560] = GREEN
    img[240:, 80:320] = BLUE
    img[240:, 320:560] = WHITE
    return img


# -- crop and resize ---------------------------------------------------------------------------------------


def test_crop_box_default_is_the_centred_largest_square():
    assert crop_box(480, 640, None) == (80, 0, 560, 480)
    assert crop_box(640, 480, None) == (0, 80, 480, 560)
    assert crop_box(96, 96, None) == (0, 0, 96, 96)
    assert crop_box(480, 640, (0.5, 0.25, 1.0, 1.0)) == (320, 120, 640, 480)
    assert crop_box(10, 10, (0.0, 0.0, 0.01, 0.01)) == (0, 0, 1, 1)  # never empty


def test_640x480_frame_becomes_square_without_squashing():
    out = crop_resize(quadrant_frame(), None, 96)  # 480 -> 96 is exactly 5x: INTER_AREA averages 5x5 blocks
    assert out.shape == (96, 96, 3) and out.dtype == np.uint8
    assert not np.any(np.all(out == MAGENTA, axis=-1))  # nothing from the side bands
    assert np.all(out[:48, :48] == RED) and np.all(out[:48, 48:] == GREEN)
    assert np.all(out[48:, :48] == BLUE) and np.all(out[48:, 48:] == WHITE)


def test_configured_crop_picks_its_region():
    img = np.zeros((480, 640, 3), np.uint8)
    img[200:250, 400:450] = GREEN  # inside the crop below
    img[:160] = RED  # above it
    img[:, :320] = BLUE  # left of it
    crop = (0.5, 1 / 3, 1.0, 1.0)  # pixels x 320..640, y 160..480: 320x320, 5x the 64 px output
    out = crop_resize(img, crop, 64)
    assert out.shape == (64, 64, 3)
    patch = np.zeros((64, 64), bool)
    patch[8:18, 16:26] = True  # (200-160)/5 .. (250-160)/5, (400-320)/5 .. (450-320)/5
    assert np.all(out[patch] == GREEN)
    assert np.all(out[~patch] == 0)


def test_a_crop_already_at_size_is_a_view_not_a_copy():
    img = np.random.default_rng(0).integers(0, 256, (192, 256, 3), dtype=np.uint8)
    out = crop_resize(img, (0.25, 0.25, 0.625, 0.75), 96)  # x 64..160, y 48..144
    assert np.shares_memory(out, img)
    np.testing.assert_array_equal(out, img[48:144, 64:160])
    same = np.zeros((96, 96, 3), np.uint8)
    assert np.shares_memory(crop_resize(same, None, 96), same)


def test_a_non_square_crop_and_a_small_frame_still_give_the_size():
    img = np.full((30, 50, 3), 7, np.uint8)
    assert crop_resize(img, (0.0, 0.0, 1.0, 0.5), 32).shape == (32, 32, 3)  # squashed: the user's choice
    up = crop_resize(img, None, 64)  # upscaled
    assert up.shape == (64, 64, 3) and np.all(up == 7)


# -- the processor -----------------------------------------------------------------------------------------


def test_state_selection_and_order():
    proc = ObservationProcessor(ObservationSpec(state=["gripper", "ee_pos"]), DIMS)
    assert list(proc.space) == ["state/ee_pos", "state/gripper"]  # sorted, whatever the YAML order
    assert list(ObservationProcessor(ObservationSpec(state=["ee_pos", "gripper"]), DIMS).space) == list(proc.space)
    obs = checked(proc, proc(state(1.0), {}))
    np.testing.assert_array_equal(obs["state/ee_pos"], [1, 2, 3])
    np.testing.assert_array_equal(obs["state/gripper"], [1])

    every = ObservationProcessor(ObservationSpec(), DIMS)
    assert sorted(every.space) == sorted(f"state/{k}" for k in DIMS)
    checked(every, every(state(), {"front": np.zeros((480, 640, 3), np.uint8)}))  # unlisted cameras are ignored


def test_images_and_state_together_match_the_space():
    spec = ObservationSpec(
        state=["ee_pos"], cameras=["wrist", "front"], image_size=48, crop={"wrist": (0, 0, 0.5, 0.5)}
    )
    proc = ObservationProcessor(spec, DIMS, camera_names=["front", "wrist", "side"])
    assert proc.image_shape("front") == (48, 48, 3) and proc.cameras == ["wrist", "front"]
    frames = {"front": quadrant_frame(), "wrist": quadrant_frame(), "side": np.zeros((4, 4, 3), np.uint8)}
    obs = checked(proc, proc(state(), frames))
    assert list(obs) == ["images/front", "images/wrist", "state/ee_pos"]
    assert np.all(obs["images/front"][:24, :24] == RED)
    assert np.all(obs["images/wrist"][:, :8] == MAGENTA)  # left 0..320 of 640 holds the 80 px band: 48 * 80/320 = 12
    assert np.all(obs["images/wrist"][:, 12:] == RED)


def test_nothing_is_copied_when_nothing_is_to_do():
    proc = ObservationProcessor(ObservationSpec(state=["ee_pos"], cameras=["cam"], image_size=32), DIMS)
    ee = np.array([1, 2, 3], np.float32)
    frame = np.zeros((32, 32, 3), np.uint8)
    obs = checked(proc, proc({**state(), "ee_pos": ee}, {"cam": frame}))
    assert obs["state/ee_pos"] is ee and np.shares_memory(obs["images/cam"], frame)


def test_frame_stacking_fills_at_reset_and_shifts_each_step():
    spec = ObservationSpec(state=["ee_pos", "gripper"], cameras=["cam"], image_size=16, frame_stack=3)
    proc = ObservationProcessor(spec, DIMS)
    assert proc.space["state/ee_pos"].shape == (9,)
    assert proc.space["state/gripper"].shape == (3,)
    assert proc.image_shape("cam") == (16, 16, 9)

    def frame(v: int) -> dict[str, np.ndarray]:
        return {"cam": np.full((40, 60, 3), v, np.uint8)}

    def grip(obs) -> list[float]:
        return obs["state/gripper"].tolist()

    def cam(obs) -> list[int]:  # the value of each stacked frame, oldest first
        return [int(obs["images/cam"][0, 0, 3 * i]) for i in range(3)]

    proc.reset()
    first = checked(proc, proc(state(0), frame(10)))
    assert grip(first) == [0, 0, 0] and cam(first) == [10, 10, 10]
    np.testing.assert_array_equal(first["state/ee_pos"], [0, 1, 2] * 3)
    second = checked(proc, proc(state(1), frame(11)))
    assert grip(second) == [0, 0, 1] and cam(second) == [10, 10, 11]
    np.testing.assert_array_equal(second["state/ee_pos"], [0, 1, 2, 0, 1, 2, 1, 2, 3])
    obs = checked(proc, proc(state(2), frame(12)))
    assert grip(obs) == [0, 1, 2] and cam(obs) == [10, 11, 12]
    obs = checked(proc, proc(state(3), frame(13)))
    assert grip(obs) == [1, 2, 3] and cam(obs) == [11, 12, 13]
    assert np.all(obs["images/cam"][..., 6:] == 13) and np.all(obs["images/cam"][..., :3] == 11)
    assert grip(first) == [0, 0, 0] and cam(second) == [10, 10, 11]  # earlier outputs are never changed

    proc.reset()
    obs = checked(proc, proc(state(7), frame(70)))
    assert grip(obs) == [7, 7, 7] and cam(obs) == [70, 70, 70]


# -- errors ------------------------------------------------------------------------------------------------


def test_config_errors_name_the_key():
    has = "the task has: ee_pos, ee_vel, gripper, cube_pos"
    with pytest.raises(ConfigError, match=rf"key 'observation.state': unknown state key 'cube_pose'; {has}"):
        ObservationProcessor(ObservationSpec(state=["ee_pos", "cube_pose"]), DIMS)
    with pytest.raises(ConfigError, match=r"key 'task.observation.cameras': unknown camera 'top'; the task has: front"):
        ObservationProcessor(
            ObservationSpec(cameras=["top"]), DIMS, camera_names=["front", "wrist"], where="task.observation"
        )
    with pytest.raises(ConfigError, match=r"key 'observation.crop': camera 'wrist' is not in 'observation.cameras'"):
        ObservationProcessor(ObservationSpec(cameras=["front"], crop={"wrist": (0, 0, 1, 1)}), DIMS)
    ObservationProcessor(ObservationSpec(cameras=["anything"]), DIMS)  # no camera list given: not checked here


@pytest.mark.parametrize(
    "bad, key",
    [
        ({"image_size": 8}, "image_size"),
        ({"frame_stack": 0}, "frame_stack"),
        ({"frame_stack": 9}, "frame_stack"),
        ({"crop": {"cam": [0.5, 0.0, 0.4, 1.0]}}, "crop"),  # left >= right
        ({"crop": {"cam": [0.0, 0.0, 1.2, 1.0]}}, "crop"),  # outside the frame
        ({"crop": {"cam": [0.0, 0.0, 1.0]}}, "crop.cam"),
        ({"cameras": ["a", "a"]}, "cameras"),
        ({"state": ["ee_pos", "ee_pos"]}, "state"),
        ({"stack": 2}, "stack"),
    ],
)
def test_spec_validation_names_the_key(bad, key):
    with pytest.raises(ConfigError, match=rf"key '{key}"):
        load_config(ObservationSpec, bad)


def test_spec_from_yaml_values():
    values = {"cameras": ["front"], "crop": {"front": [0.1, 0.0, 0.9, 1.0]}, "image_size": 64}
    spec = load_config(ObservationSpec, values)
    assert spec.crop["front"] == (0.1, 0.0, 0.9, 1.0) and spec.state is None and spec.frame_stack == 1


def test_wrong_inputs_raise_naming_the_key():
    proc = ObservationProcessor(ObservationSpec(state=["ee_pos"], cameras=["cam"]), DIMS)
    good = {"cam": np.zeros((480, 640, 3), np.uint8)}
    checked(proc, proc(state(), good))
    with pytest.raises(ValueError, match=r"state/ee_pos: shape \(4,\), expected \(3,\)"):
        proc({**state(), "ee_pos": np.zeros(4)}, good)
    with pytest.raises(ValueError, match=r"state/ee_pos: shape \(1, 3\)"):
        proc({**state(), "ee_pos": np.zeros((1, 3))}, good)
    with pytest.raises(ValueError, match=r"state/ee_pos: missing"):
        proc({"gripper": np.zeros(1)}, good)
    bad_frames = (
        np.zeros((480, 640, 3), np.float32), np.zeros((480, 640), np.uint8), np.zeros((480, 640, 4), np.uint8),
        np.zeros((0, 640, 3), np.uint8), [[0, 0, 0]],
    )
    for frame in bad_frames:
        with pytest.raises(ValueError, match=r"images/cam: expected a uint8 HxWx3 frame"):
            proc(state(), {"cam": frame})
    with pytest.raises(ValueError, match=r"images/cam: no frame"):
        proc(state(), {"other": good["cam"]})


def test_the_module_imports_no_mujoco_torch_or_ros():
    code = "import sys, robotrl.tasks.observation; print(sorted({'mujoco', 'torch', 'rclpy'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
