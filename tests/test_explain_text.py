"""Token attributions: exact and sampled Shapley values, occlusion, Integrated Gradients, HTML rendering."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from vigil.core.explain.adapters import ExplainError
from vigil.core.explain.text import SimpleVocabulary, TextExplanation, token_attributions

HANDMADE = [
    ("i love this film", 1), ("a great and moving story", 1), ("i love the great cast", 1),
    ("wonderful , great fun", 1), ("the acting is great", 1), ("what a lovely film , i love it", 1),
    ("i hate this film", 0), ("an awful and boring story", 0), ("i hate the awful cast", 0),
    ("boring , awful mess", 0), ("the acting is awful", 0), ("what a dull film , i hate it", 0),
]
WEIGHTS = {"good": 1.5, "bad": -2.0, "not": -0.25, "very": 0.5}


def _weights_model(texts: list[str]) -> np.ndarray:
    """An additive text model: the sum of word weights (unknown words weigh 0)."""
    return np.array([sum(WEIGHTS.get(w, 0.0) for w in t.split()) for t in texts])


def _brute_force_shapley(tokens: list[str], score) -> np.ndarray:
    """Shapley values by their definition: average marginal contribution over all orders."""
    p = len(tokens)
    cache: dict[frozenset[int], float] = {}

    def value(kept: frozenset[int]) -> float:
        if kept not in cache:
            cache[kept] = float(score([" ".join(tokens[k] for k in sorted(kept))])[0])
        return cache[kept]

    phi = np.zeros(p)
    for order in itertools.permutations(range(p)):
        for i, j in enumerate(order):
            phi[j] += value(frozenset(order[:i + 1])) - value(frozenset(order[:i]))
    return phi / math.factorial(p)


@pytest.fixture(scope="module")
def handmade_pipeline():
    texts, labels = zip(*HANDMADE, strict=True)
    return make_pipeline(TfidfVectorizer(), LogisticRegression(C=10)).fit(list(texts), list(labels))


def test_exact_shapley_on_a_pipeline_matches_the_definition_and_is_efficient(handmade_pipeline):
    e = token_attributions(handmade_pipeline, ["i love this awful film", "great fun"])
    assert e.extra["exact"] == [True, True] and e.error is None
    assert e.output == "probability of class 1" and e.baseline == "empty text"
    assert e.efficiency_gap() < 1e-9
    np.testing.assert_allclose(e.expected_value, handmade_pipeline.predict_proba([""])[:, 1][0], atol=1e-12)
    np.testing.assert_allclose(e.model_output, handmade_pipeline.predict_proba(["i love this awful film", "great fun"])
                               [:, 1], atol=1e-12)

    def score(texts):
        return handmade_pipeline.predict_proba(texts)[:, 1]
    np.testing.assert_allclose(e.values[0], _brute_force_shapley(e.tokens[0], score), atol=1e-12)
    love, awful = e.values[0][1], e.values[0][3]
    assert love > 0 > awful


def test_additive_model_gets_its_word_weights_from_every_method():
    text = "good very good not bad film"
    expected = [WEIGHTS.get(w, 0.0) for w in text.split()]
    for kwargs in ({"method": "shapley"}, {"method": "shapley", "exact_up_to": 2}, {"method": "occlusion"}):
        e = token_attributions(_weights_model, text, **kwargs)
        np.testing.assert_allclose(e.values[0], expected, atol=1e-12)
        assert e.efficiency_gap() < 1e-12
    sampled = token_attributions(_weights_model, text, exact_up_to=2)
    assert sampled.extra["exact"] == [False]
    np.testing.assert_allclose(sampled.error[0], 0.0, atol=1e-12)  # every marginal equals the weight


def test_sampled_shapley_is_efficient_and_within_its_error_of_the_exact_values(handmade_pipeline):
    text = "i love this great film but the awful boring cast made it a dull mess"
    assert len(text.split()) == 15
    exact = token_attributions(handmade_pipeline, text, exact_up_to=15)
    sampled = token_attributions(handmade_pipeline, text, budget=3000, seed=1)
    assert exact.extra["exact"] == [True] and sampled.extra["exact"] == [False]
    assert exact.efficiency_gap() < 1e-9 and sampled.efficiency_gap() < 1e-9
    assert sampled.extra["texts_evaluated"][0] <= 3000
    se = sampled.error[0]
    assert np.all(se >= 0) and se.max() > 0
    z = np.abs(sampled.values[0] - exact.values[0]) / np.maximum(se, 1e-9)
    assert np.mean(z < 3) >= 0.85, z
    assert np.max(np.abs(sampled.values[0] - exact.values[0])) < 0.02
    again = token_attributions(handmade_pipeline, text, budget=3000, seed=1)
    np.testing.assert_array_equal(again.values[0], sampled.values[0])


def test_occlusion_drops_one_token_at_a_time(handmade_pipeline):
    text = "i hate the great cast"
    e = token_attributions(handmade_pipeline, text, method="occlusion")
    full = handmade_pipeline.predict_proba([text])[:, 1][0]
    tokens = text.split()
    dropped = handmade_pipeline.predict_proba([" ".join(tokens[:j] + tokens[j + 1:]) for j in range(5)])[:, 1]
    np.testing.assert_allclose(e.values[0], full - dropped, atol=1e-12)
    assert e.extra["texts_evaluated"] == [7] and e.extra["model_calls"] == 1


def test_frame_html_and_one_text_explanation(handmade_pipeline):
    e = token_attributions(handmade_pipeline, ["i love it", "<script>alert('x')</script> awful"])
    frame = e.to_frame()
    assert list(frame.columns) == ["text_id", "position", "token", "attribution", "error"]
    assert frame["text_id"].tolist() == [0, 0, 0, 1, 1]
    assert frame["token"].tolist()[3] == "<script>alert('x')</script>"
    page = e.to_html()
    assert "<script" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "http" not in page and "<link" not in page and "<style" not in page
    love = e.values[0][1]
    assert f'title="{love:+.4g}">love</span>' in page
    assert 'rgba(22, 150, 60, 0.850); padding: 1px 3px; border-radius: 3px;" title="' in page  # largest: full green
    assert "rgba(210, 40, 40" in page  # "awful" lowers the output
    one = e.explanation(1)
    assert one.feature_names == ["<script>alert('x')</script>", "awful"]
    assert one.efficiency_gap() < 1e-9 and one.extra["text"].startswith("<script>")
    assert e._repr_html_() == page


def test_html_intensity_follows_the_size_of_the_attribution():
    e = TextExplanation("occlusion", "score", ["a b c"], [["a", "b", "c"]], [np.array([0.4, -0.2, 0.0])],
                        np.array([0.0]), np.array([0.2]), "empty text")
    page = e.to_html()
    assert 'rgba(22, 150, 60, 0.850)' in page and 'rgba(210, 40, 40, 0.425)' in page
    assert 'rgba(210, 40, 40, 0.000)' in page
    assert 'rgba(22, 150, 60, 0.425)' in e.to_html(scale=0.8)


def test_empty_and_single_token_texts(handmade_pipeline):
    e = token_attributions(handmade_pipeline, ["", "love"])
    assert e.tokens == [[], ["love"]]
    assert e.values[0].size == 0 and e.efficiency_gap() < 1e-12
    assert e.to_frame()["text_id"].tolist() == [1]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"method": "lime"}, "method='lime'"),
    ({"method": "integrated_gradients"}, "needs a torch module"),
    ({"output": "odds"}, "output='odds'"),
    ({"budget": 2}, "budget=2"),
    ({"class_index": 7}, "class_index=7"),
])
def test_bad_options_are_named(handmade_pipeline, kwargs, message):
    with pytest.raises(ExplainError, match=message):
        token_attributions(handmade_pipeline, "i love it", **kwargs)


def test_non_string_texts_are_refused(handmade_pipeline):
    with pytest.raises(ExplainError, match="text 1 is a int"):
        token_attributions(handmade_pipeline, ["fine", 3])


# --- torch embedding models ------------------------------------------------------------------

def _pooled_model(torch, n_tokens: int, dim: int, pooling: str):
    class Pooled(torch.nn.Module):
        """Token embeddings, pooled over the non-padding positions, then one linear output."""

        def __init__(self) -> None:
            super().__init__()
            self.embedding = torch.nn.Embedding(n_tokens, dim, padding_idx=0)
            self.out = torch.nn.Linear(dim, 1)

        def forward(self, ids):
            mask = (ids != 0).unsqueeze(-1).float()
            pooled = (self.embedding(ids) * mask).sum(dim=1)
            if pooling == "mean":
                pooled = pooled / mask.sum(dim=1).clamp(min=1)
            return self.out(pooled)
    return Pooled()


def _train(torch, model, ids, labels, epochs: int, lr: float = 0.02) -> None:
    X = torch.tensor(ids)
    y = torch.tensor(np.asarray(labels), dtype=torch.float32)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(epochs):
        for b in torch.randperm(len(X)).split(128):
            opt.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(X[b]).reshape(-1), y[b])
            loss.backward()
            opt.step()


def test_sum_pooled_model_gets_the_same_token_effects_from_all_three_methods(torch_one_thread):
    torch = torch_one_thread
    texts, labels = zip(*HANDMADE, strict=True)
    vocab = SimpleVocabulary.build(texts)
    torch.manual_seed(0)
    model = _pooled_model(torch, len(vocab), 8, "sum")
    _train(torch, model, vocab.encode_batch(list(texts)), labels, epochs=30)
    text = "I love this awful, boring film"
    ig = token_attributions(model, text, method="integrated_gradients", tokenizer=vocab)
    shap = token_attributions(model, text, tokenizer=vocab)
    occl = token_attributions(model, text, method="occlusion", tokenizer=vocab)
    assert ig.tokens[0] == ["i", "love", "this", "awful", ",", "boring", "film"]
    # the raw output is linear in the summed embeddings: each token adds w . e_token, and the padding adds nothing
    w = model.out.weight.detach().numpy()[0]
    e = model.embedding.weight.detach().numpy()
    oracle = e[vocab.encode(ig.tokens[0])] @ w
    for result in (ig, shap, occl):
        np.testing.assert_allclose(result.values[0], oracle, atol=1e-4)
    np.testing.assert_allclose(ig.expected_value, model.out.bias.detach().numpy(), atol=1e-6)
    assert ig.extra["completeness_delta_relative"][0] < 1e-4
    assert ig.output == "model output" and ig.baseline.startswith("padding embedding")
    assert oracle[1] > 0 > oracle[3], "the trained model reads 'love' as positive and 'awful' as negative"


def test_torch_model_errors_are_named(torch_one_thread):
    torch = torch_one_thread
    vocab = SimpleVocabulary.build(["a b c"])
    model = _pooled_model(torch, len(vocab), 4, "mean")
    with pytest.raises(ExplainError, match="needs tokenizer="):
        token_attributions(model, "a b")

    class Bag(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bag = torch.nn.EmbeddingBag(len(vocab), 4, padding_idx=0)
            self.out = torch.nn.Linear(4, 3)

        def forward(self, ids):
            return self.out(self.bag(ids))
    with pytest.raises(ExplainError, match="EmbeddingBag"):
        token_attributions(Bag(), "a b", method="integrated_gradients", tokenizer=vocab, class_index=0)
    with pytest.raises(ExplainError, match="pass class_index="):
        token_attributions(Bag(), "a b", tokenizer=vocab)
    assert len(token_attributions(Bag(), "a b", tokenizer=vocab, class_index=2).values[0]) == 2


# --- SST-2 (shared data) ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def sst2(shared_data):
    path = shared_data / "sst2"
    if not (path / "sst2_train.csv").is_file():
        pytest.skip(f"SST-2 not found at {path} (a clone without ../shared): real-data tests skipped")
    return pd.read_csv(path / "sst2_train.csv").iloc[:4000], pd.read_csv(path / "sst2_test.csv")


CLEAR = {"love": 1, "great": 1, "wonderful": 1, "awful": -1, "bad": -1, "worst": -1}
SENTENCES = [
    "i love this movie , it is great",
    "an awful , bad film",
    "the worst script i have seen",
    "a wonderful cast in a bad remake",
    "great actors can not save this awful story",
]


@pytest.fixture(scope="module")
def sst2_pipeline(sst2):
    train, test = sst2
    clf = make_pipeline(TfidfVectorizer(min_df=2), LogisticRegression(C=3, max_iter=1000))
    clf.fit(train["sentence"].tolist(), train["label"])
    assert clf.score(test["sentence"].tolist(), test["label"]) > 0.74
    return clf


def _signs_of_clear_words(e: TextExplanation) -> list[tuple[str, int, int]]:
    """(word, expected sign, attribution sign) for every clear sentiment word in the explanation."""
    return [(tok, CLEAR[tok], int(np.sign(v))) for tokens, values in zip(e.tokens, e.values, strict=True)
            for tok, v in zip(tokens, values, strict=True) if tok in CLEAR]


def test_sst2_pipeline_shapley_signs_efficiency_and_occlusion_agreement(sst2_pipeline):
    shap = token_attributions(sst2_pipeline, SENTENCES)
    assert all(shap.extra["exact"])
    assert shap.efficiency_gap() < 1e-9
    signs = _signs_of_clear_words(shap)
    assert len(signs) == 9 and all(want == got for _, want, got in signs), signs
    occl = token_attributions(sst2_pipeline, SENTENCES, method="occlusion")
    assert _signs_of_clear_words(occl) == signs


def test_sst2_long_sentences_are_sampled_and_still_efficient(sst2, sst2_pipeline):
    _, test = sst2
    long = [s for s in test["sentence"] if 25 <= len(s.split()) <= 30][:3]
    e = token_attributions(sst2_pipeline, long, budget=2000)
    assert e.extra["exact"] == [False, False, False]
    assert e.efficiency_gap() < 1e-9
    assert all(n <= 2000 for n in e.extra["texts_evaluated"])
    assert e.extra["model_calls"] == 3, "one batched predict_proba call a text"


def test_sst2_embedding_model_integrated_gradients(sst2, torch_one_thread):
    torch = torch_one_thread
    train, test = sst2
    vocab = SimpleVocabulary.build(train["sentence"], min_count=2)
    torch.manual_seed(0)
    model = _pooled_model(torch, len(vocab), 16, "mean")
    _train(torch, model, vocab.encode_batch(train["sentence"].tolist()), train["label"], epochs=3)
    with torch.no_grad():
        logits = model(torch.tensor(vocab.encode_batch(test["sentence"].tolist()))).reshape(-1).numpy()
    assert np.mean((logits > 0) == test["label"].to_numpy()) > 0.74
    real = test["sentence"].iloc[:12].tolist()
    for output in ("probability", "raw"):
        ig = token_attributions(model, SENTENCES + real, method="integrated_gradients", tokenizer=vocab,
                                output=output)
        assert set(ig.extra["steps"]) == {64}
        assert ig.extra["completeness_delta_relative"].max() < 0.01
        assert ig.efficiency_gap() == pytest.approx(np.abs(ig.extra["completeness_delta"]).max())
    ig = token_attributions(model, SENTENCES, method="integrated_gradients", tokenizer=vocab)
    signs = _signs_of_clear_words(ig)
    assert len(signs) == 9 and all(want == got for _, want, got in signs), signs
    shap = token_attributions(model, SENTENCES, tokenizer=vocab)
    assert _signs_of_clear_words(shap) == signs
    assert shap.efficiency_gap() < 1e-9
