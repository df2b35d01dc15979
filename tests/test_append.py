"""Appending to a shared file (exporters/_append.py), with os.pread and with the seek-and-read
used where os.pread does not exist (Windows)."""

from __future__ import annotations

import threading

import pytest

from otel_carbon.exporters import _append


def _row_payload(row: bytes):
    def payload(head: bytes, size: int, ends_with_newline: bool) -> bytes:
        out = b"" if ends_with_newline else b"\n"
        if size == 0 or not head.startswith(b"header\n"):
            out += b"header\n"
        return out + row

    return payload


@pytest.mark.parametrize("reader", ["pread", "seek_read"])
def test_threads_append_whole_rows_after_one_header(tmp_path, monkeypatch, reader):
    if reader == "seek_read":
        monkeypatch.setattr(_append, "read_at", _append.seek_read)
    path = tmp_path / "rows.csv"
    path.write_bytes(b"header\npartial")  # a previous writer died without its newline

    def writer(k: int) -> None:
        for i in range(50):
            _append.locked_append(str(path), _row_payload(f"{k},{i}\n".encode()))

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = path.read_bytes().split(b"\n")
    assert lines[0] == b"header" and lines[1] == b"partial" and lines[-1] == b""
    rows = lines[2:-1]
    assert sorted(rows) == sorted(f"{k},{i}".encode() for k in range(4) for i in range(50))


def test_seek_read_reads_at_the_offset(tmp_path):
    import os

    path = tmp_path / "f"
    path.write_bytes(b"0123456789")
    fd = os.open(path, os.O_RDONLY)
    try:
        assert _append.seek_read(fd, 3, 4) == b"456"
        assert _append.seek_read(fd, 1, 9) == b"9"
        assert _append.seek_read(fd, 5, 0) == b"01234"
    finally:
        os.close(fd)
