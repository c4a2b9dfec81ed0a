"""The offline models that need no provider: the intent classifier and the safety screen (small
scikit-learn models trained at start from the bundled examples), the BM25 retriever over the
knowledge base, the grounded-answer models the local provider serves, and the micro-batcher that
turns many concurrent single calls into one vectorised call."""
