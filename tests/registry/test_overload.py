"""Overload is refused, not absorbed: past max_uploads_in_progress an upload is a 503 with
Retry-After and nothing is written; the command-line client waits and sends it again."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.client import (
    BACKOFF_CAP,
    PLACE_HEADER,
    TICKET_HEADER,
    Client,
    ClientError,
    retry_delay,
)
from app.config import Settings
from app.errors import Overloaded
from app.registry.admission import UploadSlots
from tests.conftest import TOKEN
from tests.live import wait_until
from tests.models import write_skops
from tests.registry.conftest import AUTH, error_code, registry_app, upload
from tests.registry.inthread import serving
from tests.registry.jobdata import classification_csv

LIMIT = 2


@pytest.fixture
def busy_app(settings: Settings) -> Any:
    with registry_app(settings.replace(max_uploads_in_progress=LIMIT)) as app:
        yield app


def slots(app: Flask) -> UploadSlots:
    found: UploadSlots = app.extensions["modeldepot"].uploads
    return found


def temp_files(settings: Settings) -> list[Path]:
    return [p for p in settings.paths.tmp.iterdir() if p.is_file()]


def test_past_the_limit_an_upload_is_503_with_retry_after_and_nothing_written(
        busy_app: Flask, settings: Settings, tmp_path: Path) -> None:
    client: FlaskClient = busy_app.test_client()
    model = write_skops(tmp_path / "m.skops")
    for _ in range(LIMIT):
        slots(busy_app).take()  # uploads in progress elsewhere
    refused = upload(client, "m", model)
    assert refused.status_code == 503 and error_code(refused) == "overloaded"
    assert int(refused.headers["Retry-After"]) >= 1
    assert "max_uploads_in_progress" in refused.get_json()["error"]["message"]
    csv = tmp_path / "d.csv"
    csv.write_bytes(classification_csv())
    with csv.open("rb") as f:
        dataset = client.post("/api/v1/datasets", data={"file": (f, "d.csv")}, headers=AUTH,
                              content_type="multipart/form-data")
    assert dataset.status_code == 503 and dataset.headers["Retry-After"]
    assert client.get("/api/v1/models/m").status_code == 404
    assert client.get("/api/v1/datasets").get_json()["datasets"] == []
    assert temp_files(settings) == []
    assert client.get("/api/v1/health").status_code == 200  # reads go on
    # Each refusal was given a place in line; a freed slot goes to the first in line.
    ticket = refused.headers[TICKET_HEADER]
    assert refused.headers[PLACE_HEADER] == "1" and dataset.headers[PLACE_HEADER] == "2"
    assert ticket in refused.get_json()["error"]["message"]
    slots(busy_app).give_back()
    newcomer = upload(client, "m", model)
    assert newcomer.status_code == 503 and newcomer.headers[PLACE_HEADER] == "3"
    assert upload(client, "m", model, headers={**AUTH, TICKET_HEADER: ticket}).status_code == 201


def test_every_upload_gives_its_slot_back_stored_or_refused(
        busy_app: Flask, tmp_path: Path) -> None:
    client: FlaskClient = busy_app.test_client()
    good, bad = write_skops(tmp_path / "m.skops"), tmp_path / "bad.skops"
    bad.write_bytes(b"not a model")
    for _ in range(3 * LIMIT):
        assert upload(client, "m", good).status_code == 201
        assert upload(client, "m", bad).status_code == 422
    assert slots(busy_app).in_progress == 0 and slots(busy_app).refused == 0


def test_the_client_waits_and_sends_a_refused_upload_again(
        busy_app: Flask, settings: Settings, tmp_path: Path) -> None:
    model = write_skops(tmp_path / "m.skops")
    for _ in range(LIMIT):
        slots(busy_app).take()
    notices: list[str] = []
    outcome: dict[str, Any] = {}
    with serving(busy_app, settings) as base:
        client = Client(base, TOKEN, notice=notices.append)

        def push() -> None:
            try:
                outcome["version"] = client.upload("m", model, {"description": "retried"})
            except ClientError as exc:
                outcome["error"] = exc

        pusher = threading.Thread(target=push)
        pusher.start()
        wait_until(lambda: slots(busy_app).refused >= 1, 30, "the first attempt was refused")
        assert "version" not in outcome
        # A newcomer does not take the freed slot from the one in line.
        slots(busy_app).give_back()
        with pytest.raises(ClientError) as newcomer:
            Client(base, TOKEN, retries=0).upload("m", model, {})
        assert newcomer.value.status == 503 and "number 2 in line" in str(newcomer.value)
        assert "version" not in outcome
        slots(busy_app).give_back()
        pusher.join(60)
    assert "error" not in outcome, outcome
    assert outcome["version"]["version"] == 1
    assert outcome["version"]["description"] == "retried"
    assert notices and "busy" in notices[0]
    assert temp_files(settings) == []


def test_retry_delays_honour_retry_after_double_and_are_capped() -> None:
    for attempt in range(12):
        delay = retry_delay(attempt, 2)
        expected = max(2.0, min(BACKOFF_CAP, 2.0**attempt))
        assert expected <= delay <= 1.5 * expected
    assert {round(retry_delay(0, 2), 6) for _ in range(20)} != {2.0}  # jittered


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def refusal(line: UploadSlots, ticket: str | None = None) -> Overloaded:
    with pytest.raises(Overloaded) as refused:
        line.take(ticket)
    return refused.value


def test_freed_slots_go_to_the_line_in_order_and_newcomers_queue_behind() -> None:
    clock = Clock()
    line = UploadSlots(2, clock=clock)
    held = [line.take(), line.take()]
    first, second, third = refusal(line), refusal(line), refusal(line)
    assert [first.place, second.place, third.place] == [1, 2, 3]
    assert first.retry_after <= second.retry_after <= third.retry_after
    line.give_back(held.pop())
    assert refusal(line).place == 4  # a newcomer
    assert refusal(line, second.ticket).ticket == second.ticket  # not its turn yet
    line.take(first.ticket)
    line.give_back(held.pop())
    line.give_back(clock.now)
    line.take(second.ticket)
    line.take(third.ticket)
    assert line.in_progress == 2 and line.waiting == 1  # the newcomer's place
    assert refusal(line, "made-up").place == 2  # an unknown ticket is a newcomer


def test_a_place_lapses_when_its_holder_does_not_come_back() -> None:
    clock = Clock()
    line = UploadSlots(1, clock=clock)
    taken = line.take()
    gone = refusal(line)
    clock.now += 5
    line.give_back(taken)
    assert refusal(line).place == 2  # the slot is kept for the first in line ...
    clock.now += gone.retry_after + 60
    line.take()  # ... until its place lapses
    assert line.waiting == 0 and refusal(line, gone.ticket).place == 1  # back of the line


def test_the_line_is_bounded() -> None:
    line = UploadSlots(1)
    line.take()
    places = [refusal(line).place for _ in range(line.max_line)]
    assert places == list(range(1, line.max_line + 1))
    full = refusal(line)
    assert full.ticket is None and "the most the line holds" in full.message
    assert 1 <= full.retry_after <= 30
