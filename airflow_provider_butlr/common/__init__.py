"""Pure helpers every layer may use: JSON decoding with a depth limit and an async time bound."""
