"""Butlr operators."""
