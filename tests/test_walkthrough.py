"""The README's walkthrough on a fresh data dir: `serve`, then the CLI and curl, as a user would.

The supervisor creates the token file; every client command finds the servers through
`server.json` and reads the token from the data dir, with no MODELDEPOT_TOKEN in the environment.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live import free_ports
from tests.models import iris_model, write_joblib
from tests.supervisor.conftest import Serve


class FreshServe(Serve):
    def env(self) -> dict[str, str]:
        env = super().env()
        env.pop("MODELDEPOT_TOKEN")
        return env


def user_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELDEPOT_")}
    env["MODELDEPOT_HOME"] = str(home)
    return env


def modeldepot(
    home: Path, *args: str, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        env=user_env(home),
        input=input,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    tmp = tmp_path_factory.mktemp("walkthrough")
    serve = FreshServe(tmp / "home", *free_ports(2), tmp / "serve.log").start()
    try:
        serve.wait_ready()
        yield serve
    finally:
        serve.cleanup()


@pytest.mark.slow
def test_push_a_joblib_with_the_cli_then_predict(served: Serve, tmp_path: Path) -> None:
    model = write_joblib(tmp_path / "model.joblib", iris_model())
    pushed = modeldepot(
        served.home, "models", "push", str(model), "--name", "churn", "--alias", "production"
    )
    assert pushed.returncode == 0, pushed.stderr
    assert "pushed churn version 1 (skops" in pushed.stdout  # converted: the server loads no pickle

    listed = modeldepot(served.home, "models", "list")
    assert listed.returncode == 0, listed.stderr
    assert "churn" in listed.stdout and "production->1" in listed.stdout

    shown = json.loads(modeldepot(served.home, "models", "show", "churn", "production").stdout)
    assert shown["format"] == "skops" and shown["signature"]["n_features"] == 4

    rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
    expected = iris_model().predict(rows).tolist()
    answer = modeldepot(served.home, "predict", "churn", "--input", json.dumps(rows), "--proba")
    assert answer.returncode == 0, answer.stderr
    body = json.loads(answer.stdout)
    assert body["predictions"] == expected
    assert len(body["probabilities"]) == 2
    via_stdin = modeldepot(
        served.home, "predict", "churn", "-f", "-", input=json.dumps({"instances": rows})
    )
    assert json.loads(via_stdin.stdout)["predictions"] == expected


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_push_a_trusted_joblib_with_curl(served: Serve, tmp_path: Path) -> None:
    model = write_joblib(tmp_path / "model.joblib", iris_model(C=2.0))
    token = modeldepot(served.home, "token").stdout.strip()
    assert token and (served.home / "token").stat().st_mode & 0o777 == 0o600
    url = f"http://127.0.0.1:{served.registry_port}/api/v1/models/curled/versions"
    out = subprocess.run(
        [
            "curl",
            "-sS",
            "-H",
            f"Authorization: Bearer {token}",
            "-F",
            f"file=@{model}",
            "-F",
            'metadata={"trust": true}',
            url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    version = json.loads(out)
    assert version["format"] == "pickle" and version["status"] == "ready"
    assert version["imported_globals"]  # listed for the user to review

    no_token = subprocess.run(
        ["curl", "-sS", "-F", f"file=@{model}", url],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert json.loads(no_token)["error"]["code"] == "unauthorized"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("predict", "churn", "--input", "[[1, 2"), "The input is not valid JSON"),
        (("predict", "churn", "--input", '"rows"'), "Give a JSON object"),
        (("predict", "churn", "--input", "[[1, 2]]"), "features"),
        (("predict", "nosuch", "--input", "[[1, 2, 3, 4]]"), "nosuch"),
        (("models", "show", "nosuch"), "nosuch"),
    ],
)
def test_client_errors_are_one_clear_line(
    served: Serve, args: tuple[str, ...], message: str
) -> None:
    if args[:2] == ("predict", "churn"):
        modeldepot(
            served.home,
            "models",
            "push",
            "--name",
            "churn",
            "--alias",
            "production",
            str(write_joblib(served.home.parent / "c.joblib", iris_model())),
        )
    result = modeldepot(served.home, *args)
    assert result.returncode == 1
    assert result.stderr.startswith("modeldepot: ") and message in result.stderr
    assert "Traceback" not in result.stderr
