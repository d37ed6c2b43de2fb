"""Only regular files are read: a FIFO, a device, a socket or a directory is refused at once."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from sketchsearch.data.errors import ImageDecodeError
from sketchsearch.data.imagefile import check_image_file, read_bytes
from sketchsearch.data.regular_file import UnusableName, name_from_line, read_regular_file


def read_within(path: object, seconds: float = 10.0) -> BaseException | bytes:
    """read_bytes(path) in a thread; fails the test (instead of hanging) when it blocks."""
    outcome: list[BaseException | bytes] = []

    def target() -> None:
        try:
            outcome.append(read_bytes(path))  # type: ignore[arg-type]
        except BaseException as err:  # handed back to the test
            outcome.append(err)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"reading {path} blocked"
    return outcome[0]


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "sketch.png"
    os.mkfifo(fifo)
    err = read_within(fifo)
    assert isinstance(err, ImageDecodeError)
    assert str(err) == f"{fifo}: is a FIFO, not an image file"
    assert "\n" not in str(err)


def test_a_directory_and_a_character_device_are_refused(tmp_path: Path) -> None:
    err = read_within(tmp_path)
    assert isinstance(err, ImageDecodeError) and "is a directory" in err.problem
    err = read_within(Path(os.devnull))
    assert isinstance(err, ImageDecodeError)
    assert err.problem == "is a character device, not an image file"


def test_a_socket_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.png"
    with socket.socket(socket.AF_UNIX) as server:
        try:
            server.bind(str(path))
        except OSError as err:  # a tmp path too long for AF_UNIX
            pytest.skip(f"cannot bind a socket here: {err}")
        err2 = read_within(path)
    assert isinstance(err2, ImageDecodeError) and err2.problem.startswith("is a socket")


def test_a_symlink_to_a_fifo_is_refused_and_to_a_file_is_read(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "link.png").symlink_to(tmp_path / "fifo")
    err = read_within(tmp_path / "link.png")
    assert isinstance(err, ImageDecodeError) and "FIFO" in err.problem
    (tmp_path / "real").write_bytes(b"\x89PNG\r\n\x1a\nabc")  # read_bytes wants a signature
    (tmp_path / "ok.png").symlink_to(tmp_path / "real")
    assert read_within(tmp_path / "ok.png") == b"\x89PNG\r\n\x1a\nabc"


def test_verify_reports_a_fifo_as_a_problem(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "a.png")
    assert check_image_file(tmp_path / "a.png") == "is a FIFO, not an image file"


def test_a_size_bound_and_a_nul_byte(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(b"x" * 100)
    assert read_regular_file(tmp_path / "big", max_bytes=100) == b"x" * 100
    with pytest.raises(ImageDecodeError, match="larger than 99 bytes"):
        read_regular_file(tmp_path / "big", max_bytes=99)
    with pytest.raises(ImageDecodeError, match=r"^a\\x00b: not a valid path: it holds a NUL"):
        read_regular_file("a\0b")


def test_list_lines_that_cannot_be_paths_fail_alone() -> None:
    assert name_from_line(b"  photos/a.png\r\n") == "photos/a.png"
    for raw, problem in ((b"a\0b.png\n", "NUL byte"), (b"caf\xe9.png\n", "not UTF-8")):
        name = name_from_line(raw)
        assert isinstance(name, UnusableName) and problem in name.problem
        with pytest.raises(ImageDecodeError, match=problem) as caught:
            read_regular_file(name)
        assert "\n" not in str(caught.value) and "\0" not in str(caught.value)
    assert str(name_from_line(b"caf\xe9.png")) == "caf\\xe9.png"
