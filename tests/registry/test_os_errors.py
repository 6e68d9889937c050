"""An operating-system shortage (descriptors, memory, disk) is reported as what it is: a 503 or
507 naming the resource, never a 4xx that blames the client's file (app/resources.py)."""

from __future__ import annotations

import errno
import gc
import io
import mimetypes
import os
import resource
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from app.errors import InvalidModelFile
from app.resources import resource_error
from tests.models import write_skops
from tests.registry.conftest import AUTH, error_code


@contextmanager
def no_descriptors_left() -> Iterator[None]:
    """This process may open no further file: a low soft limit, and every free number taken."""
    gc.collect()  # sockets and files earlier tests dropped are closed now, not mid-request
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 16, hard))
    taken: list[int] = []
    try:
        while True:
            try:
                taken.append(os.open(os.devnull, os.O_RDONLY))
            except OSError as exc:
                assert exc.errno == errno.EMFILE
                break
        yield
    finally:
        for fd in taken:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_out_of_descriptors_during_an_upload_is_503_naming_them(
        client: FlaskClient, tmp_path: Path) -> None:
    body = write_skops(tmp_path / "m.skops").read_bytes()
    data = {"file": (io.BytesIO(body), "m.skops")}
    client.get("/api/v1/health")  # the store's connection is open before the limit
    mimetypes.init()  # the test client reads /etc/mime.types to encode the file part
    with no_descriptors_left():
        r = client.post("/api/v1/models/m/versions", data=data, headers=AUTH,
                        content_type="multipart/form-data")
    assert r.status_code == 503, r.get_json()
    assert error_code(r) == "out_of_descriptors"
    assert "open files" in r.get_json()["error"]["message"]
    assert "Retry-After" not in r.headers  # not an admission refusal: no automatic retry
    assert client.get("/api/v1/models/m").status_code == 404  # nothing half-written


def real_os_error(path: str, flags: int = os.O_WRONLY) -> OSError:
    """An OSError the kernel really raises (writing to /dev/full is ENOSPC)."""
    fd = os.open(path, flags)
    try:
        os.write(fd, b"x")
    except OSError as exc:
        return exc
    finally:
        os.close(fd)
    raise AssertionError(f"writing {path} did not fail")


def test_a_full_disk_is_507_even_when_a_check_blamed_the_file() -> None:
    try:
        raise InvalidModelFile("The pickle could not be loaded (OSError); it may be damaged.") \
            from real_os_error("/dev/full")
    except InvalidModelFile as exc:
        found = resource_error(exc)
    assert found is not None and found.status == 507 and found.code == "disk_full"


def test_memory_and_other_errors() -> None:
    memory = resource_error(MemoryError())
    assert memory is not None and memory.status == 503 and memory.code == "out_of_memory"
    assert resource_error(InvalidModelFile("truncated")) is None
    with pytest.raises(FileNotFoundError) as missing:
        open("/nonexistent/file")
    assert resource_error(missing.value) is None
