"""Token attributions for text classifiers: which words pushed the prediction up or down.

Three methods, one result (:class:`TextExplanation`):

- "shapley": the tokens of a text are the players; a coalition keeps its tokens
  (in order) and drops the others, and the model scores the shorter text.
  Exact enumeration up to ``exact_up_to`` tokens, permutation sampling with
  antithetic pairs beyond. Either way the attributions add up to
  f(text) - f(empty text).
- "occlusion": f(text) - f(text without token i), one token at a time.
- "integrated_gradients": for a torch embedding model, Integrated Gradients
  on the embedding layer from the padding embedding, summed per token.

Any model that scores a list of strings works with "shapley" and "occlusion"
(a scikit-learn ``TfidfVectorizer`` + ``LogisticRegression`` pipeline, a
function); a torch module that takes padded token ids works with all three,
given a :class:`SimpleVocabulary` (or any object with ``tokenize``, ``encode``
and ``pad_index``).

>>> from sklearn.feature_extraction.text import TfidfVectorizer
>>> from sklearn.linear_model import LogisticRegression
>>> from sklearn.pipeline import make_pipeline
>>> texts = ["good film", "bad film", "good fun", "bad plot", "good good", "bad bad"]
>>> clf = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(texts, [1, 0, 1, 0, 1, 0])
>>> e = token_attributions(clf, "a good film")
>>> e.tokens[0], bool(e.values[0][1] > 0), e.efficiency_gap() < 1e-12
(['a', 'good', 'film'], True, True)
"""

from __future__ import annotations

import html
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from vigil.core.explain.adapters import ExplainError, output_function
from vigil.core.explain.explanation import Explanation
from vigil.core.explain.gradients import (
    IG_METHODS,
    check_output,
    is_torch_module,
    module_place,
    needs_more_steps,
    output_text,
    relative_delta,
    require_torch,
    select_output,
)

TEXT_METHODS = ("shapley", "occlusion", "integrated_gradients")
WORD_PATTERN = r"[\w']+|[^\w\s]"


class SimpleVocabulary:
    """Lower-cased word and punctuation tokens and their ids: the tokeniser of a small embedding model.

    Id 0 is padding (``pad_index``), id 1 stands for unknown words.

    >>> vocab = SimpleVocabulary.build(["a fine film", "a dull film !"], min_count=2)
    >>> vocab.tokenize("A FINE film!"), vocab.encode(["a", "fine", "film"])
    (['a', 'fine', 'film', '!'], [2, 1, 3])
    >>> vocab.encode_batch(["film a", "a"]).tolist()
    [[3, 2], [2, 0]]
    """

    pad_token = "<pad>"
    unk_token = "<unk>"
    pad_index = 0
    unk_index = 1

    def __init__(self, words: Iterable[str], *, pattern: str = WORD_PATTERN, lowercase: bool = True) -> None:
        specials = (self.pad_token, self.unk_token)
        self.itos = [*specials, *(w for w in dict.fromkeys(words) if w not in specials)]
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        self.pattern = re.compile(pattern)
        self.lowercase = lowercase

    @classmethod
    def build(cls, texts: Iterable[str], *, min_count: int = 1, max_size: int | None = None,
              pattern: str = WORD_PATTERN, lowercase: bool = True) -> SimpleVocabulary:
        """The words seen at least ``min_count`` times in ``texts``, most frequent first (ties by first sight)."""
        probe = cls([], pattern=pattern, lowercase=lowercase)
        counts = Counter(token for text in texts for token in probe.tokenize(text))
        words = [w for w, c in counts.most_common() if c >= min_count]
        return cls(words[:max_size] if max_size is not None else words, pattern=pattern, lowercase=lowercase)

    def tokenize(self, text: str) -> list[str]:
        """The tokens of ``text`` (words with apostrophes, single punctuation marks)."""
        return self.pattern.findall(text.lower() if self.lowercase else text)

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Token ids (``unk_index`` for unknown tokens)."""
        return [self.stoi.get(t, self.unk_index) for t in tokens]

    def encode_batch(self, texts: Sequence[str], *, length: int | None = None) -> np.ndarray:
        """An (n, length) int64 array of ids, padded with ``pad_index`` (length: the longest text, at least 1)."""
        ids = [self.encode(self.tokenize(t)) for t in texts]
        return pad_ids(ids, self.pad_index, length)

    def __len__(self) -> int:
        return len(self.itos)

    def __repr__(self) -> str:
        return f"SimpleVocabulary({len(self)} tokens)"


def pad_ids(ids: Sequence[Sequence[int]], pad_index: int, length: int | None = None) -> np.ndarray:
    """Id lists as one (n, length) int64 array padded with ``pad_index`` (longer lists are cut)."""
    width = max(1, max((len(row) for row in ids), default=1)) if length is None else int(length)
    out = np.full((len(ids), width), pad_index, dtype=np.int64)
    for i, row in enumerate(ids):
        row = list(row)[:width]
        out[i, :len(row)] = row
    return out


@dataclass(frozen=True)
class TextExplanation:
    """Token attributions of ``output`` for several texts.

    For text i: ``tokens[i]`` (the players, in order), ``values[i]`` (one
    attribution per token), ``model_output[i]`` (f of the tokens joined by
    spaces), ``expected_value[i]`` (f of the empty text for shapley and
    occlusion, of the padding baseline for integrated gradients) and, for
    sampled Shapley values, ``error[i]`` (standard errors).
    """

    method: str
    output: str
    texts: list[str]
    tokens: list[list[str]]
    values: list[np.ndarray]
    expected_value: np.ndarray
    model_output: np.ndarray
    baseline: str
    error: list[np.ndarray | None] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.texts)

    def efficiency_gap(self) -> float:
        """Largest |sum of attributions + base value - model output| over the texts (not 0 for occlusion)."""
        gaps = [abs(float(np.sum(v)) + float(b) - float(f)) for v, b, f in zip(self.values, self.expected_value,
                                                                  self.model_output, strict=True)]
        return max(gaps, default=0.0)

    def to_frame(self) -> pd.DataFrame:
        """One row per (text, token): text_id, position, token, attribution, error (NaN when exact)."""
        rows = []
        for i, (tokens, values) in enumerate(zip(self.tokens, self.values, strict=True)):
            errors = self.error[i] if self.error is not None and self.error[i] is not None else None
            for j, (token, value) in enumerate(zip(tokens, values, strict=True)):
                rows.append((i, j, token, float(value), float(errors[j]) if errors is not None else math.nan))
        return pd.DataFrame(rows, columns=["text_id", "position", "token", "attribution", "error"])

    def explanation(self, i: int) -> Explanation:
        """Text ``i`` as a one-row :class:`Explanation` whose features are its tokens."""
        errors = self.error[i] if self.error is not None else None
        return Explanation(
            method=self.method, output=self.output, feature_names=list(self.tokens[i]),
            values=np.asarray(self.values[i], dtype=float)[None, :], expected_value=self.expected_value[i:i + 1],
            model_output=self.model_output[i:i + 1], baseline=self.baseline,
            error=None if errors is None else np.asarray(errors)[None, :],
            extra={"text": self.texts[i], "tokens": list(self.tokens[i])},
        )

    def to_html(self, *, scale: float | None = None) -> str:
        """Self-contained HTML: each token on a green (raises the output) or red (lowers it) background.

        Colour intensity is |attribution| / ``scale`` (default: the largest
        |attribution| of that text); hovering a token shows its attribution.

        >>> e = TextExplanation("occlusion", "probability", ["<b>ok</b> fine"], [["<b>ok</b>", "fine"]],
        ...                     [np.array([0.2, -0.1])], np.array([0.5]), np.array([0.6]), "empty text")
        >>> "&lt;b&gt;ok&lt;/b&gt;" in e.to_html() and "<b>" not in e.to_html()
        True
        """
        parts = ['<div class="vigil-token-attributions" style="font-family: sans-serif; line-height: 2;">',
                 '<p style="margin: 0 0 6px 0; color: #555; font-size: 0.85em;">'
                 f'{html.escape(self.method)} attributions of the {html.escape(self.output)}: '
                 '<span style="background-color: rgba(22, 150, 60, 0.5); padding: 0 3px;">raises</span> '
                 '<span style="background-color: rgba(210, 40, 40, 0.5); padding: 0 3px;">lowers</span></p>']
        for i, (tokens, values) in enumerate(zip(self.tokens, self.values, strict=True)):
            top = scale if scale is not None else float(np.max(np.abs(values), initial=0.0))
            spans = []
            for token, value in zip(tokens, values, strict=True):
                alpha = min(1.0, abs(float(value)) / top) * 0.85 if top > 0 else 0.0
                colour = "22, 150, 60" if value > 0 else "210, 40, 40"
                spans.append(f'<span style="background-color: rgba({colour}, {alpha:.3f}); padding: 1px 3px; '
                             f'border-radius: 3px;" title="{float(value):+.4g}">{html.escape(token)}</span>')
            parts.append(f'<p style="margin: 0 0 2px 0; font-size: 0.8em; color: #777;">text {i}: '
                         f'{html.escape(self.output)} {self.model_output[i]:.4g} '
                         f'(base {self.expected_value[i]:.4g})</p>')
            parts.append('<p style="margin: 0 0 12px 0;">' + " ".join(spans) + "</p>")
        parts.append("</div>")
        return "\n".join(parts)

    def _repr_html_(self) -> str:
        return self.to_html()

    def __repr__(self) -> str:
        return (f"TextExplanation(method={self.method!r}, output={self.output!r}, texts={len(self)}, "
                f"baseline={self.baseline!r})")


class _TextModel:
    """A model as a function of token lists: f(tokens) -> one number, counted."""

    def __init__(self, score: Callable[[list[list[str]]], np.ndarray], output: str, batch_size: int) -> None:
        self.score = score
        self.output = output
        self.batch_size = max(1, int(batch_size))
        self.calls = 0
        self.evaluated = 0

    def __call__(self, token_lists: list[list[str]]) -> np.ndarray:
        out = []
        for start in range(0, len(token_lists), self.batch_size):
            part = token_lists[start:start + self.batch_size]
            values = np.asarray(self.score(part), dtype=float).reshape(-1)
            if len(values) != len(part):
                raise ExplainError(f"the model returned {len(values)} numbers for {len(part)} texts")
            out.append(values)
            self.calls += 1
            self.evaluated += len(part)
        return np.concatenate(out) if out else np.zeros(0)


def _string_scorer(model: Any, output: str, class_index: Any) -> tuple[Callable[[list[str]], np.ndarray], str]:
    """f(list of strings) for a scikit-learn text pipeline or a plain function, and its meaning."""
    kind, score, text, _, _ = output_function(model, output=output, class_index=class_index)
    if kind is not None:
        return score, text
    raise ExplainError(f"cannot explain a {type(model).__name__} on text: give a fitted pipeline that takes a list "
                       "of strings, a torch module with tokenizer=, or a function of a list of strings")


def _tokenizer_function(tokenizer: Any) -> Callable[[str], list[str]]:
    if tokenizer is None:
        return str.split
    if hasattr(tokenizer, "tokenize"):
        return tokenizer.tokenize
    if callable(tokenizer):
        return tokenizer
    raise ExplainError(f"tokenizer= must be a function of a string or have a tokenize() method, "
                       f"not a {type(tokenizer).__name__}")


def _check_vocabulary(tokenizer: Any) -> None:
    if tokenizer is None or not all(hasattr(tokenizer, a) for a in ("tokenize", "encode", "pad_index")):
        raise ExplainError("a torch text model needs tokenizer=: a SimpleVocabulary, or an object with tokenize(), "
                           "encode() and pad_index matching the model's embedding")


def _torch_scorer(model: Any, tokenizer: Any, output: str, class_index: int | None) -> Callable[..., np.ndarray]:
    torch, _ = require_torch("a torch text model")
    device, _ = module_place(model, torch)

    def score(token_lists: list[list[str]]) -> np.ndarray:
        ids = pad_ids([tokenizer.encode(t) for t in token_lists], tokenizer.pad_index)
        with torch.no_grad():
            out = select_output(model(torch.tensor(ids, device=device)), output, class_index, torch)
        return out.double().cpu().numpy()
    return score


def _exact_shapley(tokens: list[str], f: _TextModel) -> tuple[np.ndarray, float, float]:
    p = len(tokens)
    masks = np.arange(2 ** p)
    bits = (masks[:, None] >> np.arange(p)[None, :]) & 1
    v = f([[t for t, keep in zip(tokens, row, strict=True) if keep] for row in bits])
    sizes = bits.sum(axis=1)
    weight = np.array([math.factorial(s) * math.factorial(p - s - 1) / math.factorial(p) for s in range(p)])
    phi = np.empty(p)
    for i in range(p):
        without = masks[bits[:, i] == 0]
        phi[i] = np.sum(weight[sizes[without]] * (v[without | (1 << i)] - v[without]))
    return phi, float(v[0]), float(v[-1])


def _sampled_shapley(tokens: list[str], f: _TextModel, budget: int,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float, float]:
    p = len(tokens)
    pairs = max(2, (int(budget) - 2) // (2 * (p - 1)))
    per_call = max(1, (f.batch_size - 2) // (2 * (p - 1)))
    estimates = np.empty((pairs, p))
    empty = full = 0.0
    for start in range(0, pairs, per_call):
        orders = [rng.permutation(p) for _ in range(min(per_call, pairs - start))]
        orders = [o for order in orders for o in (order, order[::-1])]
        # prefixes of length 1..p-1 in each order; lengths 0 and p are the shared empty and full texts
        prefixes = [[tokens[j] for j in sorted(order[:k])] for order in orders for k in range(1, p)]
        if start == 0:
            v = f([[], tokens, *prefixes])
            empty, full, v = float(v[0]), float(v[1]), v[2:]
        else:
            v = f(prefixes)
        v = v.reshape(len(orders), p - 1)
        v = np.hstack([np.full((len(orders), 1), empty), v, np.full((len(orders), 1), full)])
        marginal = np.empty((len(orders), p))
        for r, order in enumerate(orders):
            marginal[r, order] = np.diff(v[r])
        estimates[start:start + len(orders) // 2] = (marginal[0::2] + marginal[1::2]) / 2
    phi = estimates.mean(axis=0)
    error = estimates.std(axis=0, ddof=1) / math.sqrt(pairs)
    return phi, error, empty, full


def _find_embedding(model: Any, layer: Any, torch: Any) -> Any:
    if layer is not None:
        return layer
    bags = [m for m in model.modules() if isinstance(m, torch.nn.EmbeddingBag)]
    embeddings = [m for m in model.modules() if isinstance(m, torch.nn.Embedding)]
    if len(embeddings) == 1:
        return embeddings[0]
    if not embeddings and bags:
        raise ExplainError("the model pools its tokens inside an nn.EmbeddingBag, so gradients have no per-token "
                           "part: use method='shapley' or 'occlusion', or an nn.Embedding followed by pooling")
    if not embeddings:
        raise ExplainError("method='integrated_gradients' needs an nn.Embedding layer in the model (none found)")
    raise ExplainError(f"the model has {len(embeddings)} nn.Embedding layers: pass layer= (the token embedding)")


def token_attributions(
    model: Any,
    texts: str | Sequence[str],
    *,
    method: str = "shapley",
    tokenizer: Any = None,
    output: str = "auto",
    class_index: Any = None,
    budget: int = 4096,
    exact_up_to: int = 12,
    steps: int = 64,
    integration: str = "gausslegendre",
    tolerance: float | None = 0.01,
    max_steps: int = 1024,
    layer: Any = None,
    seed: int = 0,
    batch_size: int = 4096,
) -> TextExplanation:
    """Attribute a text model's output to the tokens of each text.

    ``model``: a fitted pipeline (or function) taking a list of strings, or a
    torch module taking an (n, length) LongTensor of ids padded with
    ``tokenizer.pad_index`` that ignores padding. ``tokenizer``: for string
    models, a function of a string (default: split on whitespace; the model
    scores the kept tokens joined by spaces); for torch models, a
    :class:`SimpleVocabulary`. ``output``/``class_index``: as in
    ``adapters.as_model_function`` (probability of the positive class by
    default for scikit-learn classifiers; the raw module output for torch
    unless ``output="probability"``).

    ``method="shapley"``: exact for texts of at most ``exact_up_to`` tokens,
    else about ``budget`` model evaluations of antithetic permutation
    sampling (``seed``), standard errors in ``error``. ``method="occlusion"``:
    one evaluation per token. ``method="integrated_gradients"`` (torch):
    ``steps`` (doubled up to ``max_steps`` while the completeness delta is
    above ``tolerance``), ``integration`` rule, ``layer`` (default: the one
    nn.Embedding); ``extra["completeness_delta"]`` per text.

    >>> e = token_attributions(lambda ts: [t.count("yes") - t.count("no") for t in ts], ["yes no yes"],
    ...                        method="occlusion")
    >>> e.values[0].tolist(), e.to_frame()["token"].tolist()
    ([1.0, -1.0, 1.0], ['yes', 'no', 'yes'])
    """
    if method not in TEXT_METHODS:
        raise ExplainError(f"method={method!r}: choose one of {list(TEXT_METHODS)}")
    check_output(output)
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise ExplainError(f"texts must be strings; text {bad[0]} is a {type(texts[bad[0]]).__name__}")
    if not 0 <= int(exact_up_to) <= 20:
        raise ExplainError(f"exact_up_to={exact_up_to}: exact enumeration costs 2**tokens model evaluations a text; "
                           "keep it between 0 and 20")
    if int(budget) < 4:
        raise ExplainError(f"budget={budget}: give at least 4 model evaluations a text")
    torch_model = is_torch_module(model)
    if torch_model:
        _check_vocabulary(tokenizer)
        cls = None if class_index is None else int(class_index)
        f = _TextModel(_torch_scorer(model, tokenizer, output, cls), output_text(output, cls), batch_size)
        tokenize = tokenizer.tokenize
    else:
        if method == "integrated_gradients":
            raise ExplainError("method='integrated_gradients' needs a torch module (gradients through an "
                               f"embedding); a {type(model).__name__} can use 'shapley' or 'occlusion'")
        score, text = _string_scorer(model, output, class_index)
        f = _TextModel(lambda token_lists: score([" ".join(t) for t in token_lists]), text, batch_size)
        tokenize = _tokenizer_function(tokenizer)
    token_lists = [list(tokenize(t)) for t in texts]
    if method == "integrated_gradients":
        return _integrated_gradients(model, texts, token_lists, tokenizer, f, output, cls, steps=steps,
                                     integration=integration, tolerance=tolerance, max_steps=max_steps, layer=layer)

    was_training = getattr(model, "training", None) if torch_model else None
    if torch_model:
        model.eval()
    try:
        values, errors, base, full, exact, evaluations = [], [], [], [], [], []
        rng = np.random.default_rng(seed)
        for tokens in token_lists:
            before = f.evaluated
            p = len(tokens)
            if method == "occlusion":
                v = f([[], tokens] + [tokens[:j] + tokens[j + 1:] for j in range(p)])
                values.append(v[1] - v[2:])
                errors.append(None)
                base.append(v[0])
                full.append(v[1])
            elif p <= max(1, int(exact_up_to)):
                phi, empty, whole = _exact_shapley(tokens, f)
                values.append(phi)
                errors.append(None)
                base.append(empty)
                full.append(whole)
                exact.append(True)
            else:
                phi, err, empty, whole = _sampled_shapley(tokens, f, budget, rng)
                values.append(phi)
                errors.append(err)
                base.append(empty)
                full.append(whole)
                exact.append(False)
            evaluations.append(f.evaluated - before)
    finally:
        if was_training is not None:
            model.train(was_training)
    extra: dict[str, Any] = {"model_calls": f.calls, "texts_evaluated": evaluations}
    if method == "shapley":
        extra["exact"] = exact
    return TextExplanation(
        method=method, output=f.output, texts=texts, tokens=token_lists, values=values,
        expected_value=np.asarray(base, dtype=float), model_output=np.asarray(full, dtype=float),
        baseline="empty text", error=errors if any(e is not None for e in errors) else None, extra=extra,
    )


def _integrated_gradients(model: Any, texts: list[str], token_lists: list[list[str]], tokenizer: Any,
                          f: _TextModel, output: str, cls: int | None, *, steps: int, integration: str,
                          tolerance: float | None, max_steps: int, layer: Any) -> TextExplanation:
    torch, attr = require_torch("method='integrated_gradients'")
    if integration not in IG_METHODS:
        raise ExplainError(f"integration={integration!r}: choose one of {list(IG_METHODS)}")
    if int(steps) < 2:
        raise ExplainError(f"steps={steps}: Integrated Gradients needs at least 2 steps")
    embedding = _find_embedding(model, layer, torch)
    device, _ = module_place(model, torch)
    calls = {"forward": 0}

    def forward(ids: Any) -> Any:
        calls["forward"] += 1
        return select_output(model(ids), output, cls, torch)

    values, deltas, used, f_x, f_b = [], [], [], [], []
    was_training = model.training
    model.eval()
    try:
        lig = attr.LayerIntegratedGradients(forward, embedding)
        for tokens in token_lists:
            ids = torch.tensor(pad_ids([tokenizer.encode(tokens)], tokenizer.pad_index), device=device)
            base_ids = torch.full_like(ids, tokenizer.pad_index)
            with torch.no_grad():
                fx = float(forward(ids)[0])
                fb = float(forward(base_ids)[0])
            n_steps = int(steps)
            while True:
                a = lig.attribute(ids, baselines=base_ids, n_steps=n_steps, method=integration)
                per_token = a.detach().double().sum(dim=-1)[0].cpu().numpy()[:len(tokens)]
                delta = float(a.detach().double().sum()) - (fx - fb)
                if (tolerance is None or n_steps * 2 > max_steps
                        or not needs_more_steps(np.array([delta]), np.array([fx]), np.array([fb]), tolerance)[0]):
                    break
                n_steps *= 2
            values.append(per_token)
            deltas.append(delta)
            used.append(n_steps)
            f_x.append(fx)
            f_b.append(fb)
    finally:
        model.train(was_training)
    delta = np.asarray(deltas, dtype=float)
    f_x_arr, f_b_arr = np.asarray(f_x, dtype=float), np.asarray(f_b, dtype=float)
    return TextExplanation(
        method="integrated_gradients", output=f.output, texts=texts, tokens=token_lists, values=values,
        expected_value=f_b_arr, model_output=f_x_arr,
        baseline=f"padding embedding ({getattr(tokenizer, 'pad_token', 'pad')!s} at every position)",
        extra={"model_calls": calls["forward"], "steps": np.asarray(used), "integration": integration,
               "completeness_delta": delta, "completeness_delta_relative": relative_delta(delta, f_x_arr - f_b_arr)},
    )
