"""The content pipeline: brief -> draft -> fact check + style check -> join -> SEO.

Its decisions are free of I/O:

- :mod:`~agents.content.writer`: the prompt a writing model gets, and ``local-writer``, the
  offline deterministic model that answers it (and revises from critique lines);
- :mod:`~agents.content.factcheck`: claims of a draft judged against the knowledge base;
- :mod:`~agents.content.style`: Lumen's brand voice as rules, read from a YAML guide;
- :mod:`~agents.content.seo`: title, description, keywords and slug for publishing.

The checkers' ``critique_lines`` are what the writer reads on the next round. The face is
lazy: a name is imported on first use, so registering the pipeline
(:mod:`agents.content.pipeline`) loads no knowledge base.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> (module, attribute): imported on first use (PEP 562).
_FACE = {
    "ClaimVerdict": ("factcheck", "ClaimVerdict"),
    "FactChecker": ("factcheck", "FactChecker"),
    "FactReport": ("factcheck", "FactReport"),
    "split_claims": ("factcheck", "split_claims"),
    "fact_critique": ("factcheck", "critique_lines"),
    "Seo": ("seo", "Seo"),
    "kb_idf": ("seo", "kb_idf"),
    "seo_metadata": ("seo", "seo_metadata"),
    "slugify": ("seo", "slugify"),
    "STYLE_GUIDE": ("style", "STYLE_GUIDE"),
    "StyleFinding": ("style", "StyleFinding"),
    "StyleGuide": ("style", "StyleGuide"),
    "StyleReport": ("style", "StyleReport"),
    "check_style": ("style", "check_style"),
    "style_critique": ("style", "critique_lines"),
    "ArticleAsk": ("writer", "ArticleAsk"),
    "article_prompt": ("writer", "article_prompt"),
    "parse_article_prompt": ("writer", "parse_article_prompt"),
    "write_article": ("writer", "write_article"),
    "write_from_prompt": ("writer", "write_from_prompt"),
}

__all__ = sorted(_FACE)


def __getattr__(name: str) -> Any:
    if name not in _FACE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attribute = _FACE[name]
    return getattr(importlib.import_module(f"{__name__}.{module}"), attribute)
