"""The Kafka broker's jars, resolved once with Maven from ``kafka_pom.xml`` (beside this file)
into a cache directory shared by every cluster: a directory is filled next to the target and
renamed into place, so an interrupted or concurrent download never leaves a half-filled one
that looks complete, and only a directory this module filled (it holds the version marker) is
ever replaced.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from triage.local.state import LocalKafkaError, tail

KAFKA_VERSION = "4.3.1"

_POM = Path(__file__).resolve().parent / "kafka_pom.xml"
_JARS_MARKER = ".kafka-version"
_MAVEN_TIMEOUT_S = 900

log = logging.getLogger(__name__)


def default_libs_dir() -> Path:
    """Where the Kafka jars are cached: ``$TRIAGE_KAFKA_LIBS``, else ``./.triage/kafka-libs``."""
    return Path(os.environ.get("TRIAGE_KAFKA_LIBS") or ".triage/kafka-libs").resolve()


def ensure_jars(libs_dir: Path) -> Path:
    """Make sure ``libs_dir`` holds the Kafka jars, running Maven only if they are missing."""
    libs_dir = Path(libs_dir).resolve()
    if _jars_ready(libs_dir):
        return libs_dir
    # Only a directory this function filled before (it has the marker) is ever replaced.
    if libs_dir.exists() and any(libs_dir.iterdir()) and not (libs_dir / _JARS_MARKER).exists():
        raise LocalKafkaError(
            f"{libs_dir} is not empty and holds no jars fetched by triage; point "
            "TRIAGE_KAFKA_LIBS (or libs_dir) at a new directory, or empty this one"
        )
    mvn = shutil.which("mvn")
    if mvn is None:
        raise LocalKafkaError(
            "Maven ('mvn') is not on PATH but is needed once to fetch the Kafka "
            f"{KAFKA_VERSION} jars: install it (e.g. 'apt-get install maven') and retry"
        )
    log.info("fetching Kafka %s jars with Maven into %s", KAFKA_VERSION, libs_dir)
    libs_dir.parent.mkdir(parents=True, exist_ok=True)
    # Download next to the target and rename, so an interrupted or concurrent download never
    # leaves a half-filled directory that looks complete.
    staging = Path(tempfile.mkdtemp(prefix=f".{libs_dir.name}-", dir=libs_dir.parent))
    try:
        _run_maven(mvn, staging)
        (staging / _JARS_MARKER).write_text(KAFKA_VERSION + "\n")
        staging.chmod(0o755)  # mkdtemp made it private; the cache is meant to be shared
        _install_dir(staging, libs_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return libs_dir


def _jars_ready(libs_dir: Path) -> bool:
    marker = libs_dir / _JARS_MARKER
    broker_jar = libs_dir / f"kafka_2.13-{KAFKA_VERSION}.jar"
    return marker.is_file() and marker.read_text().strip() == KAFKA_VERSION and broker_jar.is_file()


def _run_maven(mvn: str, output_dir: Path) -> None:
    cmd = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(_POM),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={output_dir}",
        "-DincludeScope=runtime",
    ]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=_MAVEN_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise LocalKafkaError(
            f"Maven did not finish fetching the Kafka jars within {_MAVEN_TIMEOUT_S} s; "
            "check network access to Maven Central and retry"
        ) from exc
    if proc.returncode != 0:
        raise LocalKafkaError(
            f"Maven failed (exit {proc.returncode}) to fetch the Kafka jars with {_POM}; "
            "check network access to Maven Central and retry. Last lines of its output:\n"
            + tail(proc.stdout + proc.stderr)
        )


def _install_dir(staging: Path, target: Path) -> None:
    if target.exists():
        if _jars_ready(target):  # another process finished first
            return
        shutil.rmtree(target)
    try:
        staging.rename(target)
    except OSError:
        if not _jars_ready(target):
            raise
