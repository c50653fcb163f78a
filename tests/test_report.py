"""Report module tests (no Spark): HTML self-containment, sections, numbers, escaping, PNGs, missing tables."""

import base64
import re

import numpy as np
import pandas as pd
import pytest

from uplift_spark.config import ReportConfig
from uplift_spark.report import (ReportData, build_report, plot_curves, plot_deciles, plot_psi, plot_realized,
                                 png_size, render_report, top_segments)
from uplift_spark.report.segments import SEGMENT_COLUMNS, _finish

ARMS = ("email_a", "email_b")
RUN = "run-1"


def simulate(n=4000, seed=3):
    """A small RCT: email_a helps when x0 is high, email_b harms when x1 is high (sleeping dogs)."""
    rng = np.random.default_rng(seed)
    x0, x1 = rng.normal(size=n), rng.normal(size=n)
    c0 = rng.choice(["north", "south", "west"], size=n)
    arm = rng.choice(["control", *ARMS], size=n)
    tau = {"email_a": 0.08 * (x0 > 0), "email_b": np.where(x1 > 0.5, -0.10, 0.05)}
    base = 0.15 + 0.03 * (c0 == "north")
    p = base + np.select([arm == a for a in ARMS], [tau[a] for a in ARMS], 0.0)
    y = (rng.random(n) < p).astype(float)
    frame = pd.DataFrame({"customer_id": [f"s{i:06d}" for i in range(n)], "arm": arm, "x0": x0, "x1": x1,
                          "c0": c0, "conversion": y})
    scores = {}
    for learner, noise in (("t", 0.06), ("x", 0.03)):
        scores[learner] = {a: tau[a] + rng.normal(scale=noise, size=n) for a in ARMS}
    return frame, tau, scores


def curve_rows(frame, score, arm, learner, points=21):
    mask = frame["arm"].isin([arm, "control"]).to_numpy()
    s, t = score[mask], (frame["arm"].to_numpy()[mask] == arm)
    y = frame["conversion"].to_numpy()[mask]
    order = np.argsort(-s, kind="stable")
    t, y = t[order], y[order]
    n_t, n_c = np.cumsum(t), np.cumsum(~t)
    y_t, y_c = np.cumsum(y * t), np.cumsum(y * ~t)
    idx = np.unique(np.linspace(0, len(t) - 1, points - 1).astype(int))
    rows = [dict(point=0, n=0, n_t=0, n_c=0, y_t=0.0, y_c=0.0, qini=0.0, uplift=0.0)]
    for j, i in enumerate(idx, start=1):
        q = y_t[i] - (y_c[i] * n_t[i] / n_c[i] if n_c[i] else 0.0)
        u = (y_t[i] / max(n_t[i], 1) - y_c[i] / max(n_c[i], 1)) * (i + 1)
        rows.append(dict(point=j, n=i + 1, n_t=int(n_t[i]), n_c=int(n_c[i]), y_t=float(y_t[i]),
                         y_c=float(y_c[i]), qini=float(q), uplift=float(u)))
    df = pd.DataFrame(rows)
    width = 2.0 * np.sqrt(df["n"].to_numpy() + 1.0) * 0.3
    for k in ("qini", "uplift"):
        df[f"{k}_low"], df[f"{k}_high"] = df[k] - width, df[k] + width
    return df.assign(run_id=RUN, learner=learner, arm=arm, outcome="conversion", split="test")


def decile_rows(frame, score, arm, learner, n_deciles=10):
    rows = []
    mask = frame["arm"].isin([arm, "control"]).to_numpy()
    s = score[mask]
    sub = frame[mask].assign(s=s)
    ranks = pd.qcut(-sub["s"].rank(method="first"), n_deciles, labels=False)
    sub = sub.assign(decile=ranks.to_numpy() + 1)  # decile 1 = highest predicted uplift
    for d, g in sub.groupby("decile"):
        yt, yc = g.loc[g["arm"] == arm, "conversion"], g.loc[g["arm"] == "control", "conversion"]
        rows.append(dict(run_id=RUN, learner=learner, arm=arm, outcome="conversion", split="test",
                         decile=int(d), n_t=len(yt), n_c=len(yc), predicted=float(g["s"].mean()),
                         observed=float(yt.mean() - yc.mean()),
                         se=float(np.sqrt(yt.var() / len(yt) + yc.var() / len(yc))),
                         treated_mean=float(yt.mean()), control_mean=float(yc.mean())))
    return rows


def fake_sections(with_monitoring=True):
    """Every table of a run as small pandas frames with the documented schemas."""
    frame, tau, scores = simulate()
    curves, deciles, metrics, imp = [], [], [], []
    for learner in ("t", "x"):
        for arm in ARMS:
            curves.append(curve_rows(frame, scores[learner][arm], arm, learner))
            deciles += decile_rows(frame, scores[learner][arm], arm, learner)
            q = 0.12 if learner == "x" else 0.07
            ate = 0.04 if arm == "email_a" else 0.01
            for metric, value, lo, hi in (("qini_auc", q, q - 0.05, q + 0.05), ("uplift_auc", q * 0.9, None, None),
                                          ("uplift_at_10", ate + 0.06, ate + 0.02, ate + 0.10),
                                          ("uplift_at_20", ate + 0.0234, ate + 0.0101, ate + 0.0367),
                                          ("ate", ate, ate - 0.01, ate + 0.01), ("n_t", 1300.0, None, None)):
                metrics.append(dict(run_id=RUN, learner=learner, arm=arm, outcome="conversion", split="test",
                                    metric=metric, value=value, ci_low=lo, ci_high=hi))
            metrics.append(dict(run_id=RUN, learner=learner, arm=arm, outcome="conversion", split="valid",
                                metric="qini_auc", value=0.01, ci_low=None, ci_high=None))
            for model, feats in (("mu1", {"x0": 30.0, "x1": 20.0, "c0": 5.0}), ("mu0", {"x0": 3.0, "x1": 25.0, "c0": 9.0})):
                total = sum(feats.values())
                for f, g in feats.items():
                    imp.append(dict(run_id=RUN, learner=learner, outcome="conversion", arm=arm, model=model,
                                    feature=f, gain=g, gain_share=g / total))
    seg_rows = []
    for arm in ARMS:
        for f, bins in (("x1", [(-9, 0.5, "≤ 0.5"), (0.5, 9, "> 0.5")]), ("c0", None)):
            groups = ([(lab, (frame[f] > lo) & (frame[f] <= hi)) for lo, hi, lab in bins] if bins else
                      [(v, frame[f] == v) for v in sorted(frame[f].unique())])
            for order, (label, m) in enumerate(groups):
                g = frame[m]
                yt, yc = g.loc[g["arm"] == arm, "conversion"], g.loc[g["arm"] == "control", "conversion"]
                seg_rows.append(dict(arm=arm, feature=f, order=float(order), segment=label, n=int(m.sum()),
                                     predicted=float(scores["x"][arm][m.to_numpy()].mean()), n_t=len(yt),
                                     n_c=len(yc), s_t=yt.sum(), q_t=(yt ** 2).sum(), s_c=yc.sum(),
                                     q_c=(yc ** 2).sum()))
    segments = _finish(pd.DataFrame(seg_rows))
    validation = pd.DataFrame([
        dict(run_id=RUN, check="srm", arm=None, column=None, metric=0.41, threshold=0.001, status="ok",
             message="arm shares match the allocation"),
        dict(run_id=RUN, check="smd", arm="email_b", column="x1", metric=0.13, threshold=0.1, status="warn",
             message="x1 is imbalanced <b>between</b> arms & control"),
    ])
    split_summary = pd.DataFrame([dict(run_id=RUN, split=s, arm=a, outcome="conversion", rows=r, share=sh,
                                       outcome_mean=0.15) for s, r, sh in (("train", 2400, 0.6), ("test", 800, 0.2))
                                  for a in ("control",) + ARMS])
    decision_summary = pd.DataFrame([
        dict(run_id=RUN, campaign_id="spring", kind="allocation", bucket="policy", action="email_a", customers=812,
             cost=406.0, expected_uplift=61.3, expected_value=201.5, constraint=None, used=None, limit=None,
             multiplier=None),
        dict(run_id=RUN, campaign_id="spring", kind="allocation", bucket="holdout", action="none", customers=40,
             cost=0.0, expected_uplift=0.0, expected_value=0.0, constraint=None, used=None, limit=None,
             multiplier=None),
        dict(run_id=RUN, campaign_id="spring", kind="constraint", bucket=None, action=None, customers=None,
             cost=None, expected_uplift=None, expected_value=None, constraint="budget", used=406.0, limit=500.0,
             multiplier=0.8)])
    data = ReportData(run_id=RUN, control_arm="control", treatment_arms=ARMS, outcome="conversion",
                      outcome_types={"conversion": "binary"}, curves=pd.concat(curves, ignore_index=True),
                      deciles=pd.DataFrame(deciles), metrics=pd.DataFrame(metrics), feature_importance=pd.DataFrame(imp),
                      segments=segments, validation=validation, split_summary=split_summary,
                      decision_summary=decision_summary, segment_learner="x")
    if with_monitoring:
        data.drift_features = pd.DataFrame([
            dict(run_id=RUN, batch_id="b1", feature=f, psi=p, ks=p / 2, null_share=0.0, unseen_share=0.0,
                 status=s) for f, p, s in (("x0", 0.41, "alert"), ("x1", 0.15, "warn"), ("c0", 0.01, "ok"))])
        data.realized_uplift = pd.DataFrame([
            dict(run_id=RUN, batch_id="b1", batch_time=pd.Timestamp("2026-01-01"), campaign_id="spring",
                 action="email_a", outcome="conversion", n_treated=800, n_holdout=120, mean_treated=0.2,
                 mean_holdout=0.139, realized_uplift=0.061, se=0.025, ci_low=0.012, ci_high=0.110, dof=150.0,
                 expected_uplift=0.072, status="ok", message="within interval")])
    return data


# ----------------------------------------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def rendered():
    data = fake_sections()
    return data, render_report(data, ReportConfig(title="Spring <campaign> & co"))


def _pngs_in(html_text):
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html_text)]


def test_html_is_self_contained(rendered):
    _, rep = rendered
    html_text = rep.html
    assert html_text.startswith("<!DOCTYPE html>")
    # nothing is fetched: every src is an embedded PNG, every href an in-page anchor, no scripts/links
    srcs = re.findall(r'\ssrc="([^"]*)"', html_text)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    hrefs = re.findall(r'\shref="([^"]*)"', html_text)
    assert hrefs and all(h.startswith("#") for h in hrefs)
    for banned in ("<script", "<link", "<iframe", "http://", "https://", "url("):
        assert banned not in html_text.lower()
    # the figures embedded are exactly the ones returned for writing next to the HTML
    assert len(_pngs_in(html_text)) == len(rep.figures) == 9
    assert sorted(_pngs_in(html_text), key=len) == sorted(rep.figures.values(), key=len)


def _pixels(png):
    """Decoded RGB pixels (H, W, 3) in [0, 1]: proves the bytes are a whole, readable PNG."""
    import io

    from matplotlib.image import imread

    return imread(io.BytesIO(png), format="png")[..., :3]


def _ink(rgb):
    """Share of pixels that are not (near) white: a blank or failed figure is ~0."""
    return float((rgb.min(axis=2) < 0.9).mean())


def _near(rgb, hex_color, tol=0.12):
    """Number of pixels within ``tol`` of ``hex_color`` in every channel."""
    target = np.array([int(hex_color[i:i + 2], 16) / 255.0 for i in (1, 3, 5)])
    return int((np.abs(rgb - target).max(axis=2) < tol).sum())


def test_embedded_pngs_are_valid_images(rendered):
    _, rep = rendered
    embedded = _pngs_in(rep.html)
    assert sorted(embedded, key=len) == sorted(rep.figures.values(), key=len)
    for name, png in rep.figures.items():
        size = png_size(png)
        rgb = _pixels(png)
        assert rgb.shape[:2] == (size["height"], size["width"]), name   # header matches the decoded image
        assert size["width"] >= 300 and size["height"] >= 100, name
        assert 0.01 < _ink(rgb) < 0.9, name                              # drawn on, not blank, not solid
        assert png.endswith(b"IEND\xaeB`\x82"), name
    curves = [png for name, png in rep.figures.items() if "curves" in name]
    assert curves and all(_near(_pixels(png), "#1f6fb2") > 300 for png in curves)  # first learner's line
    # HTML the report builds is not escaped a second time (customer values are, see the escaping test)
    assert "&lt;p&gt;" not in rep.html and "&lt;h3&gt;" not in rep.html and "<h3>email_a</h3>" in rep.html
    with pytest.raises(ValueError):
        png_size(b"GIF89a" + b"\0" * 30)


def test_every_section_has_its_heading(rendered):
    _, rep = rendered
    for heading in ("Key findings", "Qini and uplift curves", "Predicted vs observed uplift by decile",
                    "Model quality metrics", "Who responds, who is harmed", "Data quality and split",
                    "Targeting decisions", "Monitoring", "Glossary", "Feature drift",
                    "Realized vs expected uplift", "What the metrics mean"):
        assert f">{heading}" in rep.html or heading in rep.html, heading
    assert rep.html.count("<figcaption>") == len(rep.figures)


def test_summary_sentence_uses_best_learner_and_numbers(rendered):
    data, rep = rendered
    m = data.metrics
    # the X-learner has the higher qini_auc on test, so the headline quotes it
    row = m[(m.learner == "x") & (m.arm == "email_a") & (m.split == "test") & (m.metric == "uplift_at_20")].iloc[0]
    ate = m[(m.learner == "x") & (m.arm == "email_a") & (m.split == "test") & (m.metric == "ate")].iloc[0]
    first = rep.summary[0]
    assert "top 20%" in first and "<b>email_a</b>" in first and "X-learner" in first
    assert f"+{1000 * row.value:.1f} conversion per 1000" in first                    # +63.4
    assert f"{1000 * row.ci_low:.1f} to {1000 * row.ci_high:.1f}" in first             # 50.1 to 76.7
    assert f"+{1000 * (row.value - ate.value):.1f} per 1000" in first                  # +23.4 vs random
    assert rep.summary[0] in rep.html
    # harmed bottom deciles of email_b (true effect -0.10 when x1 > 0.5) are called out, email_a's are not
    assert any("Sleeping dogs for email_b" in s for s in rep.summary)
    assert not any("Sleeping dogs for email_a" in s for s in rep.summary)
    assert any("1 warn out of 2" in s for s in rep.summary)
    assert any("x0" in s and "Drift" in s for s in rep.summary)
    assert any("812 customers with email_a" in s and "406 of a budget of 500" in s for s in rep.summary)
    assert any("+0.061" in s and "+0.072" in s for s in rep.summary)


def test_tables_show_input_values(rendered):
    data, rep = rendered
    html_text = rep.html
    assert "0.12<br><span class=\"ci\">[0.07 to 0.17]</span>" in html_text    # x-learner qini_auc with CI
    assert "Uplift at top 10%" in html_text and "Qini AUC (normalized)" in html_text
    assert "2,400" in html_text and "60.0%" in html_text                       # split summary rows/share
    assert "0.41" in html_text                                                   # PSI of x0
    seg = data.segments
    harmed = seg[(seg.arm == "email_b") & (seg.feature == "x1") & (seg.segment == "> 0.5")].iloc[0]
    assert harmed.observed < 0
    assert f"{harmed.observed:.3g}" in html_text and "harmed — avoid" in html_text
    # the decisions section lists the business rules with use, limit, multiplier and whether they bind
    section = html_text[html_text.index(">Constraints<"):]
    assert "budget" in section and "406" in section and "500" in section and "yes" in section


def test_values_are_escaped():
    data = fake_sections(with_monitoring=False)
    evil = '<img src=x onerror="alert(1)">'
    data.validation = data.validation.assign(message=[evil, "a & b < c"])
    data.treatment_arms = ("email_a", evil)
    for name in ("curves", "deciles", "metrics", "feature_importance", "segments"):
        df = getattr(data, name)
        setattr(data, name, df.assign(arm=df["arm"].replace("email_b", evil)))
    data.run_id = "<run>"
    html_text = build_report(data, ReportConfig(title="<b>T</b>"))
    assert evil not in html_text and "<run>" not in html_text and "<b>T</b>" not in html_text
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html_text
    assert "a &amp; b &lt; c" in html_text and "&lt;b&gt;T&lt;/b&gt;" in html_text
    assert "onerror=\"" not in html_text


def test_missing_tables_give_notes_not_errors():
    data = ReportData(run_id="r0", notes={"decision_summary": "Not available: table 'decision_summary' does "
                                                              "not exist yet (run 'uplift-spark decide')."})
    rep = render_report(data, ReportConfig())
    assert rep.figures == {}
    assert "No evaluation results yet" in rep.html
    for table in ("uplift_curves", "uplift_by_decile", "uplift_metrics", "validation_report", "split_summary",
                  "drift_features", "realized_uplift", "feature_importance", "predictions"):
        assert f"table &#x27;{table}&#x27;" in rep.html, table
    assert "run &#x27;uplift-spark decide&#x27;" in rep.html
    # partial: only metrics, no curves for the chosen split
    part = fake_sections(with_monitoring=False)
    part.curves = part.curves.assign(split="valid")    # curves exist, but not for the shown split (test)
    part.drift_features = pd.DataFrame({"feature": ["x0"], "ks": [0.2]})   # tolerated: no psi column
    html_text = build_report(part)
    assert "No curves for outcome" in html_text and "no &#x27;feature&#x27;/&#x27;psi&#x27;" in html_text


def test_monitoring_tolerates_short_column_names():
    data = fake_sections()
    data.realized_uplift = pd.DataFrame({"action": ["email_a", "email_b"], "realized": [0.05, -0.01],
                                         "ci_low": [0.01, -0.05], "ci_high": [0.09, 0.03], "expected": [0.04, 0.02]})
    data.drift_features = pd.DataFrame({"batch_id": ["b1", "b1", "b2", "b2"], "feature": ["x0", "x1"] * 2,
                                        "psi": [0.01, 0.02, 0.5, 0.03]})
    rep = render_report(data)
    assert any("x0" in s and "changed strongly" in s for s in rep.summary)   # the later batch b2 is used
    assert "batch <b>b2</b>" in rep.html
    assert any("email_b" in s and "−0.01" in s for s in rep.summary)


def test_plot_functions_return_pngs():
    from uplift_spark.report.plots import PALETTE

    data = fake_sections()
    curves = data.curves[data.curves.split == "test"]
    pngs = {"qini": plot_curves(curves, "qini", ARMS, "conversion"), "uplift": plot_curves(curves, "uplift"),
            "deciles": plot_deciles(data.deciles[data.deciles.learner == "x"], ARMS),
            "psi": plot_psi(data.drift_features, 0.1, 0.25),
            "realized": plot_realized(data.realized_uplift.rename(columns={"realized_uplift": "realized"}))}
    for name, png in pngs.items():
        size = png_size(png)
        rgb = _pixels(png)
        assert rgb.shape[:2] == (size["height"], size["width"]), name
        assert size["width"] > 300 and size["height"] > 100, name
        assert 0.01 < _ink(rgb) < 0.9, name
    # the curves are drawn in the learners' colours (one panel per arm, two learners) ...
    qini = _pixels(pngs["qini"])
    assert _near(qini, PALETTE[0]) > 300 and _near(qini, PALETTE[1]) > 300
    # ... and follow the data: an arm without rows gets the "no curve" panel instead of lines
    one_arm = _pixels(plot_curves(curves[curves.arm == ARMS[0]], "qini", ARMS, "conversion"))
    assert _near(one_arm, PALETTE[0]) < _near(qini, PALETTE[0])
    with pytest.raises(ValueError, match="kind"):
        plot_curves(curves, "gain")


def test_segment_stats_match_numpy():
    rng = np.random.default_rng(0)
    yt, yc = rng.random(57) < 0.3, rng.random(41) < 0.2
    agg = pd.DataFrame([dict(arm="a", feature="f", order=0.0, segment="s", n=98, predicted=0.05,
                             n_t=57, s_t=yt.sum(), q_t=yt.sum(), n_c=41, s_c=yc.sum(), q_c=yc.sum())])
    out = _finish(agg).iloc[0]
    assert list(_finish(agg).columns) == list(SEGMENT_COLUMNS)
    assert out.observed == pytest.approx(yt.mean() - yc.mean(), rel=1e-12)
    welch = np.sqrt(yt.var(ddof=1) / 57 + yc.var(ddof=1) / 41)
    assert out.se == pytest.approx(welch, rel=1e-12)


def test_top_segments_are_disjoint_and_filtered():
    seg = pd.DataFrame({"arm": "a", "feature": "f", "segment": [f"s{i}" for i in range(9)], "order": range(9),
                        "n": 500, "predicted": np.linspace(0.1, -0.06, 9), "n_t": [100] * 8 + [5],
                        "n_c": 100, "y_t": 0.2, "y_c": 0.15, "observed": np.linspace(0.08, -0.09, 9),
                        "se": 0.02})
    best, worst = top_segments(seg, "a", k=3, min_rows=30)
    assert best["segment"].tolist() == ["s0", "s1", "s2"]
    assert worst["segment"].tolist() == ["s7", "s6", "s5"]          # s8 has only 5 treated: excluded
    assert not set(best["segment"]) & set(worst["segment"])
    assert worst.iloc[0]["harmed"] and not best["harmed"].any()
    b2, w2 = top_segments(seg.head(3), "a", k=5, min_rows=30)     # few segments: split in halves
    assert len(b2) == 2 and len(w2) == 1
