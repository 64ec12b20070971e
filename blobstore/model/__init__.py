"""The vocabulary every layer shares: keys and their rules, results, preconditions, progress callbacks."""
