"""The emulator's ground truth and reporting engine: minute series, windows, response shapes, stats."""
