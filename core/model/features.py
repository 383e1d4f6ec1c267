"""The text featuriser every classifier of a training run shares.

Three TF-IDF blocks: word unigrams and bigrams, character n-grams inside word boundaries (robust
to typos and inflections), and unordered pairs of content words in the same message, which
catch intents whose key words are not adjacent ("card ... never arrived"). On BANKING77 the word
pairs add about 0.4 points of accuracy to the other two blocks. The pair analyzer is a module
function, not a lambda, so pickled models load wherever `consumers` is importable.
"""

from __future__ import annotations

import re

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion

FEATURIZER = "tfidf-word1-2+char_wb2-5+wordpairs"

_WORD = re.compile(r"\w+")
# Function words that pair with everything and so tell nothing; negations stay in on purpose.
_FUNCTION_WORDS = frozenset(
    "a am an and are be can did do does for has have how i in is it m me my "  # noqa: SIM905
    "of on that the there this to was what when where why with you your".split()
)


def word_pairs(text: str) -> list[str]:
    """Every unordered pair of content words in `text`, as `a|b` with a <= b."""
    words = [w for w in _WORD.findall(text.lower()) if w not in _FUNCTION_WORDS]
    return [
        "|".join(sorted((first, second)))
        for i, first in enumerate(words)
        for second in words[i + 1 :]
    ]


def featurizer() -> FeatureUnion:
    return FeatureUnion(
        [
            (
                "word",
                TfidfVectorizer(
                    ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"(?u)\b\w+\b"
                ),
            ),
            (
                "char",
                TfidfVectorizer(
                    analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2
                ),
            ),
            ("pairs", TfidfVectorizer(analyzer=word_pairs, sublinear_tf=True, min_df=2)),
        ]
    )
