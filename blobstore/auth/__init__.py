"""Who may do what: bearer tokens, signed URLs, and the sealing of the secrets behind them."""
