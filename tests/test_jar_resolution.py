"""First-run JAR resolution: one line of progress on success, the resolver's cause on failure (no network)."""

import os
import stat

import pytest

from uplift_spark.errors import EngineError
from uplift_spark.session import condense_resolver_output, local_jars, resolve_jars

IVY_OK = """Ivy Default Cache set to: /root/.ivy2/cache
The jars for the packages stored in: /root/.ivy2/jars
:: loading settings :: url = jar:file:/x/ivysettings.xml
io.delta#delta-spark_2.12 added as a dependency
:: resolving dependencies :: org.apache.spark#spark-submit-parent-1;1.0
\tconfs: [default]
\tfound io.delta#delta-spark_2.12;3.3.2 in central
\tfound io.delta#delta-storage;3.3.2 in central
:: resolution report :: resolve 412ms :: artifacts dl 9ms
\t---------------------------------------------------------------------
\t|                  |            modules            ||   artifacts   |
:: retrieving :: org.apache.spark#spark-submit-parent-1
\t0 artifacts copied, 30 already retrieved (0kB/12ms)
"""
IVY_FAIL = IVY_OK.replace("\tfound io.delta#delta-storage;3.3.2 in central\n", "") + """\
Server access error at url https://repo1.maven.org/maven2/io/delta/delta-storage/3.3.2/delta-storage-3.3.2.pom (java.net.UnknownHostException: repo1.maven.org)
\t\t::::::::::::::::::::::::::::::::::::::::::::::
\t\t::          UNRESOLVED DEPENDENCIES         ::
\t\t:: io.delta#delta-storage;3.3.2: not found
Exception in thread "main" java.lang.RuntimeException: [unresolved dependency: io.delta#delta-storage;3.3.2: not found]
"""


def _fake_submit(tmp_path, body):
    path = tmp_path / "spark-submit"
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_condensed_output_keeps_the_cause_and_drops_the_report():
    out = condense_resolver_output(IVY_FAIL)
    assert "unresolved dependency: io.delta#delta-storage;3.3.2: not found" in out
    assert "UnknownHostException" in out
    assert "Ivy Default Cache" not in out and "resolving dependencies" not in out and "found io.delta" not in out
    assert len(out.splitlines()) <= 15
    # nothing error-like: the last lines that are not progress are kept, never an empty message
    assert condense_resolver_output("Ivy Default Cache set to: x\nsomething odd happened\n") == "something odd happened"


def test_failure_raises_with_the_resolver_cause(tmp_path, capsys):
    log = tmp_path / "ivy.txt"
    log.write_text(IVY_FAIL)
    submit = _fake_submit(tmp_path, f'cat "{log}" >&2\nexit 1\n')
    with pytest.raises(EngineError, match=r"unresolved dependency: io.delta#delta-storage;3.3.2: not found"):
        resolve_jars(str(tmp_path / "jars"), submit=submit)
    assert local_jars(str(tmp_path / "jars")) is None  # nothing half-installed
    assert "Ivy Default Cache" not in capsys.readouterr().err


def test_success_prints_one_line_per_step_and_fills_the_folder(tmp_path, capsys):
    log = tmp_path / "ivy.txt"
    log.write_text(IVY_OK)
    # the fake resolver writes two jars where --conf spark.jars.ivy=<dir> points, as Spark's does
    body = f'''for a in "$@"; do case "$a" in spark.jars.ivy=*) ivy="${{a#spark.jars.ivy=}}";; esac; done
mkdir -p "$ivy/jars"; head -c 2000000 /dev/zero > "$ivy/jars/a.jar"; head -c 1000 /dev/zero > "$ivy/jars/b.jar"
cat "{log}" >&2
'''
    jars = resolve_jars(str(tmp_path / "jars"), submit=_fake_submit(tmp_path, body))
    assert [os.path.basename(j) for j in jars] == ["a.jar", "b.jar"]
    assert local_jars(str(tmp_path / "jars")) == jars  # the next session start uses the folder
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 2 and "delta-spark" in lines[0] and str(tmp_path / "jars") in lines[0]
    assert "2 jars, 2 MB" in lines[1]
    assert "Ivy" not in err and "resolving dependencies" not in err


def test_sessions_started_side_by_side_resolve_once(tmp_path):
    """Two processes needing the jars at once (two test workers, two notebooks): one resolves, the
    other waits on the lock and finds the folder filled."""
    import subprocess
    import sys

    count = tmp_path / "resolutions"
    body = f'''echo x >> "{count}"; sleep 1
for a in "$@"; do case "$a" in spark.jars.ivy=*) ivy="${{a#spark.jars.ivy=}}";; esac; done
mkdir -p "$ivy/jars"; head -c 1000 /dev/zero > "$ivy/jars/a.jar"
'''
    submit = _fake_submit(tmp_path, body)
    code = ("import sys; from uplift_spark.session import ensure_jars; "
            f"print(len(ensure_jars({str(tmp_path / 'jars')!r}, submit={submit!r})))")
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert outs == ["1", "1"]
    assert count.read_text().count("x") == 1
