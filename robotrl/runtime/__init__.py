"""Actor and learner: the same classes run in one process (sim, for speed) or as separate processes (robot)."""
