"""LLM observability: prices and the cost of calls (docs/llm.md)."""

from watchkeeper.llm.prices import Price, PriceConfigError, PriceTable

__all__ = ["Price", "PriceConfigError", "PriceTable"]
