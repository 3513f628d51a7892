"""Pure building blocks: the state interface and its in-memory and cached implementations."""
