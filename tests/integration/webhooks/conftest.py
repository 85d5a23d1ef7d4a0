"""The emulator delivering to the receiver (fixtures in tests/support/webhook_push.py)."""

from tests.support.webhook_push import push, push_emulator

__all__ = ["push", "push_emulator"]
