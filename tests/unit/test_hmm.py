"""The HMM regime layer: recovery, no look-ahead, stable labels, bad data, storage."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from hmmlearn.hmm import GaussianHMM
from sklearn.metrics import adjusted_rand_score

from replay.server import load_bundle
from sentiment import hmm
from sentiment.config import load_config
from sentiment.history import compute_history, hmm_features

COLUMNS = ["log_return", "realized_volatility", "volume_ratio"]


def _synthetic(n=1500, seed=7):
    truth = GaussianHMM(3, covariance_type="diag", init_params="", params="")
    truth.n_features = 3
    truth.startprob_ = np.array([0.5, 0.3, 0.2])
    truth.transmat_ = np.array([[0.95, 0.03, 0.02], [0.03, 0.95, 0.02], [0.04, 0.04, 0.92]])
    truth.means_ = np.array([[-2.0, 0.0, 0.0], [2.0, 0.0, 1.0], [0.0, 4.0, -1.0]])
    truth.covars_ = np.array([[0.3, 0.3, 0.3], [0.3, 0.3, 0.3], [1.0, 0.5, 0.5]])
    x, states = truth.sample(n, random_state=seed)
    index = pd.date_range("2022-01-01", periods=n, freq="h", name="timestamp")
    return pd.DataFrame(x, columns=COLUMNS, index=index), states


@pytest.fixture(scope="module")
def synthetic_model():
    features, states = _synthetic()
    return hmm.train_regime_model(features, n_states=(2, 3, 4), random_state=0), features, \
        states


def test_bic_picks_the_true_number_of_states_and_the_filter_recovers_them(synthetic_model):
    model, features, states = synthetic_model
    assert model.n_states == 3
    assert model.bic[3] < model.bic[2] and model.bic[3] < model.bic[4]
    filtered = model.filter(features).argmax(axis=1)
    assert adjusted_rand_score(states, filtered) >= 0.8


def test_the_filter_never_looks_ahead(synthetic_model):
    model, features, _ = synthetic_model
    full = model.filter(features)
    n = 400
    assert np.array_equal(model.filter(features.iloc[:n]), full[:n])
    np.testing.assert_allclose(full.sum(axis=1), 1.0, atol=1e-12)
    # The filtered row t is hmmlearn's posterior given rows <= t (its last row is not
    # smoothed), while predict_proba over the whole series differs: it uses the future.
    reference = model.to_hmmlearn()
    z = (features[model.features].to_numpy() - model.center) / model.scale
    for t in (0, 1, 17, 250, 999, len(features) - 1):
        np.testing.assert_allclose(full[t], reference.predict_proba(z[:t + 1])[-1],
                                   atol=1e-9)
    smoothed = reference.predict_proba(z)
    assert np.abs(smoothed[:-1] - full[:-1]).max() > 1e-3


def test_incremental_filter_equals_the_batch_filter(synthetic_model):
    model, features, _ = synthetic_model
    f = hmm.ForwardFilter(model)
    rows = [f.update(features.iloc[t].to_numpy()).copy() for t in range(300)]
    np.testing.assert_allclose(np.array(rows), model.filter(features.iloc[:300]), atol=1e-12)


def test_a_missing_feature_is_marginalised_out(synthetic_model):
    model, features, _ = synthetic_model
    gap = features.iloc[:50].copy()
    gap.iloc[20, 1] = np.nan
    probs = model.filter(gap)
    prior = model.filter(features.iloc[:20])[-1] @ model.transmat
    # By hand: the Gaussian density of the features still present, per state.
    z = (gap.iloc[20][model.features].to_numpy(dtype=float) - model.center) / model.scale
    keep = np.isfinite(z)
    var = model.covars[:, keep]
    density = np.exp(-0.5 * ((z[keep] - model.means[:, keep]) ** 2 / var).sum(axis=1)) \
        / np.sqrt((2 * np.pi * var).prod(axis=1))
    expected = prior * density / (prior * density).sum()
    np.testing.assert_allclose(probs[20], expected, atol=1e-9)
    assert np.abs(probs[20] - prior).max() > 1e-3  # the remaining features still count


def test_a_row_without_features_takes_the_transition_step_only(synthetic_model):
    model, features, _ = synthetic_model
    gap = features.iloc[:50].copy()
    gap.iloc[20, :] = np.nan
    probs = model.filter(gap)
    before = model.filter(features.iloc[:20])[-1]
    np.testing.assert_allclose(probs[20], before @ model.transmat, atol=1e-12)


def test_an_optional_feature_missing_from_part_of_the_window_is_left_out(synthetic_model):
    _, features, _ = synthetic_model
    part = features.assign(funding_rate=np.where(np.arange(len(features)) < len(features) // 2,
                                                 0.0001, np.nan))
    model = hmm.train_regime_model(part, n_states=(2,), random_state=0, restarts=1)
    assert "funding_rate" not in model.features
    assert model.n_train == len(features) - features.isna().any(axis=1).sum()


def test_parameters_round_trip_through_plain_json(synthetic_model):
    model, features, _ = synthetic_model
    text = json.dumps(model.to_dict(), allow_nan=False)
    again = hmm.RegimeModel.from_dict(json.loads(text))
    assert again.labels == model.labels and again.n_states == model.n_states
    assert np.array_equal(again.filter(features), model.filter(features))


def test_training_is_deterministic_and_states_are_in_canonical_order():
    features, _ = _synthetic(n=800, seed=3)
    a = hmm.train_regime_model(features, random_state=0)
    b = hmm.train_regime_model(features, random_state=0)
    assert a.to_dict() == b.to_dict()
    returns = a.state_summary()["log_return_mean"].to_numpy()
    assert (np.diff(returns) >= 0).all()


def test_label_rule():
    std = np.array([0.01, 0.01, 0.01, 0.03])
    mean = np.array([0.002, -0.002, 0.0, -0.01])
    assert hmm.label_states(mean, std) == ["bull", "bear", "calm", "high_volatility"]
    # No state clearly more volatile: no high_volatility label.
    assert hmm.label_states(np.array([0.0, 0.0]), np.array([0.01, 0.012])) == ["calm", "calm"]
    # The rule reads the states, not their order.
    assert hmm.label_states(mean[::-1], std[::-1]) == ["high_volatility", "calm", "bear",
                                                       "bull"]


def test_ensemble_moves_confidence_only_with_an_hmm_label():
    out = hmm.ensemble_confidence(
        ["trending_up", "trending_up", "ranging", None],
        [0.6, 0.6, 0.5, 0.5], ["bull", "bear", None, "calm"], [0.8, 0.8, np.nan, 0.9], 0.5)
    assert out[0] == pytest.approx(0.6 + 0.4 * 0.5 * 0.8)  # agrees: up
    assert out[1] == pytest.approx(0.6 * (1 - 0.5 * 0.8))  # contradicts: down
    assert out[2] == 0.5 and out[3] == 0.5  # no HMM, or no regime: unchanged


def test_boundaries_are_mondays_at_midnight_after_the_first_bar():
    got = hmm.boundaries(pd.Timestamp("2022-03-01 05:00"), pd.Timestamp("2022-03-21"))
    assert got == [pd.Timestamp("2022-03-07").to_pydatetime(),
                   pd.Timestamp("2022-03-14").to_pydatetime(),
                   pd.Timestamp("2022-03-21").to_pydatetime()]


# ------------------------------------------------------------------------ bad data


def test_too_few_bars_is_a_clear_error():
    features, _ = _synthetic(n=60)
    with pytest.raises(hmm.HMMDataError, match="too few complete bars"):
        hmm.train_regime_model(features, symbol="BTCUSDT")


def test_a_constant_feature_is_named():
    features, _ = _synthetic(n=600)
    features["volume_ratio"] = 0.25
    with pytest.raises(hmm.HMMDataError, match="field volume_ratio: constant") as err:
        hmm.train_regime_model(features, symbol="BTCUSDT")
    assert err.value.symbol == "BTCUSDT"


def test_nan_rows_are_left_out_and_infinity_is_named():
    features, _ = _synthetic(n=900)
    holed = features.copy()
    holed.iloc[::3, 0] = np.nan  # a third of the rows incomplete: trained on the rest
    model = hmm.train_regime_model(holed, n_states=(3,))
    assert model.n_train == 600
    all_nan = features.copy()
    all_nan["log_return"] = np.nan
    with pytest.raises(hmm.HMMDataError, match="too few"):
        hmm.train_regime_model(all_nan)
    bad = features.copy()
    bad.iloc[5, 2] = np.inf
    with pytest.raises(hmm.HMMDataError, match="field volume_ratio: infinite"):
        hmm.train_regime_model(bad)


def test_a_boundary_without_enough_data_has_no_model_rather_than_a_broken_one():
    config = load_config()
    features, _ = _synthetic(n=300)
    assert hmm.train_at(features, features.index[-1], config, symbol="X", interval="60") \
        is None  # 300 < min_bars 500


def test_a_stored_model_with_non_finite_parameters_is_refused(synthetic_model):
    data = synthetic_model[0].to_dict()
    data["transmat"][0][0] = float("nan")
    with pytest.raises(hmm.HMMDataError, match="transmat"):
        hmm.RegimeModel.from_dict(data)


# ------------------------------------------------------------------ recorded real data


@pytest.fixture(scope="module")
def real_features():
    bundle = load_bundle()
    config = load_config()
    out = {}
    for symbol in ("BTCUSDT", "ETHUSDT"):
        candles = bundle["candles"][bundle["candles"].symbol == symbol].sort_values(
            "open_time").assign(interval="60")
        rows = compute_history(candles, bundle["funding"],
                               bundle["open_interest"].assign(interval="1h"), None, None,
                               config)
        out[symbol] = hmm_features(rows, candles["volume"].to_numpy(), config).iloc[30:]
    return out


def test_labels_stay_stable_across_retrains_on_overlapping_real_windows(real_features):
    agreement, high_vol = [], []
    for symbol, starts in (("BTCUSDT", (0, 4000)), ("ETHUSDT", (2000, 6000))):
        features = real_features[symbol]
        for start in starts:
            # Three models a week apart; compare their labels on the bars all three saw.
            labels = []
            for shift in (0, 168, 336):
                model = hmm.train_regime_model(features.iloc[start + shift:start + shift
                                                             + 1000])
                probs = model.filter(features.iloc[start + shift:start + 1000])
                labels.append(model.label_probabilities(probs).iloc[336 - shift:]
                              .idxmax(axis=1).to_numpy())
            for other in labels[1:]:
                agreement.append((labels[0] == other).mean())
                high_vol.append(((labels[0] == "high_volatility")
                                 == (other == "high_volatility")).mean())
    assert np.median(agreement) >= 0.75, agreement
    assert min(high_vol) >= 0.7, high_vol


def test_walk_forward_rows_use_only_models_trained_before_them(real_features):
    config = load_config()
    features = real_features["BTCUSDT"].iloc[:3000]
    models = [m for b in hmm.boundaries(features.index[0], features.index[-1])[:12]
              if (m := hmm.train_at(features, b, config, symbol="BTCUSDT", interval="60"))]
    assert len(models) >= 5
    cols = hmm.apply_models(features, models)
    by_id = {m.model_id: m for m in models}
    used = cols["hmm_model_id"].notna().to_numpy()
    assert used.sum() > 500
    for ts, model_id in zip(features.index[used], cols.loc[used, "hmm_model_id"], strict=True):
        model = by_id[model_id]
        assert model.train_end < ts  # trained on bars closed before this one
        assert model.train_start <= model.train_end
    # A prefix of the data gives the same HMM columns for its rows.
    n = 2000
    prefix = hmm.apply_models(features.iloc[:n],
                              [m for m in models if m.train_end < features.index[n - 1]])
    pd.testing.assert_frame_equal(prefix, cols.iloc[:n])


def test_compute_history_fills_the_hmm_columns_from_stored_model_rows(real_features):
    bundle = load_bundle()
    config = dataclasses.replace(load_config(), hmm=dataclasses.replace(
        load_config().hmm, ensemble_weight=0.3))
    features = real_features["BTCUSDT"]
    boundary = hmm.boundaries(features.index[0], features.index[-1])[10]
    model = hmm.train_at(features, boundary, config, symbol="BTCUSDT", interval="60")
    rows_table = pd.DataFrame([model.to_row(pd.Timestamp("2026-01-01").to_pydatetime())])
    candles = bundle["candles"][bundle["candles"].symbol == "BTCUSDT"].assign(interval="60")
    args = (candles, bundle["funding"], bundle["open_interest"].assign(interval="1h"), None,
            None, config)
    plain = compute_history(*args)
    with_models = compute_history(*args, hmm_models=rows_table)
    after = with_models["timestamp"] > pd.Timestamp(boundary)
    assert with_models.loc[after, "hmm_regime"].notna().all()
    assert with_models.loc[~after, "hmm_regime"].isna().all()
    assert set(with_models.loc[after, "hmm_regime"]) <= set(hmm.LABELS)
    probs = with_models.loc[after, "hmm_probability"].astype(float)
    assert ((probs > 0) & (probs <= 1)).all()
    # The ensemble moves the confidence only where an HMM label exists.
    a = plain["regime_confidence"].astype(float).to_numpy()
    b = with_models["regime_confidence"].astype(float).to_numpy()
    assert np.allclose(a[~after.to_numpy()], b[~after.to_numpy()], equal_nan=True)
    assert not np.allclose(a[after.to_numpy()], b[after.to_numpy()], equal_nan=True)
