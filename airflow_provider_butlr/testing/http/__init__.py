"""The emulator's HTTP side: the threaded server, the Butlr endpoints, tokens, faults, counters, admin API."""
