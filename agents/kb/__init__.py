"""The knowledge-base pipeline ("kb"): documents on the compacted kb.documents are cut into
chunks (``chunk``), embedded through the model gateway (``embed``) and written to the vector
store (``index``), each document's chunk set replaced at once, a deleted document removed."""
