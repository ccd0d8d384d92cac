"""Start both Lambda package builds (x86_64, arm64) at the beginning of the session.

`skyclass deploy --package-only` takes a minute or more per architecture (wheels installed,
stripped, zipped at level 9). The builds run in the background while the rest of the suite
runs; test_serverless.py, which checks the zips and serves them with serverless-offline, is
ordered last (its `last` marker) and waits for them there.
"""

from __future__ import annotations

from .helpers import Build


def test_lambda_packages_start_building_in_the_background(builds: dict[str, Build]) -> None:
    assert "x86_64" in builds
    for build in builds.values():
        # Still running, or already finished without an error (its output is checked later).
        assert build.proc.poll() in (None, 0), build.log.read_text()[-4000:]
