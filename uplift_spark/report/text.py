"""Words for marketers: number formatting, learner names, metric explanations and the glossary.

Kept apart from the HTML layout so the explanations can be reviewed (and translated) in one place.
"""

from __future__ import annotations

import math
import re
from typing import Optional

_LEARNERS = {"t": "T-learner", "x": "X-learner", "s": "S-learner", "r": "R-learner", "dr": "DR-learner"}


def learner_name(code) -> str:
    """``'x'`` → ``'X-learner'``; unknown codes are shown as given."""
    return _LEARNERS.get(str(code).lower(), str(code))


def is_missing(value) -> bool:
    if value is None:
        return True
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return False


def fmt(value, digits: int = 3) -> str:
    """Readable number: thousands separators for big values, ``digits`` significant digits otherwise."""
    if is_missing(value):
        return "–"
    if isinstance(value, str):
        return value
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    if x == int(x) and abs(x) >= 1 and abs(x) < 1e15:
        return f"{int(x):,}"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if x == 0:
        return "0"
    text = f"{x:.{digits}g}"
    if "e" in text:
        text = f"{x:.{digits + 3}f}".rstrip("0").rstrip(".")
    return text


def fmt_signed(value, digits: int = 3) -> str:
    text = fmt(value, digits)
    if not is_missing(value) and float(value) > 0:
        return "+" + text
    return text.replace("-", "−")


def fmt_ci(low, high, digits: int = 3) -> str:
    if is_missing(low) or is_missing(high):
        return ""
    return f"{fmt(low, digits)} to {fmt(high, digits)}"


def fmt_share(value) -> str:
    if is_missing(value):
        return "–"
    return f"{100.0 * float(value):.1f}%"


_TOPK = re.compile(r"^uplift_at_(\d+)(?:[._](\d+))?$")


def top_k_of(metric: str) -> Optional[float]:
    """``'uplift_at_20'`` → 20.0, ``'uplift_at_12_5'`` → 12.5 (the k of an uplift@k metric), else ``None``."""
    m = _TOPK.match(str(metric))
    if not m:
        return None
    return float(m.group(1) + ("." + m.group(2) if m.group(2) else ""))


METRIC_HELP = {
    "qini_auc": (
        "Qini AUC (normalized)",
        "How much better than random the model orders customers, on a 0–1 scale: 0 = no better than "
        "picking customers at random, 1 = the best possible ordering for this data, below 0 = worse than "
        "random. Values around 0.05–0.3 are common and useful in marketing.",
    ),
    "uplift_auc": (
        "Uplift AUC (normalized)",
        "The same idea as the Qini AUC, measured on the uplift curve (the effect among the targeted "
        "customers times how many are targeted). 0 = random, 1 = perfect.",
    ),
    "qini_coefficient": (
        "Qini coefficient",
        "Area between the model's Qini curve and the random-targeting line, in outcome units × share "
        "targeted. Larger is better; 0 means the ranking adds nothing over random targeting.",
    ),
    "auuc": (
        "AUUC",
        "Area under the uplift curve per customer squared: roughly the average extra outcome per customer "
        "over all possible campaign sizes. Compare learners on the same data; larger is better.",
    ),
    "qini_area": ("Qini area over random", "Area between the Qini curve and the random line, in raw units "
                                           "(outcomes × customers). Larger is better; also for revenue-type "
                                           "outcomes, where the normalized AUCs are not defined."),
    "uplift_area": ("Uplift area over random", "Area between the uplift curve and the random line, in raw "
                                               "units. Larger is better."),
    "ate": (
        "Average effect (ATE)",
        "Treated average minus control average over everyone: what contacting a random customer adds. "
        "This is what random targeting earns per contacted customer.",
    ),
    "n": ("Customers", "Number of customers in this comparison (treated + control)."),
    "n_t": ("Treated customers", "Customers who received this treatment."),
    "n_c": ("Control customers", "Customers who received nothing (the control group)."),
    "n_treated": ("Treated customers", "Customers who received this treatment."),
    "n_control": ("Control customers", "Customers who received nothing (the control group)."),
}

UPLIFT_AT_K_HELP = (
    "Uplift at top {k}%",
    "Among the {k}% of customers the model ranks highest: treated average minus control average. It "
    "is the extra outcome per contacted customer if you only contact that top {k}%. Compare it with "
    "the average effect (ATE): if it is clearly higher, the model finds the customers worth contacting.",
)


def metric_label(metric: str) -> str:
    k = top_k_of(metric)
    if k is not None:
        return UPLIFT_AT_K_HELP[0].format(k=fmt(k))
    return METRIC_HELP.get(metric, (metric, ""))[0]


def metric_help(metric: str) -> str:
    k = top_k_of(metric)
    if k is not None:
        return UPLIFT_AT_K_HELP[1].format(k=fmt(k))
    return METRIC_HELP.get(metric, (metric, "No description available for this metric."))[1]


def ci_help(level: float) -> str:
    pct = fmt(100 * level)
    return (
        f"Numbers in brackets are {pct}% confidence intervals from a bootstrap (the evaluation was "
        f"repeated on many resamples of the customers). Read them as the range of values consistent with "
        f"the data: the true value lies inside in about {pct} of 100 such experiments. An interval that "
        f"contains 0 means the data cannot rule out “no effect”; two learners whose intervals overlap a lot "
        f"are not clearly different."
    )


GLOSSARY = (
    ("Uplift (incremental effect)",
     "The extra outcome caused by a treatment for a customer: outcome if contacted minus outcome if not. "
     "It cannot be observed for one person; the models estimate it from the randomized experiment."),
    ("Treatment / arm", "One of the campaign actions tested in the experiment (for example an e-mail)."),
    ("Control group", "Customers randomly left out of the campaign; they show what happens without it."),
    ("Random-targeting line", "What you would get by contacting the same number of customers chosen at "
                              "random: the average effect times the number contacted."),
    ("Qini curve", "Extra outcomes gained (treated outcomes minus control outcomes scaled to the same "
                   "group size) as you contact more customers in the order the model ranks them."),
    ("Uplift curve", "Like the Qini curve, but the gain is the difference in averages between treated and "
                     "control customers among those targeted, multiplied by how many are targeted."),
    ("Decile", "Customers sorted by predicted uplift and cut into ten equal groups."),
    ("Sleeping dogs / harmed customers", "Customers for whom contact lowers the outcome (negative uplift), "
                                         "for example because they unsubscribe. Do not contact them."),
    ("T-learner", "Two models per treatment: one predicts the outcome if treated, one if not; uplift is "
                  "the difference."),
    ("X-learner", "A refinement of the T-learner that models the individual effects directly and "
                  "weights them by the probability of treatment; often better when groups differ in size."),
    ("Confidence interval", "A range of plausible values given the data (see the metrics section)."),
    ("PSI (population stability index)", "How much a feature's distribution in new data differs from the "
                                         "training data. Below 0.1: stable; 0.1–0.25: moderate shift; above "
                                         "0.25: large shift, consider retraining."),
    ("Holdout", "Customers deliberately not contacted during the campaign so its real effect can be "
                "measured."),
    ("Realized uplift", "The effect actually measured after the campaign: targeted customers versus the "
                        "holdout customers the policy would have targeted."),
)


def z_value(level: float) -> float:
    """Two-sided normal quantile of a confidence level (0.95 → 1.96), for intervals drawn as ±z·se."""
    from scipy.stats import norm

    return float(norm.ppf(0.5 + level / 2.0))
