"""CLIP with OpenAI's module names, its loader and tokenizer, and the prompt mechanism.

`import clip; clip.load(...)`, `from clip import clip` (the loader module, as in OpenAI's package)
and `from clip.simple_tokenizer import SimpleTokenizer` all work.
"""
from .clip import ClipWeightsError, available_models, load, tokenize

__all__ = ["ClipWeightsError", "available_models", "load", "tokenize"]
