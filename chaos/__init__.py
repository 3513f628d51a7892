"""The chaos suite: workers under faults and malformed input, against exact expected awards (make chaos)."""
