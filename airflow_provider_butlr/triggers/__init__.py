"""Butlr triggers."""
