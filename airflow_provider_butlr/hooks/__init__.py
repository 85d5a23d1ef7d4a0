"""Butlr hooks."""
