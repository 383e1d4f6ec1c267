"""The fast scorer gives scikit-learn's own probabilities, for every kind of model it may meet."""

import numpy as np
import pytest
from test_training import synthetic

from triage.core.model.artifacts import load_models
from triage.core.model.scoring import Scorer, _Group
from triage.training.train import Options, train

TEXTS = [
    "my card never arrived",
    "please refund the purchase",
    "pin locked",
    "",  # no known token at all: a zero feature row
    "refund refund refund card pin",
    "zzz qqq",
]


def trained(tmp_path, calibration: str, out: str = "m", per_class: int = 20):
    options = Options(calibration=calibration, calibration_folds=3)
    data = synthetic(tmp_path, per_class)
    train(data, tmp_path / out, options=options, n_jobs=1, progress=False)
    return load_models(tmp_path / out)


def sklearn_scores(models, texts):
    return {
        m.label: m.pipeline.predict_proba(texts)[:, list(m.pipeline.classes_).index(1)]
        for m in models
    }


@pytest.mark.parametrize("calibration", ["none", "sigmoid"])
def test_linear_models_match_predict_proba(tmp_path, calibration):
    models = trained(tmp_path, calibration)
    scorer = Scorer(models)
    group = scorer._groups[0]
    assert group.labels == [m.label for m in models] and group.other == []  # the fast path
    fast = scorer.score(TEXTS)
    for label, expected in sklearn_scores(models, TEXTS).items():
        np.testing.assert_allclose(fast[label], expected, rtol=0, atol=1e-12)


def test_other_models_fall_back_to_scikit_learn(tmp_path):
    models = trained(tmp_path, "isotonic")
    scorer = Scorer(models)
    assert scorer._groups[0].labels == []  # isotonic calibration: not a linear head
    fast = scorer.score(TEXTS)
    for label, expected in sklearn_scores(models, TEXTS).items():
        np.testing.assert_allclose(fast[label], expected, rtol=0, atol=1e-12)


def test_classifiers_of_different_featurisers_score_apart(tmp_path):
    a = trained(tmp_path, "none", "a")
    b = trained(tmp_path, "sigmoid", "b", per_class=12)
    b[0].label = "card-b"  # same class, trained on other data: its own featuriser
    mixed = [a[0], b[0], a[1]]
    scorer = Scorer(mixed)
    assert len(scorer._groups) == 2
    scores = scorer.score(TEXTS)
    assert set(scores) == {"card", "card-b", a[1].label}
    np.testing.assert_allclose(
        scores["card-b"], sklearn_scores([b[0]], TEXTS)["card-b"], atol=1e-12
    )
    np.testing.assert_allclose(scores["card"], sklearn_scores([a[0]], TEXTS)["card"], atol=1e-12)


def test_empty_batch_and_single_text(tmp_path):
    models = trained(tmp_path, "none")
    scorer = Scorer(models)
    assert all(v.shape == (0,) for v in scorer.score([]).values())
    one = scorer.score(["my card never arrived"])
    assert all(v.shape == (1,) for v in one.values())
    assert max(one, key=lambda k: one[k][0]) == "card"


def test_weights_must_cover_the_features(tmp_path):
    models = trained(tmp_path, "none")
    for model in models:  # artifacts whose models do not fit their featuriser
        clf = model.pipeline.named_steps["clf"]
        clf.coef_ = clf.coef_[:, :-1]
    with pytest.raises(ValueError, match="weights for"):
        _Group(models)
