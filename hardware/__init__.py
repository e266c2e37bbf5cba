"""Hardware drivers behind the robotrl.interfaces protocols (RealSense, OpenCV cameras, ros2_control arms,
MAVLink quadrotors). Each driver implements the same Camera / Arm / Quadrotor interface as the twin in
robotrl.sim, so tasks, the actor and the safety filter run unchanged on a real robot."""
