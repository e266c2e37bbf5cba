"""gymnasium envs on the MuJoCo twin, registered as robotrl/<Task>-v0 when robotrl is imported."""

import gymnasium as gym

ENVS = {
    "robotrl/ArmReach-v0": "robotrl.envs.arm:ArmReach",
    "robotrl/ArmPickCube-v0": "robotrl.envs.arm:ArmPickCube",
    "robotrl/ArmPegInsert-v0": "robotrl.envs.arm:ArmPegInsert",
    "robotrl/QuadHover-v0": "robotrl.envs.quad:QuadHover",
    "robotrl/QuadWaypoints-v0": "robotrl.envs.quad:QuadWaypoints",
}


def register_envs() -> None:
    for env_id, entry_point in ENVS.items():
        if env_id not in gym.registry:
            # The TimeLimit/order checkers are ours to run in tests; the env truncates on its own episode length.
            gym.register(env_id, entry_point=entry_point, disable_env_checker=True)
