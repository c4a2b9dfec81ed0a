"""The model providers behind one interface (:class:`Provider`): OpenAI- and Anthropic-compatible
APIs over httpx, the local provider (models that run in this process), and the provider
simulator (a stand-in for hosted models, not a model) that tests and the demo call instead of
the network. Each serves chat, embeddings or both (:class:`EmbeddingRequest` in,
:class:`Embeddings` out)."""

from agents.gateway.providers.http import AnthropicProvider, OpenAIProvider
from agents.gateway.providers.local import (
    LocalEmbedder,
    LocalModel,
    LocalModels,
    LocalProvider,
    LocalTurn,
    ToolModel,
)
from agents.gateway.providers.protocol import (
    ChatRequest,
    Completion,
    EmbeddingRequest,
    Embeddings,
    Provider,
    StreamPiece,
    ToolCall,
    ToolSpec,
)

__all__ = [
    "AnthropicProvider",
    "ChatRequest",
    "Completion",
    "EmbeddingRequest",
    "Embeddings",
    "LocalEmbedder",
    "LocalModel",
    "LocalModels",
    "LocalProvider",
    "LocalTurn",
    "OpenAIProvider",
    "Provider",
    "StreamPiece",
    "ToolCall",
    "ToolModel",
    "ToolSpec",
]
