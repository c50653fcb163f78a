"""Spark session factory: Delta Lake and SynapseML LightGBM on the classpath, embedded by default.

JARs come, in order of preference (``spark.jars: auto``):
1. already on the cluster (Databricks, or a session someone else started): nothing is added;
2. a local folder filled by ``uplift-spark install-jars`` (Maven), passed as ``spark.jars``;
3. resolved once by Spark's own Ivy resolver from Maven Central in a quiet subprocess into that folder
   (one line of progress; the resolver's report only when it fails), then passed as in 2.
``spark.jars: packages`` leaves the resolution to the session's own start (the resolver's full report).
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from typing import Dict, Optional

from .config import SparkConfig
from .errors import EngineError
from .logs import get_logger
from .versions import JAR_COORDINATES, SYNAPSEML_LIGHTGBM_JAR

log = get_logger("session")

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
_MANIFEST = "uplift_spark_jars.json"
_DELTA_CLASS = "io.delta.tables.DeltaTable"
_LIGHTGBM_CLASS = "com.microsoft.azure.synapse.ml.lightgbm.LightGBMClassifier"


def on_databricks() -> bool:
    return "DATABRICKS_RUNTIME_VERSION" in os.environ


def launched_by_spark_submit() -> bool:
    """PySpark started by spark-submit talks to a JVM that already exists."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def _prepare_environment(master: str) -> None:
    """Known local-mode needs: loopback binding and executors on the driver's interpreter."""
    if master.startswith("local") or "127.0.0.1" in master:
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)


def local_jars(jars_dir: str) -> Optional[list]:
    """The jar files of a folder filled by :func:`install_jars` for exactly our pinned coordinates."""
    folder = os.path.expanduser(jars_dir)
    manifest = os.path.join(folder, _MANIFEST)
    if not os.path.isfile(manifest):
        return None
    with open(manifest, "r", encoding="utf-8") as fh:
        meta = json.load(fh)
    if tuple(meta.get("coordinates", ())) != JAR_COORDINATES:
        return None
    jars = sorted(glob.glob(os.path.join(folder, "*.jar")))
    return jars or None


def install_jars(jars_dir: str, timeout: int = 900) -> list:
    """Fetch the pinned JARs and their dependencies with Maven into ``jars_dir``.

    The fallback for machines where Spark's Ivy resolver cannot reach the registry (proxies, mirrors
    configured for Maven only). Needs ``mvn`` on the PATH.
    """
    mvn = shutil.which("mvn")
    if not mvn:
        raise EngineError("install-jars needs Maven ('mvn') on the PATH; or use spark.jars: packages")
    folder = os.path.expanduser(jars_dir)
    os.makedirs(folder, exist_ok=True)
    deps = "".join(
        "<dependency><groupId>{}</groupId><artifactId>{}</artifactId><version>{}</version></dependency>".format(
            *coord.split(":")
        )
        for coord in JAR_COORDINATES
    )
    pom = (
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
        "<groupId>uplift_spark</groupId><artifactId>jars</artifactId><version>1</version>"
        f"<dependencies>{deps}</dependencies></project>"
    )
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "pom.xml"), "w", encoding="utf-8") as fh:
            fh.write(pom)
        cmd = [mvn, "-q", "-B", "dependency:copy-dependencies", f"-DoutputDirectory={folder}",
               "-DincludeScope=runtime", "-DexcludeGroupIds=org.scala-lang,org.apache.spark"]
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise EngineError(f"mvn could not fetch {', '.join(JAR_COORDINATES)}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    with open(os.path.join(folder, _MANIFEST), "w", encoding="utf-8") as fh:
        json.dump({"coordinates": list(JAR_COORDINATES)}, fh)
    jars = local_jars(folder) or []
    log.info("installed %d jars into %s", len(jars), folder)
    return jars


# Resolver lines worth showing when resolution fails: the cause, not Ivy's progress report.
_IVY_CAUSE = re.compile(r"(?i)(error|exception|unresolved|not found|failed|could not|refused|timed? ?out|::\s+\S+#)")
_IVY_NOISE = re.compile(r"(?i)^(ivy default cache set to|the jars for the packages stored in|:: loading settings|"
                        r":: resolving dependencies|:: resolution report|:: retrieving|\s*confs:|\s*found \S+ in|\s*downloading |\s*\[successful\]|"
                        r":: resolution report|:: retrieving|\s*\d+ artifacts copied|\s*-{5,}|\s*\|)")


def condense_resolver_output(text: str, max_lines: int = 15) -> str:
    """The few lines of an Ivy run that say why it failed, without its progress report.

    Lines naming an error come first; when none do, the last non-progress lines (the tail) are kept.
    """
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
    causes = [ln for ln in lines if _IVY_CAUSE.search(ln) and not _IVY_NOISE.match(ln)]
    if not causes:
        causes = [ln for ln in lines if not _IVY_NOISE.match(ln)]
    seen, out = set(), []
    for ln in causes:
        if ln not in seen:
            seen.add(ln)
            out.append(ln)
    return "\n".join(out[-max_lines:])


def resolve_jars(jars_dir: str, timeout: int = 900, submit: Optional[str] = None) -> list:
    """Resolve the pinned JARs with Spark's Ivy resolver in a subprocess and copy them into ``jars_dir``.

    Ivy prints hundreds of lines, "Host ... not found" among them for mirrors it merely tries; a new user
    reads them as failures. Running it once here, with its output captured, lets the first run print one
    line (what, how much, where) and later runs find the folder (``local_jars``). A failure raises
    :class:`EngineError` with the resolver's condensed cause.
    """
    submit = submit or shutil.which("spark-submit")
    if not submit:
        import pyspark

        submit = os.path.join(os.path.dirname(pyspark.__file__), "bin", "spark-submit")
    folder = os.path.expanduser(jars_dir)
    print(f"uplift_spark: resolving {', '.join(JAR_COORDINATES)} from Maven Central into {folder} "
          "(first run only) ...", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "noop.py")
        with open(script, "w", encoding="utf-8") as fh:
            fh.write("pass\n")
        ivy = os.path.join(tmp, "ivy")
        cmd = [submit, "--master", "local[1]", "--packages", ",".join(JAR_COORDINATES),
               "--conf", f"spark.jars.ivy={ivy}", script]
        env = dict(os.environ, SPARK_LOCAL_IP=os.environ.get("SPARK_LOCAL_IP", "127.0.0.1"))
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise EngineError(f"could not resolve {', '.join(JAR_COORDINATES)} with {submit}: {exc}") from exc
        resolved = sorted(glob.glob(os.path.join(ivy, "jars", "*.jar")))
        if proc.returncode != 0 or not resolved:
            cause = condense_resolver_output(proc.stdout + "\n" + proc.stderr)
            raise EngineError(f"could not resolve {', '.join(JAR_COORDINATES)} (exit {proc.returncode}); "
                              f"resolver said:\n{cause}\n(or run 'uplift-spark install-jars' with Maven)")
        os.makedirs(folder, exist_ok=True)
        for jar in resolved:
            shutil.copy2(jar, folder)
    with open(os.path.join(folder, _MANIFEST), "w", encoding="utf-8") as fh:
        json.dump({"coordinates": list(JAR_COORDINATES)}, fh)
    jars = local_jars(folder) or []
    size = sum(os.path.getsize(j) for j in jars) / 1e6
    print(f"uplift_spark: {len(jars)} jars, {size:.0f} MB in {folder}", file=sys.stderr, flush=True)
    return jars


def _jar_conf(cfg: SparkConfig) -> Dict[str, str]:
    mode = cfg.jars
    if mode == "provided" or (mode == "auto" and on_databricks()):
        return {}
    if mode in ("auto", "local"):
        jars = local_jars(cfg.jars_dir)
        if jars:
            return {"spark.jars": ",".join(jars)}
        if mode == "local":
            raise EngineError(
                f"spark.jars is 'local' but {cfg.jars_dir} has no jars for {JAR_COORDINATES}: "
                "run 'uplift-spark install-jars' first"
            )
    return {"spark.jars.packages": ",".join(JAR_COORDINATES)}


def session_conf(cfg: SparkConfig) -> Dict[str, str]:
    """Every Spark setting the project relies on, before user overrides from ``spark.conf``."""
    conf = {
        "spark.app.name": cfg.app_name,
        "spark.sql.extensions": DELTA_EXTENSION,
        "spark.sql.catalog.spark_catalog": DELTA_CATALOG,
        "spark.sql.shuffle.partitions": str(cfg.shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        # SynapseML LightGBM needs a fixed set of executors while a barrier stage trains.
        "spark.dynamicAllocation.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
    }
    if cfg.master.startswith("local"):
        conf["spark.driver.memory"] = cfg.driver_memory
        conf["spark.driver.host"] = "127.0.0.1"
        conf["spark.driver.bindAddress"] = "127.0.0.1"
    cluster = re.fullmatch(r"local-cluster\[\s*\d+\s*,\s*(\d+)\s*,\s*\d+\s*\]", cfg.master)
    if cluster:
        # SynapseML plans its LightGBM tasks from spark.executor.cores (else it runs a job to count)
        conf["spark.executor.cores"] = cluster.group(1)
    conf.update(_jar_conf(cfg))
    conf.update({k: str(v) for k, v in cfg.conf.items()})
    return conf


def get_spark(cfg: Optional[SparkConfig] = None):
    """Return the active session (a notebook's or a cluster's) or build one from ``cfg``.

    An existing session keeps its JARs: we only check that Delta is there and tune SQL settings.
    """
    from pyspark.sql import SparkSession

    cfg = cfg or SparkConfig()
    active = SparkSession.getActiveSession()
    if active is not None:
        active.conf.set("spark.sql.session.timeZone", "UTC")
        return active
    _prepare_environment(cfg.master)
    if launched_by_spark_submit():
        # spark-submit already chose the master and the JARs (see ``uplift-spark submit-args``).
        builder = SparkSession.builder
        conf = {k: v for k, v in session_conf(cfg).items() if not k.startswith(("spark.jars", "spark.driver."))}
        conf.pop("spark.app.name", None)
    else:
        builder = SparkSession.builder.master(cfg.master)
        if cfg.jars == "auto" and not on_databricks():
            ensure_jars(cfg.jars_dir)  # quiet, once; then session_conf passes the folder as spark.jars
        conf = session_conf(cfg)
    for key, value in conf.items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # the JVM did not start: most often JAR resolution
        raise EngineError(f"could not start Spark ({cfg.master}) with {JAR_COORDINATES}: {exc}") from exc
    spark.sparkContext.setLogLevel(cfg.log_level)
    master = spark.sparkContext.master
    if _ships_package(master) and cfg.conf.get("spark.uplift.shipPackage", "true") != "false":
        ship_package(spark)
    return spark


def ensure_jars(jars_dir: str, submit: Optional[str] = None) -> list:
    """The pinned jars in ``jars_dir``, resolved first if the folder lacks them.

    Sessions started side by side (test workers, two notebooks) resolve once: the others wait on a lock
    and then find the folder filled, instead of starting a JVM on jar files still being copied.
    """
    jars = local_jars(jars_dir)
    if jars:
        return jars
    with _folder_lock(jars_dir):
        return local_jars(jars_dir) or resolve_jars(jars_dir, submit=submit)


@contextlib.contextmanager
def _folder_lock(folder: str):
    """An exclusive lock on ``<folder>.lock`` (the folder itself may not exist yet)."""
    path = os.path.expanduser(folder).rstrip(os.sep) + ".lock"
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock (one process at a time is the user's to ensure)
        yield
        return
    with open(path, "a", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _ships_package(master: str) -> bool:
    """Executors of a real cluster may lack this package; local[*] shares the driver's interpreter."""
    return not (master == "local" or master.startswith("local["))


def ship_package(spark) -> str:
    """Zip ``uplift_spark`` and ``addPyFile`` it, so mapInPandas / pandas UDF code imports on executors."""
    import zipfile

    pkg_dir = os.path.dirname(os.path.abspath(__file__))
    target = os.path.join(tempfile.mkdtemp(prefix="uplift_spark_pkg_"), "uplift_spark.zip")
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for folder, dirs, files in os.walk(pkg_dir):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for name in files:
                if name.endswith((".py", ".html", ".json", ".j2", ".css")):
                    full = os.path.join(folder, name)
                    zf.write(full, os.path.relpath(full, os.path.dirname(pkg_dir)))
    spark.sparkContext.addPyFile(target)
    return target


def submit_args(cfg: Optional[SparkConfig] = None) -> list:
    """``spark-submit`` arguments that give a job the same engine as the embedded session.

    Under spark-submit the JVM starts before our code runs, so JARs must be on the command line.
    """
    cfg = cfg or SparkConfig()
    args = []
    conf = session_conf(cfg)
    if "spark.jars.packages" in conf:
        args += ["--packages", conf.pop("spark.jars.packages")]
    if "spark.jars" in conf:
        args += ["--jars", conf.pop("spark.jars")]
    for key in ("spark.sql.extensions", "spark.sql.catalog.spark_catalog", "spark.dynamicAllocation.enabled",
                "spark.sql.session.timeZone"):
        args += ["--conf", f"{key}={conf[key]}"]
    return args


def has_class(spark, name: str) -> bool:
    try:
        spark.sparkContext._jvm.java.lang.Class.forName(
            name, True, spark.sparkContext._jvm.Thread.currentThread().getContextClassLoader()
        )
        return True
    except Exception:
        return False


def engine_status(spark) -> Dict[str, object]:
    """What this session can do: the Spark version and whether Delta / SynapseML LightGBM load."""
    return {
        "spark": spark.version,
        "master": spark.sparkContext.master,
        "delta": has_class(spark, _DELTA_CLASS),
        "synapseml_lightgbm": has_class(spark, _LIGHTGBM_CLASS),
    }


def synapseml_available(spark) -> bool:
    """Both halves must be there: the Python wrapper (``synapse.ml.lightgbm``) and its JVM classes."""
    try:
        if importlib.util.find_spec("synapse.ml.lightgbm") is None:
            return False
    except ImportError:
        return False
    return has_class(spark, _LIGHTGBM_CLASS)


__all__ = [
    "get_spark",
    "engine_status",
    "condense_resolver_output",
    "install_jars",
    "resolve_jars",
    "local_jars",
    "session_conf",
    "synapseml_available",
    "SYNAPSEML_LIGHTGBM_JAR",
]
