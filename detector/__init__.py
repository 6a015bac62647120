"""Streaming detector of LLM-API distillation campaigns."""

__version__ = "0.1.0"
