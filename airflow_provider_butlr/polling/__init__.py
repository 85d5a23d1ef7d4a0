"""Poll plans and their conditions, shared by the sensors (worker) and the triggers (triggerer)."""
