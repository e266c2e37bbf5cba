"""Configs validate on load; a bad key or value names the file, the key and what is allowed."""

import gymnasium as gym
import pytest

from robotrl.config import ConfigError, configs_dir, load_config
from robotrl.tasks.arm import PickCubeConfig


def test_shipped_task_configs_validate():
    for name in ["arm_reach", "arm_pick_cube", "arm_peg_insert"]:
        assert (configs_dir() / "tasks" / f"{name}.yaml").is_file()
    cfg = load_config(PickCubeConfig, configs_dir() / "tasks" / "arm_pick_cube.yaml")
    assert cfg.control_hz == 10


def test_unknown_key_names_file_and_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("control_hz: 10\nsafety:\n  max_sped: 0.3\n")
    with pytest.raises(ConfigError) as err:
        gym.make("robotrl/ArmPickCube-v0", config=bad)
    msg = str(err.value)
    assert str(bad) in msg and "safety.max_sped" in msg and "unknown key" in msg


def test_bad_value_lists_allowed_values(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("reward: shaped\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: key 'reward'.*'sparse' or 'dense'"):
        gym.make("robotrl/ArmReach-v0", config=bad)


def test_out_of_range_value_names_the_bound(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("control_hz: -5\n")
    with pytest.raises(ConfigError, match=r"key 'control_hz'.*greater than 0"):
        gym.make("robotrl/ArmReach-v0", config=bad)


def test_keyword_overrides_are_validated_too():
    with pytest.raises(ConfigError, match="overrides: key 'action_latency_steps'"):
        gym.make("robotrl/ArmReach-v0", action_latency_steps=-1)


def test_unknown_camera_lists_the_cameras():
    with pytest.raises(ConfigError, match=r"cameras.*'side'.*front.*wrist"):
        gym.make("robotrl/ArmReach-v0", observation={"cameras": ["side"]})


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        gym.make("robotrl/ArmReach-v0", config=tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("control_hz: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        gym.make("robotrl/ArmReach-v0", config=broken)
