"""Resumable HTTP downloads and safe archive extraction (scripts/download_data.py, ELEVATER)."""
from __future__ import annotations

import hashlib
import os
import tarfile
import urllib.error
import urllib.request
import zipfile
from typing import Optional


def md5sum(path: str, chunk: int = 1 << 20) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def http_download(url: str, dst: str, md5: Optional[str] = None, chunk: int = 1 << 20) -> str:
    """Download url to dst, resuming dst + ".part" with an HTTP Range request; check md5; then
    os.replace the part file onto dst."""
    from tqdm import tqdm

    part = dst + ".part"
    start = os.path.getsize(part) if os.path.exists(part) else 0
    headers = {"User-Agent": "promptkit-download-data"}
    if start:
        headers["Range"] = f"bytes={start}-"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60) as resp:
            if start and resp.status != 206:  # the server ignored the range: start over
                start = 0
            length = resp.headers.get("Content-Length")
            total = start + int(length) if length else None
            with open(part, "ab" if start else "wb") as f, \
                    tqdm(total=total, initial=start, unit="B", unit_scale=True,
                         desc=os.path.basename(dst)) as bar:
                while block := resp.read(chunk):
                    f.write(block)
                    bar.update(len(block))
    except urllib.error.HTTPError as err:
        if err.code != 416:  # 416: the part file is already complete
            raise
    verify_md5(part, md5)
    os.replace(part, dst)
    return dst


def verify_md5(path: str, md5: Optional[str]) -> None:
    if md5 is None:
        return
    actual = md5sum(path)
    if actual != md5:
        bad = path + ".bad"
        os.replace(path, bad)
        raise ValueError(f"MD5 mismatch for {path}: got {actual}, expected {md5} (kept as {bad})")


def extract(archive: str, dest: str) -> None:
    """Extract a .zip/.tar[.gz]/.tgz into dest, refusing members that would land outside it."""
    os.makedirs(dest, exist_ok=True)
    if archive.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            root = os.path.realpath(dest)
            for member in zf.namelist():
                target = os.path.realpath(os.path.join(dest, member))
                if target != root and not target.startswith(root + os.sep):
                    raise ValueError(f"{archive}: member {member!r} would be written outside {dest}")
            zf.extractall(dest)
    else:
        with tarfile.open(archive, "r:*") as tf:
            tf.extractall(dest, filter="data")
