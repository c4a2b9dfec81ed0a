"""The content pipeline's decisions, free of I/O: brief -> draft -> fact check + style check -> SEO.

- :mod:`~agents.content.writer`: the prompt a writing model gets, and ``local-writer``, the
  offline deterministic model that answers it (and revises from critique lines);
- :mod:`~agents.content.factcheck`: claims of a draft judged against the knowledge base;
- :mod:`~agents.content.style`: Lumen's brand voice as rules, read from a YAML guide;
- :mod:`~agents.content.seo`: title, description, keywords and slug for publishing.

The checkers' ``critique_lines`` are what the writer reads on the next round.
"""

from agents.content.factcheck import ClaimVerdict, FactChecker, FactReport, split_claims
from agents.content.factcheck import critique_lines as fact_critique
from agents.content.seo import Seo, kb_idf, seo_metadata, slugify
from agents.content.style import STYLE_GUIDE, StyleFinding, StyleGuide, StyleReport, check_style
from agents.content.style import critique_lines as style_critique
from agents.content.writer import (
    ArticleAsk,
    article_prompt,
    parse_article_prompt,
    write_article,
    write_from_prompt,
)

__all__ = [
    "STYLE_GUIDE",
    "ArticleAsk",
    "ClaimVerdict",
    "FactChecker",
    "FactReport",
    "Seo",
    "StyleFinding",
    "StyleGuide",
    "StyleReport",
    "article_prompt",
    "check_style",
    "fact_critique",
    "kb_idf",
    "parse_article_prompt",
    "seo_metadata",
    "slugify",
    "split_claims",
    "style_critique",
    "write_article",
    "write_from_prompt",
]
