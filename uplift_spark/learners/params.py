"""The Params every uplift learner shares, with explicit typed getters and setters (as pyspark.ml
declares its own), so IDEs and type checkers see them. Models mix in :class:`UpliftModelParams` (the
columns and arms they were fitted on); estimators mix in :class:`UpliftParams` (those plus training
settings). A model's training settings live in ``model.learner_params``: its ``propensity`` attribute
is the fitted propensity spec, not the Param.
"""

from __future__ import annotations

import json
from typing import List, TypeVar

from pyspark.ml.param import Param, Params, TypeConverters

from ..config import LightGBMConfig, config_from_dict, to_dict

P = TypeVar("P", bound="UpliftModelParams")


class UpliftModelParams(Params):
    """Params a fitted model shares with its estimator: which columns and arms it was fitted on."""

    outcomeCol: "Param[str]" = Param(Params._dummy(), "outcomeCol",
        "outcome column (binary 0/1 or continuous)", typeConverter=TypeConverters.toString)
    outcomeType: "Param[str]" = Param(Params._dummy(), "outcomeType",
        "binary (classifier) or continuous (regressor)", typeConverter=TypeConverters.toString)
    armCol: "Param[str]" = Param(Params._dummy(), "armCol",
        "column holding the assigned arm", typeConverter=TypeConverters.toString)
    controlArm: "Param[str]" = Param(Params._dummy(), "controlArm",
        "the control arm", typeConverter=TypeConverters.toString)
    treatmentArms: "Param[List[str]]" = Param(Params._dummy(), "treatmentArms",
        "treatment arms (one uplift column each)", typeConverter=TypeConverters.toListString)
    featureCols: "Param[List[str]]" = Param(Params._dummy(), "featureCols",
        "feature columns", typeConverter=TypeConverters.toListString)
    categoricalCols: "Param[List[str]]" = Param(Params._dummy(), "categoricalCols",
        "categorical feature columns", typeConverter=TypeConverters.toListString)

    PARAM_NAMES = ("outcomeCol", "outcomeType", "armCol", "controlArm", "treatmentArms", "featureCols",
                   "categoricalCols")

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(outcomeCol="conversion", outcomeType="binary", armCol="arm", controlArm="control",
                         treatmentArms=[], featureCols=[], categoricalCols=[])

    def paramValues(self) -> dict:
        """Every Param's value (or default) by name, JSON-able: what a saved model records."""
        return {n: self.getOrDefault(getattr(self, n)) for n in self.PARAM_NAMES}

    def getOutcomeCol(self) -> str:
        """Gets the value of :py:attr:`outcomeCol` or its default value."""
        return self.getOrDefault(self.outcomeCol)

    def setOutcomeCol(self: P, value: str) -> P:
        """Sets the value of :py:attr:`outcomeCol`."""
        return self._set(outcomeCol=value)

    def getOutcomeType(self) -> str:
        """Gets the value of :py:attr:`outcomeType` or its default value."""
        return self.getOrDefault(self.outcomeType)

    def setOutcomeType(self: P, value: str) -> P:
        """Sets the value of :py:attr:`outcomeType`."""
        return self._set(outcomeType=value)

    def getArmCol(self) -> str:
        """Gets the value of :py:attr:`armCol` or its default value."""
        return self.getOrDefault(self.armCol)

    def setArmCol(self: P, value: str) -> P:
        """Sets the value of :py:attr:`armCol`."""
        return self._set(armCol=value)

    def getControlArm(self) -> str:
        """Gets the value of :py:attr:`controlArm` or its default value."""
        return self.getOrDefault(self.controlArm)

    def setControlArm(self: P, value: str) -> P:
        """Sets the value of :py:attr:`controlArm`."""
        return self._set(controlArm=value)

    def getTreatmentArms(self) -> List[str]:
        """Gets the value of :py:attr:`treatmentArms` or its default value."""
        return self.getOrDefault(self.treatmentArms)

    def setTreatmentArms(self: P, value: List[str]) -> P:
        """Sets the value of :py:attr:`treatmentArms`."""
        return self._set(treatmentArms=value)

    def getFeatureCols(self) -> List[str]:
        """Gets the value of :py:attr:`featureCols` or its default value."""
        return self.getOrDefault(self.featureCols)

    def setFeatureCols(self: P, value: List[str]) -> P:
        """Sets the value of :py:attr:`featureCols`."""
        return self._set(featureCols=value)

    def getCategoricalCols(self) -> List[str]:
        """Gets the value of :py:attr:`categoricalCols` or its default value."""
        return self.getOrDefault(self.categoricalCols)

    def setCategoricalCols(self: P, value: List[str]) -> P:
        """Sets the value of :py:attr:`categoricalCols`."""
        return self._set(categoricalCols=value)


class UpliftParams(UpliftModelParams):
    """All Params of an uplift learner (estimator): the model's plus how to train (names follow
    pyspark.ml conventions)."""

    validationCol: "Param[str]" = Param(Params._dummy(), "validationCol",
        "boolean column: true rows are the early-stopping validation set ('' = none)",
        typeConverter=TypeConverters.toString)
    backend: "Param[str]" = Param(Params._dummy(), "backend",
        "auto, synapseml or barrier (or a registered trainer backend)", typeConverter=TypeConverters.toString)
    distribution: "Param[str]" = Param(Params._dummy(), "distribution",
        "auto, distributed or per_task (each booster in one Spark task)", typeConverter=TypeConverters.toString)
    perTaskMaxBytes: "Param[int]" = Param(Params._dummy(), "perTaskMaxBytes",
        "auto: per_task below rows x features x 8 bytes (0 = from executor memory)", typeConverter=TypeConverters.toInt)
    lightgbmParams: "Param[str]" = Param(Params._dummy(), "lightgbmParams",
        "LightGBMConfig as a JSON string", typeConverter=TypeConverters.toString)
    propensity: "Param[str]" = Param(Params._dummy(), "propensity",
        "known or estimate", typeConverter=TypeConverters.toString)
    propensityClip: "Param[float]" = Param(Params._dummy(), "propensityClip",
        "clip propensities to [eps, 1-eps]", typeConverter=TypeConverters.toFloat)
    propensityPrefix: "Param[str]" = Param(Params._dummy(), "propensityPrefix",
        "known propensity columns are <prefix>_<slug(arm)> ('' = none)", typeConverter=TypeConverters.toString)
    allocation: "Param[str]" = Param(Params._dummy(), "allocation",
        "design allocation per arm as a JSON object ('' = none)", typeConverter=TypeConverters.toString)
    maxCategories: "Param[int]" = Param(Params._dummy(), "maxCategories",
        "codes kept per categorical feature", typeConverter=TypeConverters.toInt)

    foldCol: "Param[str]" = Param(Params._dummy(), "foldCol",
        "int column: cross-fitting fold of each training row (the split's fold; '' = hash folds)",
        typeConverter=TypeConverters.toString)
    numFolds: "Param[int]" = Param(Params._dummy(), "numFolds",
        "cross-fitting folds when foldCol is ''", typeConverter=TypeConverters.toInt)
    minRowsPerArm: "Param[int]" = Param(Params._dummy(), "minRowsPerArm",
        "cross-fitted learners: minimum training rows per fold and arm", typeConverter=TypeConverters.toInt)

    PARAM_NAMES = UpliftModelParams.PARAM_NAMES + (
        "validationCol", "backend", "lightgbmParams", "propensity", "propensityClip", "propensityPrefix",
        "allocation", "maxCategories", "distribution", "perTaskMaxBytes", "foldCol", "numFolds",
        "minRowsPerArm")

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(validationCol="", backend="auto",
                         lightgbmParams=json.dumps(to_dict(LightGBMConfig())), propensity="known",
                         propensityClip=0.01, propensityPrefix="", allocation="", maxCategories=200,
                         distribution="auto", perTaskMaxBytes=0,
                         foldCol="", numFolds=5, minRowsPerArm=20)

    def getLightGBMConfig(self) -> LightGBMConfig:
        """The ``lightgbmParams`` JSON as a typed :class:`LightGBMConfig`."""
        raw = json.loads(self.getOrDefault(self.lightgbmParams))
        return config_from_dict({"model": {"lightgbm": raw}}).model.lightgbm

    def setLightGBMConfig(self: P, cfg: LightGBMConfig) -> P:
        return self._set(lightgbmParams=json.dumps(to_dict(cfg)))

    def getValidationCol(self) -> str:
        """Gets the value of :py:attr:`validationCol` or its default value."""
        return self.getOrDefault(self.validationCol)

    def setValidationCol(self: P, value: str) -> P:
        """Sets the value of :py:attr:`validationCol`."""
        return self._set(validationCol=value)

    def getBackend(self) -> str:
        """Gets the value of :py:attr:`backend` or its default value."""
        return self.getOrDefault(self.backend)

    def setBackend(self: P, value: str) -> P:
        """Sets the value of :py:attr:`backend`."""
        return self._set(backend=value)

    def getDistribution(self) -> str:
        """Gets the value of :py:attr:`distribution` or its default value."""
        return self.getOrDefault(self.distribution)

    def setDistribution(self: P, value: str) -> P:
        """Sets the value of :py:attr:`distribution`."""
        return self._set(distribution=value)

    def getPerTaskMaxBytes(self) -> int:
        """Gets the value of :py:attr:`perTaskMaxBytes` or its default value."""
        return self.getOrDefault(self.perTaskMaxBytes)

    def setPerTaskMaxBytes(self: P, value: int) -> P:
        """Sets the value of :py:attr:`perTaskMaxBytes`."""
        return self._set(perTaskMaxBytes=value)

    def getLightgbmParams(self) -> str:
        """Gets the value of :py:attr:`lightgbmParams` or its default value."""
        return self.getOrDefault(self.lightgbmParams)

    def setLightgbmParams(self: P, value: str) -> P:
        """Sets the value of :py:attr:`lightgbmParams`."""
        return self._set(lightgbmParams=value)

    def getPropensity(self) -> str:
        """Gets the value of :py:attr:`propensity` or its default value."""
        return self.getOrDefault(self.propensity)

    def setPropensity(self: P, value: str) -> P:
        """Sets the value of :py:attr:`propensity`."""
        return self._set(propensity=value)

    def getPropensityClip(self) -> float:
        """Gets the value of :py:attr:`propensityClip` or its default value."""
        return self.getOrDefault(self.propensityClip)

    def setPropensityClip(self: P, value: float) -> P:
        """Sets the value of :py:attr:`propensityClip`."""
        return self._set(propensityClip=value)

    def getPropensityPrefix(self) -> str:
        """Gets the value of :py:attr:`propensityPrefix` or its default value."""
        return self.getOrDefault(self.propensityPrefix)

    def setPropensityPrefix(self: P, value: str) -> P:
        """Sets the value of :py:attr:`propensityPrefix`."""
        return self._set(propensityPrefix=value)

    def getAllocation(self) -> str:
        """Gets the value of :py:attr:`allocation` or its default value."""
        return self.getOrDefault(self.allocation)

    def setAllocation(self: P, value: str) -> P:
        """Sets the value of :py:attr:`allocation`."""
        return self._set(allocation=value)

    def getMaxCategories(self) -> int:
        """Gets the value of :py:attr:`maxCategories` or its default value."""
        return self.getOrDefault(self.maxCategories)

    def setMaxCategories(self: P, value: int) -> P:
        """Sets the value of :py:attr:`maxCategories`."""
        return self._set(maxCategories=value)

    def getFoldCol(self) -> str:
        """Gets the value of :py:attr:`foldCol` or its default value."""
        return self.getOrDefault(self.foldCol)

    def setFoldCol(self: P, value: str) -> P:
        """Sets the value of :py:attr:`foldCol`."""
        return self._set(foldCol=value)

    def getNumFolds(self) -> int:
        """Gets the value of :py:attr:`numFolds` or its default value."""
        return self.getOrDefault(self.numFolds)

    def setNumFolds(self: P, value: int) -> P:
        """Sets the value of :py:attr:`numFolds`."""
        return self._set(numFolds=value)

    def getMinRowsPerArm(self) -> int:
        """Gets the value of :py:attr:`minRowsPerArm` or its default value."""
        return self.getOrDefault(self.minRowsPerArm)

    def setMinRowsPerArm(self: P, value: int) -> P:
        """Sets the value of :py:attr:`minRowsPerArm`."""
        return self._set(minRowsPerArm=value)


__all__ = ["UpliftModelParams", "UpliftParams"]
