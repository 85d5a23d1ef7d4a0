"""The transport and auth core of the hooks: one exchange, its retry, rate limit, deadline, tokens."""
