"""The pure Butlr domain: catalogue, validation, times and windows, planning, bodies, rows, export."""
