"""Small multi-arm RCT with known effects for the learner tests (NumPy, independent of the package)."""

import numpy as np
import pandas as pd


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def make_rct(n=6000, shares=(0.4, 0.3, 0.3), seed=0, valid_share=0.2, test_share=0.2):
    """Arms control/email_a/email_b; binary ``conversion`` and continuous ``revenue``.

    email_a helps where x0 > 0 and harms where x0 < 0 ("sleeping dogs"); email_b helps category "b".
    ``true_uplift_<arm>`` is the effect on P(conversion); ``true_uplift_revenue_<arm>`` on revenue.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    c0 = rng.choice(np.array(["a", "b", "c"]), size=n, p=[0.5, 0.3, 0.2])
    arms = np.array(["control", "email_a", "email_b"])
    arm = rng.choice(arms, size=n, p=list(shares))
    base = -0.8 + 0.6 * x[:, 1] - 0.4 * (c0 == "c")
    delta = {"control": np.zeros(n), "email_a": 1.5 * x[:, 0], "email_b": 1.2 * (c0 == "b") - 0.2}
    p = {a: _sigmoid(base + delta[a]) for a in arms}
    p_arm = np.select([arm == a for a in arms], [p[a] for a in arms])
    conversion = (rng.random(n) < p_arm).astype(int)
    rev_mean = {a: 5.0 + 2.0 * x[:, 1] + (3.0 * x[:, 0] if a == "email_a" else 0.0) + (4.0 * (c0 == "b") if a == "email_b" else 0.0) for a in arms}
    rev_arm = np.select([arm == a for a in arms], [rev_mean[a] for a in arms])
    revenue = np.maximum(rev_arm + rng.normal(scale=1.0, size=n), 0.0)
    u = rng.random(n)
    split = np.where(u < valid_share, "valid", np.where(u < valid_share + test_share, "test", "train"))
    pdf = pd.DataFrame({
        "customer_id": [f"s{i:07d}" for i in range(n)], "arm": arm,
        "x0": x[:, 0], "x1": x[:, 1], "x2": x[:, 2], "c0": c0,
        "conversion": conversion, "revenue": revenue, "split": split,
    })
    for a in arms[1:]:
        pdf[f"true_uplift_{a}"] = p[a] - p["control"]
        pdf[f"true_uplift_revenue_{a}"] = rev_mean[a] - rev_mean["control"]
    total = sum(shares)
    for a, s in zip(arms, shares):
        pdf[f"propensity_{a}"] = s / total
    return pdf


def encode(pdf, model):
    """Independent pandas encoding (NaN for unseen), mirroring the JSON encoding saved with the model."""
    cols = []
    for f in model.features:
        if f in model.encoding.categorical:
            codes = {v: float(i) for i, v in enumerate(model.encoding.categories[f])}
            cols.append(pdf[f].map(codes).astype(float).to_numpy())
        else:
            cols.append(pdf[f].astype(float).to_numpy())
    return np.column_stack(cols)


def write_run(spark, ctx, pdf, run_id):
    """Write ``pdf`` (make_rct's frame) as the run's experiment_log and splits (fold 0), as ingest and split
    would, so a test can call the train stage directly."""
    from pyspark.sql import functions as F

    log_df = spark.createDataFrame(pdf.drop(columns=["split"])).withColumn("run_id", F.lit(run_id))
    ctx.store.write(log_df, "experiment_log", run_id)
    splits = spark.createDataFrame(pdf[["customer_id", "split"]]).select(
        F.lit(run_id).alias("run_id"), "customer_id", "split", F.lit(0).alias("fold"))
    ctx.store.write(splits, "splits", run_id)
