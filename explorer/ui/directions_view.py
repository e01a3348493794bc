"""The PCA & directions page's controller: its settings (link names, defaults, widget keys), the preset
callback, what each view computes for its settings, and the words and tables drawn beside the figures.

The page (pages/directions.py) lays out; cached results live in explorer/ui/directions_cache.py, the maths in
explorer/analysis/directions.py and explorer/spectra, figures in explorer/figures/directions.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from explorer import wordlists
from explorer.analysis import word_vectors
from explorer.analysis.directions import DirectionAnalysis, components_for_share
from explorer.models.choice import ModelChoice
from explorer.spectra.projections import PCAResult
from explorer.ui.directions_cache import cached_directions
from explorer.ui.state import Choice, Flag, Float, Int, PageState, Text
from explorer.ui.verdicts import direction_verdict

VIEWS = {
    "tokens": "Hidden states of the text",
    "embedding": "Embedding matrix",
    "directions": "Semantic directions",
}
PROJECTIONS = {"pca": "PCA", "umap": "UMAP", "animate": "PCA, animated through layers"}
COLOURS = {"position": "position", "token": "token"}
DEFAULT_EMBEDDING_WORDS = "\n".join(wordlists.load_wordlist("embedding_words"))

# ------------------------------------------------------------------------------------------------ words

INTRO = (
    "Where concepts live in the hidden states. **Hidden states**: each token's vector after a layer, projected "
    "by PCA or UMAP, layer by layer. **Embedding matrix**: the input-embedding rows of a word list. "
    "**Semantic directions**: the first principal component of word-pair differences (he − she, king − queen, "
    "...), how much of their variance it explains against random pairs, and where other words fall on it."
)
STATE_HELP = (
    "Hidden state l is what the residual stream holds after l transformer blocks: 0 is the embedding output, "
    "l the output of block l − 1 (blocks, the layers of the other pages, count from 0)."
)
SKIP_FIRST_HELP = (
    "In causal models the first token's hidden state often has a huge norm (SmolLM2: over 100 times "
    "the others in its middle layers; it serves as an attention sink) and takes the first principal "
    "component on its own. Leaving it out shows the geometry of the rest."
)
CAUSAL_NOTE = (
    "Causal model: each token's hidden state depends only on itself and the tokens before it, so early "
    "positions carry little context."
)
UMAP_NOTE = "UMAP keeps neighbourhoods, not distances: its axes have no units, and the seed is fixed."
ANIMATION_NOTE = (
    "Press play or drag the slider under the chart. Each layer has its own principal components; "
    "their signs are matched to the previous layer so the picture moves smoothly."
)
UNIT_HELP = (
    "Scale every row to length 1 before PCA, so directions count and not lengths: otherwise a few "
    "long rows (often rare or very frequent tokens) take the first components."
)
DEBIAS_NOTE = (
    "Lean = mean over pairs of cos(word, first word) − cos(word, second word). After removing the "
    "direction each word's projection on it is zero (hover shows it, ~1e-17) and the lean all but "
    "vanishes: what remains is the part of the pairs' differences off the direction."
)
TOKENIZATION_NOTE = (
    "Static and contextual vectors average the word's sub-tokens. Each word is tokenized as it appears "
    "mid-sentence, with a leading space (byte-level BPE such as SmolLM2's turns ' nurse' into one token "
    "`Ġnurse` but 'nurse' into `n` + `urse`); WordPiece (MiniLM) ignores the space and marks pieces with "
    "`##`. Special tokens ([CLS], [SEP]) never enter static vectors; contextual vectors read the word's "
    "own tokens from the full template sentence; the sentence embedding averages all tokens, "
    "[CLS] and [SEP] included, as the model does."
)

# --------------------------------------------------------------------------------------------- settings


def _words_to_link(text: str) -> str:
    return ",".join(wordlists.parse_words(text))


def _pairs_to_link(text: str) -> str:
    return wordlists.pairs_to_param(wordlists.parse_pairs(text)[0])


PAGE = PageState("directions")
VIEW = Choice("view", "tokens", VIEWS)
PROJECTION = Choice("proj", "pca", PROJECTIONS, key="projection")
DIMS = Choice("dims", 2, (2, 3))
COLOUR = Choice("color", "position", COLOURS)
NEIGHBORS = Int("nn", 15, 2, 100, key="neighbors")
MIN_DIST = Float("md", 0.1, 0.0, 0.99, key="min_dist")
EMBEDDING_WORDS = Text(
    "ewords",
    DEFAULT_EMBEDDING_WORDS,
    from_link=wordlists.words_from_param,
    to_link=_words_to_link,
    key="embedding_words",
)
EMBEDDING_DIMS = Choice("dims", 2, (2, 3), key="embedding_dims")
EMBEDDING_UNIT = Flag("eunit", True, key="embedding_unit")
PRESET = Choice("preset", wordlists.DEFAULT_PRESET, wordlists.PRESETS)
TEMPLATE = Text("template", word_vectors.DEFAULT_TEMPLATE, from_link=lambda raw: raw or None)


@dataclass(frozen=True)
class ModelSettings:
    """The settings whose range or default depend on the model: the hidden state of the token view
    (``state``, 0 … n_layers), the one of contextual word vectors (``word_state``), and whether token 0 is
    left out (``skip_first``, on for causal models)."""

    state: Int
    word_state: Int
    skip_first: Flag
    method: Choice


def model_settings(n_layers: int, causal: bool) -> ModelSettings:
    """The model-dependent settings of a model with ``n_layers`` blocks. Hidden-state indices run 0..L (the
    old links called them ``layer``/``dlayer``; the aliases keep them opening the same view). A causal model
    has no sentence embedding, so the method picker leaves it out."""
    methods = [m for m in word_vectors.METHODS if not (m == "sentence" and causal)]
    return ModelSettings(
        state=Int("state", n_layers // 2, 0, n_layers, aliases=("layer",)),
        word_state=Int("dstate", n_layers // 2, 0, n_layers, aliases=("dlayer",), key="word_state"),
        skip_first=Flag("skip0", causal, key="skip_first"),
        method=Choice("method", word_vectors.DEFAULT_METHOD, methods),
    )


def text_settings(preset: str) -> tuple[Text, Text]:
    """The word-pair and target-word boxes, whose defaults are the preset's lists."""
    pairs = Text(
        "pairs",
        wordlists.preset_pairs_text(preset),
        from_link=wordlists.pairs_from_param,
        to_link=_pairs_to_link,
    )
    targets = Text(
        "words",
        wordlists.preset_targets_text(preset),
        from_link=wordlists.words_from_param,
        to_link=_words_to_link,
        key="targets",
    )
    return pairs, targets


def load_preset() -> None:
    """The preset picker's callback (it runs before the script): fill both boxes with the preset's lists."""
    preset = PAGE.bind(PRESET)
    pairs, targets = text_settings(preset)
    PAGE.set(pairs, pairs.default)
    PAGE.set(targets, targets.default)


# ------------------------------------------------------------------------------------- hidden states


def pca_caption(result: PCAResult) -> str:
    """The scree chart's caption: how many points, the first two components' share, the 90 % rank."""
    ratio = result.explained_variance_ratio
    return (
        f"{len(result.points)} tokens · the first two components hold {100 * ratio[:2].sum():.1f} % of "
        f"the variance; {components_for_share(ratio, 0.9)} components reach 90 %."
    )


def embedding_title(n_words: int, dims: int) -> str:
    return f"{n_words} words in the input-embedding space: first {dims} principal components"


# -------------------------------------------------------------------------------- semantic directions


def bad_pairs_message(bad: list[str]) -> str | None:
    """The warning for lines not read as pairs (the first eight of them), None when all were read."""
    if not bad:
        return None
    return "Not read as pairs (write two words a line, e.g. 'king queen'): " + "; ".join(bad[:8])


def directions(
    model_key: ModelChoice,
    pairs: list[tuple[str, str]],
    targets: list[str],
    method: str,
    word_state: int,
    template: str,
) -> DirectionAnalysis:
    """The direction of the chosen embedding; the hidden state matters only to contextual vectors (the
    others ignore it, so moving the slider does not recompute them). Raises ExplorerError on bad input."""
    layer = word_state if method == "contextual" else None
    return cached_directions(model_key, tuple(pairs), tuple(targets), method, layer, template)


@dataclass(frozen=True)
class Metric:
    """One st.metric: label, value and the help on hover (None: none)."""

    label: str
    value: str
    help: str | None = None


def direction_metrics(result: DirectionAnalysis) -> list[Metric]:
    """The four numbers above the charts: the share of PC1, the random pairs', their ratio, pairs used."""
    control = result.control
    verdict = direction_verdict(result)
    return [
        Metric(
            "Share of PC1",
            f"{100 * verdict.share:.1f} %",
            "How one-dimensional the concept is: variance of the pair differences along the direction, "
            "over their total variance.",
        ),
        Metric(
            f"Random pairs ({control.shares.size} draws)",
            f"{100 * verdict.control_mean:.1f} ± {100 * verdict.control_std:.1f} %",
            f"The same number of pairs ({control.n_pairs}) drawn at random from a shipped vocabulary of "
            f"neutral words (seed {control.seed}); mean ± standard deviation.",
        ),
        Metric(
            "Ratio to random",
            "–" if verdict.ratio is None else f"{verdict.ratio:.1f}×",
            f"The real share is {verdict.z:.1f} standard deviations above the random-pair mean.",
        ),
        Metric("Pairs used", str(len(result.pairs))),
    ]


def direction_caption(result: DirectionAnalysis) -> str:
    """The verdict in a sentence, with the embedding (and hidden state) it was read from."""
    where = f", hidden state {result.layer}" if result.layer is not None else ""
    method = word_vectors.METHOD_LABELS[result.method].lower()
    return f"The concept is {direction_verdict(result).sentence} ({method}{where})."


def chosen_state(result: DirectionAnalysis) -> int | None:
    """The hidden state to mark on the layer curve: the contextual vectors' one, else none."""
    return result.layer if result.method == "contextual" else None


def tokenization_table(result: DirectionAnalysis) -> pd.DataFrame:
    """Each word the direction used, its sub-tokens joined by ' · ', and their count."""
    return pd.DataFrame(
        [{"word": w, "sub-tokens": " · ".join(p), "count": len(p)} for w, p in result.pieces.items()]
    )
