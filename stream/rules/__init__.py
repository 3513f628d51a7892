"""Rules: the operator-tunable rule language (YAML), its compiler and its versions."""

from stream.rules.model import Rules, RulesError, load_rules

__all__ = ["Rules", "RulesError", "load_rules"]
