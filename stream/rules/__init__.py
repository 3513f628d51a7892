"""Rules: the operator-tunable model of what earns points, loaded from YAML."""

from stream.rules.model import BASE_RULES, Rules, RulesError, load_rules

__all__ = ["BASE_RULES", "Rules", "RulesError", "load_rules"]
