"""`python -m descriptions.download` against a local HTTP server (127.0.0.1) serving description
files the test writes, under the published names and with their checksums in PUBLISHED (the
published checksums themselves are checked in test_descriptions.py)."""
from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import socket
import threading

import pytest

from descriptions import PUBLISHED, read_descriptions
from descriptions.download import main


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A local mirror of the published folder; yields its folder (files may be edited)."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    for n_classes, key in enumerate(("eurosat", "dtd", "imagenet_a"), start=2):
        name = PUBLISHED[key][0]
        data = json.dumps({f"class {i}": ["has a shape", "is a colour"] for i in range(n_classes)}).encode()
        (folder / name).write_bytes(data)
        monkeypatch.setitem(PUBLISHED, key, (name, hashlib.sha256(data).hexdigest()))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    monkeypatch.setenv("PROMPTKIT_DESCRIPTIONS_URL", f"http://127.0.0.1:{server.server_port}/")
    yield folder
    server.shutdown()
    server.server_close()


def test_download_checks_and_writes(mirror, tmp_path, capsys):
    target = tmp_path / "descriptions"
    assert main(["eurosat", "imagenet_a", "--dir", str(target)]) == 0
    assert sorted(os.listdir(target)) == ["eurosat.json", "imagenet_a.json"]  # no partial file left
    assert len(read_descriptions(str(target / "imagenet_a.json"))) == 4
    out = capsys.readouterr()
    assert "downloaded (eurosat_attributes.json, checksum ok)" in out.out
    assert "eurosat" in out.err  # the progress bar
    # Present and correct: kept, not fetched again.
    (mirror / PUBLISHED["eurosat"][0]).unlink()
    assert main(["eurosat", "--dir", str(target)]) == 0
    assert "present, checksum ok" in capsys.readouterr().out


def test_corrupted_file_is_not_written(mirror, tmp_path, capsys):
    path = mirror / PUBLISHED["dtd"][0]
    path.write_bytes(path.read_bytes().replace(b"has", b"had", 1))
    target = tmp_path / "descriptions"
    assert main(["dtd", "--dir", str(target)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and "differs from the published" in err
    assert os.listdir(target) == []


def test_offline_and_unknown_are_one_line(tmp_path, monkeypatch, capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("PROMPTKIT_DESCRIPTIONS_URL", f"http://127.0.0.1:{port}/")
    assert main(["eurosat", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: cannot reach 127.0.0.1:{port}") and "offline?" in err[0]
    assert main(["cifar10", "--dir", str(tmp_path)]) == 2
    assert "no published descriptions for cifar10" in capsys.readouterr().err
