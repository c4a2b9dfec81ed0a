"""The offline intent classifier: a local model, TF-IDF features and a linear classifier.

It is a small trained model, not an LLM: trained on the labelled examples shipped in
``agents/data/intents.jsonl`` at first use (about a second), deterministic, and behind the same
idea of "a model" as the providers. :func:`evaluate` reports accuracy on a held-out split.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import FeatureUnion, Pipeline

__all__ = [
    "EXAMPLES",
    "Evaluation",
    "IntentClassifier",
    "Prediction",
    "evaluate",
    "load_examples",
    "text_pipeline",
]

EXAMPLES = Path(__file__).parents[1] / "data" / "intents.jsonl"


def load_examples(path: Path = EXAMPLES, label: str = "intent") -> tuple[list[str], list[str]]:
    """Texts and their labels (the ``label`` field) from a JSON-lines file of examples."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r["text"] for r in rows], [r[label] for r in rows]


def text_pipeline(class_weight: str | None = None) -> Pipeline:
    """The offline text classifiers' model (intents, the safety screen)."""
    # Words and character n-grams: short tickets, typos and word forms ("billed", "billing").
    features = FeatureUnion(
        [
            ("words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)),
            ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True)),
        ]
    )
    model = LogisticRegression(C=8.0, max_iter=2000, class_weight=class_weight)
    return Pipeline([("features", features), ("model", model)])


@dataclass(frozen=True)
class Prediction:
    intent: str
    confidence: float


class IntentClassifier:
    def __init__(self, texts: list[str], labels: list[str]) -> None:
        self._pipeline = text_pipeline().fit(texts, labels)
        self.labels: list[str] = sorted(set(labels))

    @classmethod
    def trained(cls, path: Path = EXAMPLES) -> IntentClassifier:
        return cls(*load_examples(path))

    def predict(self, text: str) -> Prediction:
        return self.predict_many([text])[0]

    def predict_many(self, texts: list[str]) -> list[Prediction]:
        """One vectorised call for many texts (see :mod:`agents.offline.batching`)."""
        out = []
        for probabilities in self._pipeline.predict_proba(texts):
            best = int(probabilities.argmax())
            out.append(Prediction(str(self._pipeline.classes_[best]), float(probabilities[best])))
        return out


@dataclass(frozen=True)
class Evaluation:
    accuracy: float
    train_size: int
    test_size: int


def evaluate(path: Path = EXAMPLES, test_share: float = 0.25, seed: int = 7) -> Evaluation:
    """Accuracy on a stratified held-out split the model never saw."""
    texts, labels = load_examples(path)
    train_x, test_x, train_y, test_y = train_test_split(
        texts, labels, test_size=test_share, random_state=seed, stratify=labels
    )
    model = IntentClassifier(train_x, train_y)
    predicted = [model.predict(t).intent for t in test_x]
    return Evaluation(float(accuracy_score(test_y, predicted)), len(train_x), len(test_x))
