"""YAML configs shipped with robotrl (robots, tasks); loaded through robotrl.config."""
