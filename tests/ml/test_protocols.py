"""What apps get from the registry satisfies the typed protocols of its role."""

from __future__ import annotations

import pytest

from ml.protocols import ChatModel, ClassifierModel, EmbedderModel, EntityModel, model_for


def test_bundled_models_satisfy_their_role_protocols(registry):
    embedder = model_for(registry, "embedder")
    sentiment = model_for(registry, "sentiment")
    chat = model_for(registry, "chat-lm")

    assert isinstance(embedder, EmbedderModel)
    assert isinstance(sentiment, ClassifierModel)
    assert isinstance(chat, ChatModel)
    # versions come from the manifests the registry loaded
    assert embedder.version == registry.active("embedder").version
    assert sentiment.version == registry.active("sentiment").version
    assert chat.version == registry.active("chat-lm").version


def test_entity_extractor_satisfies_its_protocol(registry):
    assert isinstance(model_for(registry, "ner"), EntityModel)


def test_a_model_without_the_interface_is_refused():
    class FakeRegistry:
        def get(self, role: str) -> object:
            return object()

    with pytest.raises(TypeError, match="EmbedderModel"):
        model_for(FakeRegistry(), "embedder")  # type: ignore[arg-type]
