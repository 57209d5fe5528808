"""Article metadata says when the text is the offline provider's template, not an LLM's."""

from __future__ import annotations

import pytest

from infou_gateway.routes.articles import article_json
from infou_protos.session.v1 import session_pb2


@pytest.mark.parametrize(
    ("llm_model", "offline"),
    [("offline-v7", True), ("offline-unversioned", True), ("gpt-4.1", False), ("", False)],
)
def test_offline_flag_follows_the_model_that_wrote_it(llm_model: str, offline: bool) -> None:
    article = session_pb2.Article(id="a", metadata=session_pb2.ArticleMetadata(llm_model=llm_model))
    assert article_json(article)["metadata"]["offline"] is offline
