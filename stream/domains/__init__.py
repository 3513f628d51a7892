"""Key spaces beyond one user's: groups, teams, boards and partitions, each a pure step over its own keys."""
