"""The decision summary: customers, cost, expected incremental outcome and value per bucket × action,
plus one row per constraint with its use (policy + explore contacts) against its limit."""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional

SUMMARY_FIELDS = ("kind", "bucket", "action", "customers", "cost", "expected_uplift", "expected_value",
                  "constraint", "used", "limit", "multiplier")


@dataclasses.dataclass
class DecisionSummary:
    """Small, JSON-able result of :func:`uplift_spark.policy.decide` (no customer-level data)."""

    policy: str
    campaign_id: str
    arms: List[str]
    allocation: List[Dict[str, object]]
    constraints: List[Dict[str, object]]
    multipliers: Dict[str, float]
    fill_threshold: float
    passes: int
    warnings: List[str] = dataclasses.field(default_factory=list)
    # multiplier-search effort: ``passes`` run over the population, ``sample_passes`` on the driver-side
    # sample (``sample_rows`` rows) that bracketed them; dual_gap certifies value ≥ (1 − gap)·LP optimum
    sample_passes: int = 0
    sample_rows: int = 0
    dual_gap: Optional[float] = None

    def total(self, key: str, bucket: Optional[str] = None) -> float:
        return float(sum(r[key] for r in self.allocation
                         if r["action"] != "none" and (bucket is None or r["bucket"] == bucket)))

    def rows(self) -> List[Dict[str, object]]:
        """Rows of the ``decision_summary`` table (without run_id/campaign_id)."""
        out = []
        for r in self.allocation:
            out.append({**{f: None for f in SUMMARY_FIELDS}, "kind": "allocation", **r})
        for r in self.constraints:
            out.append({**{f: None for f in SUMMARY_FIELDS}, "kind": "constraint", **r})
        return out

    def to_dataframe(self, spark, run_id: str):
        from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType

        types = {"customers": LongType(), "cost": DoubleType(), "expected_uplift": DoubleType(),
                 "expected_value": DoubleType(), "used": DoubleType(), "limit": DoubleType(),
                 "multiplier": DoubleType()}
        fields = [StructField("run_id", StringType()), StructField("campaign_id", StringType())]
        fields += [StructField(f, types.get(f, StringType())) for f in SUMMARY_FIELDS]
        data = []
        for r in self.rows():
            row = [run_id, self.campaign_id]
            for f in SUMMARY_FIELDS:
                v = r.get(f)
                if v is not None and f in types:
                    v = int(v) if f == "customers" else float(v)
                row.append(v)
            data.append(tuple(row))
        return spark.createDataFrame(data, StructType(fields))

    def to_dict(self) -> Dict[str, object]:
        return {
            "policy": self.policy,
            "customers": {b: int(sum(r["customers"] for r in self.allocation if r["bucket"] == b))
                          for b in sorted({r["bucket"] for r in self.allocation})},
            "contacts": int(sum(r["customers"] for r in self.allocation if r["action"] != "none")),
            "expected_value": round(self.total("expected_value"), 4),
            "expected_uplift": round(self.total("expected_uplift"), 4),
            "cost": round(self.total("cost"), 4),
            "constraints": {r["constraint"]: {"used": r["used"], "limit": r["limit"]} for r in self.constraints},
            "multipliers": self.multipliers,
            "aggregation_passes": self.passes,
            "sample_passes": self.sample_passes,
            "search_sample_rows": self.sample_rows,
            "dual_gap": None if self.dual_gap is None else float(self.dual_gap),
        }
