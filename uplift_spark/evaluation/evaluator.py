"""``UpliftEvaluator``: the exact Qini AUC or uplift AUC of one treatment arm as a pyspark.ml
``Evaluator``, so ``TrainValidationSplit`` / ``CrossValidator`` can tune the uplift learners.

Why an Evaluator of its own: pyspark's evaluators score predictions against labels, but an uplift
score is judged against the treated-vs-control contrast of outcomes, which needs the arm column. The
metric is the one the evaluate stage writes (:func:`.metrics.metric_draws` on one exact
:func:`.scan.scan_uplift`, no bootstrap), restricted to the rows of ``arm`` and ``controlArm``,
so a tuned model is chosen by the same number the report shows. Both metrics are ``sklift``'s
normalised AUCs and are defined for binary (0/1) outcomes only; larger is better.

This module reads the uplift column by name (``uplift_<slug(arm)>``) and never imports the learners.
"""

from __future__ import annotations

from pyspark import keyword_only
from pyspark.ml.evaluation import Evaluator
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable

from ..errors import ConfigError, DataError
from ..schemas import require_columns, uplift_column
from .metrics import metric_draws
from .scan import ScanSettings, scan_uplift

METRICS = ("qini_auc", "uplift_auc")
_T, _S, _Y, _ID = "_ue_t", "_ue_s", "_ue_y", "_ue_id"


class UpliftEvaluator(Evaluator, DefaultParamsReadable, DefaultParamsWritable):
    """Qini AUC (default) or uplift AUC of ``uplift_<slug(arm)>`` over the rows of ``arm`` and
    ``controlArm``; ``idCol`` only orders tied scores (the scan's deterministic total order)."""

    metricName: "Param[str]" = Param(Params._dummy(), "metricName",
        "qini_auc or uplift_auc (scikit-uplift's normalised AUCs)", typeConverter=TypeConverters.toString)
    arm: "Param[str]" = Param(Params._dummy(), "arm",
        "treatment arm whose uplift column uplift_<slug(arm)> is scored", typeConverter=TypeConverters.toString)
    armCol: "Param[str]" = Param(Params._dummy(), "armCol",
        "column holding the assigned arm", typeConverter=TypeConverters.toString)
    controlArm: "Param[str]" = Param(Params._dummy(), "controlArm",
        "the control arm", typeConverter=TypeConverters.toString)
    outcomeCol: "Param[str]" = Param(Params._dummy(), "outcomeCol",
        "binary (0/1) outcome column", typeConverter=TypeConverters.toString)
    idCol: "Param[str]" = Param(Params._dummy(), "idCol",
        "row id column (breaks ties in the scan's order)", typeConverter=TypeConverters.toString)

    @keyword_only
    def __init__(self, *, metricName: str = "qini_auc", arm: str = "", armCol: str = "arm",
                 controlArm: str = "control", outcomeCol: str = "conversion", idCol: str = "customer_id") -> None:
        super().__init__()
        self._setDefault(metricName="qini_auc", arm="", armCol="arm", controlArm="control",
                         outcomeCol="conversion", idCol="customer_id")
        self.setParams(**self._input_kwargs)

    @keyword_only
    def setParams(self, *, metricName: str = "qini_auc", arm: str = "", armCol: str = "arm",
                  controlArm: str = "control", outcomeCol: str = "conversion",
                  idCol: str = "customer_id") -> "UpliftEvaluator":
        """Sets params for this evaluator."""
        return self._set(**self._input_kwargs)

    # ----------------------------------------------------------------- getters / setters
    def getMetricName(self) -> str:
        """Gets the value of :py:attr:`metricName` or its default value."""
        return self.getOrDefault(self.metricName)

    def setMetricName(self, value: str) -> "UpliftEvaluator":
        """Sets the value of :py:attr:`metricName`."""
        return self._set(metricName=value)

    def getArm(self) -> str:
        """Gets the value of :py:attr:`arm` or its default value."""
        return self.getOrDefault(self.arm)

    def setArm(self, value: str) -> "UpliftEvaluator":
        """Sets the value of :py:attr:`arm`."""
        return self._set(arm=value)

    def getArmCol(self) -> str:
        """Gets the value of :py:attr:`armCol` or its default value."""
        return self.getOrDefault(self.armCol)

    def setArmCol(self, value: str) -> "UpliftEvaluator":
        """Sets the value of :py:attr:`armCol`."""
        return self._set(armCol=value)

    def getControlArm(self) -> str:
        """Gets the value of :py:attr:`controlArm` or its default value."""
        return self.getOrDefault(self.controlArm)

    def setControlArm(self, value: str) -> "UpliftEvaluator":
        """Sets the value of :py:attr:`controlArm`."""
        return self._set(controlArm=value)

    def getOutcomeCol(self) -> str:
        """Gets the value of :py:attr:`outcomeCol` or its default value."""
        return self.getOrDefault(self.outcomeCol)

    def setOutcomeCol(self, value: str) -> "UpliftEvaluator":
        """Sets the value of :py:attr:`outcomeCol`."""
        return self._set(outcomeCol=value)

    def getIdCol(self) -> str:
        """Gets the value of :py:attr:`idCol` or its default value."""
        return self.getOrDefault(self.idCol)

    def setIdCol(self, value: str) -> "UpliftEvaluator":
        """Sets the value of :py:attr:`idCol`."""
        return self._set(idCol=value)

    def isLargerBetter(self) -> bool:
        return True

    # ----------------------------------------------------------------- the metric
    def _checked(self):
        metric, arm, control = self.getMetricName(), self.getArm(), self.getControlArm()
        if metric not in METRICS:
            raise ConfigError(f"UpliftEvaluator.metricName: {metric!r} is not one of {', '.join(METRICS)}")
        if not arm:
            raise ConfigError("UpliftEvaluator.arm: no treatment arm set (setArm)")
        if arm == control:
            raise ConfigError(f"UpliftEvaluator.arm: {arm!r} is the control arm")
        return metric, arm, control

    def _evaluate(self, dataset) -> float:
        from pyspark.sql import functions as F

        metric, arm, control = self._checked()
        score = uplift_column(arm)
        arm_col, outcome, id_col = self.getArmCol(), self.getOutcomeCol(), self.getIdCol()
        require_columns(dataset, (score, arm_col, outcome, id_col), "UpliftEvaluator")
        rows = (dataset.where(F.col(arm_col).isin(arm, control))
                .select(F.col(score).cast("double").alias(_S),
                        (F.col(arm_col) == F.lit(arm)).cast("int").alias(_T),
                        F.col(outcome).cast("double").alias(_Y), F.col(id_col).alias(_ID)))
        scan = scan_uplift(rows, _S, _T, _Y, _ID, ScanSettings(replicates=0))
        if not scan.binary:
            raise DataError(f"UpliftEvaluator: {metric} needs a binary 0/1 outcome; {outcome!r} is not")
        value = float(metric_draws(scan, (), binary=True)[metric][0])
        if value != value:  # NaN: no treated or no control row, or the perfect curve equals random
            raise DataError(f"UpliftEvaluator: {metric} of arm {arm!r} is undefined on these rows "
                            f"(n={int(scan.totals[0][0])}, treated={int(scan.totals[1][0])})")
        return value


__all__ = ["UpliftEvaluator", "METRICS"]
