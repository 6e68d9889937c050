"""Settings resolution: flag > environment > config.toml > default."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from app.config import SETTINGS, SUPERVISOR_PID_ENV, Settings, is_loopback_host, resolve
from app.errors import BadRequest
from app.net import host_of, is_loopback
from app.security import api_token


def test_every_setting_is_a_field() -> None:
    """Defaults are written once (the table); each setting still needs its typed field."""
    fields = {f.name for f in dataclasses.fields(Settings) if f.name != "sources"}
    assert fields == {s.name for s in SETTINGS}


def test_precedence(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        'registry_port = 9000\ninference_port = 9001\nauth = "all"\n'
    )
    env = {"MODELDEPOT_HOME": str(tmp_path), "MODELDEPOT_INFERENCE_PORT": "9101"}
    s = resolve({"auth": "none"}, env)
    assert (s.registry_port, s.inference_port, s.auth) == (9000, 9101, "none")
    assert s.sources["registry_port"] == "config.toml" and s.sources["auth"] == "flag"
    assert s.home == tmp_path.resolve()


def test_defaults_and_sizes(tmp_path: Path) -> None:
    s = resolve({}, {"MODELDEPOT_HOME": str(tmp_path), "MODELDEPOT_MAX_UPLOAD_BYTES": "512M"})
    assert s.registry_port == 8720 and s.inference_port == 8721 and s.auth == "writes"
    assert s.max_upload_bytes == 512 << 20


@pytest.mark.parametrize(
    "env",
    [
        {"MODELDEPOT_REGISTRY_PORT": "99999"},
        {"MODELDEPOT_AUTH": "sometimes"},
        {"MODELDEPOT_MAX_UPLOAD_BYTES": "-1"},
    ],
)
def test_bad_values_name_the_setting(tmp_path: Path, env: dict[str, str]) -> None:
    with pytest.raises(BadRequest, match="Setting"):
        resolve({}, {"MODELDEPOT_HOME": str(tmp_path), **env})


def test_unknown_config_key_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("colour = 1\n")
    with pytest.raises(BadRequest, match="colour"):
        resolve({}, {"MODELDEPOT_HOME": str(tmp_path)})


def test_non_loopback_needs_allow_remote(tmp_path: Path) -> None:
    env = {"MODELDEPOT_HOME": str(tmp_path), "MODELDEPOT_HOST": "0.0.0.0"}
    with pytest.raises(BadRequest, match="allow_remote"):
        resolve({}, env)
    assert resolve({"allow_remote": "true"}, env).effective_auth == "all"


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST", "127.0.0.1", "::1", "[::1]",
                                  "ip6-localhost", "api.localhost"])
def test_every_loopback_name_the_host_check_takes_may_be_bound(tmp_path: Path,
                                                                 host: str) -> None:
    s = resolve({"host": host}, {"MODELDEPOT_HOME": str(tmp_path)})
    assert is_loopback_host(s.host) and is_loopback(host_of(host))
    assert s.effective_auth == "writes"


def test_a_supervisor_child_does_not_read_config_toml(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("colour = 1\n")  # broken after the supervisor started
    env = {"MODELDEPOT_HOME": str(tmp_path), SUPERVISOR_PID_ENV: "1",
           "MODELDEPOT_REGISTRY_PORT": "9000"}
    assert resolve({}, env).registry_port == 9000
    with pytest.raises(BadRequest, match="colour"):  # a server started by hand still reads it
        resolve({}, {"MODELDEPOT_HOME": str(tmp_path)})


def test_a_damaged_token_file_is_an_error_that_says_what_to_do(tmp_path: Path) -> None:
    settings = resolve({}, {"MODELDEPOT_HOME": str(tmp_path)})
    settings.paths.token_file.parent.mkdir(parents=True, exist_ok=True)
    settings.paths.token_file.write_bytes(b"\xffshort")
    with pytest.raises(BadRequest, match="delete it to make a new one"):
        api_token(settings)


def test_the_cli_reaches_an_ipv6_loopback_server(tmp_path: Path) -> None:
    from app.cli import build_parser
    from app.cli.common import server_client

    args = build_parser().parse_args(["models", "list", "--home", str(tmp_path),
                                      "--host", "::1", "--registry-port", "9000"])
    assert server_client(args).base_url == "http://[::1]:9000"
