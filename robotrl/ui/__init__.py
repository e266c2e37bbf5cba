"""The operator's web page and its input devices (robotrl ui)."""
