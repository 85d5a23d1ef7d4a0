"""Client-side rate limits: one rolling-window rule, kept per process, per host or per deployment."""
