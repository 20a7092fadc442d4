"""Download the class descriptions published with SAP into the descriptions folder.

    python -m descriptions.download [DATASET ...] [--dir DIR] [--force]

DATASET: keys as in configs/datasets/ (caltech101, dtd, eurosat, fgvc_aircraft, food101, imagenet,
imagenetv2, imagenet_sketch, imagenet_a, imagenet_r, oxford_flowers, oxford_pets, stanford_cars,
sun397, ucf101); none = all. Each file is fetched from SAP's public repository at a fixed commit
(`semantic_descriptions/<name>_attributes.json`), its SHA256 checked, and written atomically as
<DIR>/<DATASET>.json, where training finds it (DIR: --dir, else $PROMPTKIT_DESCRIPTIONS_DIR, else
~/.cache/promptkit/descriptions). A file already there with the right checksum is kept.
$PROMPTKIT_DESCRIPTIONS_URL replaces the source folder (a mirror).
"""
from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.parse
from typing import Optional, Sequence

from tqdm import tqdm

from clip.clip import _file_sha256, _sha256
from datasets.download import http_download

from .library import PUBLISHED, descriptions_dir

SOURCE = ("https://raw.githubusercontent.com/HariChandana1102/"
          "Semantic-Alignment-for-Prompt-Tuning-in-Vision-Language-Models/"
          "2781d31dfbdd218626f70d26e13f5769849a0f2d/semantic_descriptions/")
ENV_URL = "PROMPTKIT_DESCRIPTIONS_URL"


class DownloadError(Exception):
    """Reported as one line."""


def fetch(url: str, target: str, sha256: str) -> None:
    """url -> target, through the project's resumable downloader (datasets.download) into a
    file beside it that replaces target (os.replace, atomic) only when its SHA256 is `sha256`."""
    host = urllib.parse.urlsplit(url).netloc or url
    folder = os.path.dirname(target)
    fetched = target + ".download"
    try:
        http_download(url, fetched)
    except urllib.error.HTTPError as err:
        raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
        reason = getattr(err, "reason", err)
        raise DownloadError(
            f"cannot reach {host} ({reason}): offline? Fetch {SOURCE}<name>_attributes.json on a "
            f"machine with internet access and copy it to {folder}/<dataset>.json, or point "
            f"DESCRIPTIONS.FILE at it") from None
    actual = _sha256(fetched)
    if actual != sha256:
        os.remove(fetched)
        raise DownloadError(f"{url}: SHA256 {actual} differs from the published {sha256}; nothing was written")
    os.replace(fetched, target)


def download(keys: Sequence[str], directory: str, force: bool = False, source: Optional[str] = None) -> list[str]:
    """Fetch each key's published file into directory; returns the paths (kept or written)."""
    unknown = [k for k in keys if k not in PUBLISHED]
    if unknown:
        raise DownloadError(f"no published descriptions for {', '.join(unknown)}; known: {', '.join(PUBLISHED)}")
    source = source or os.environ.get(ENV_URL) or SOURCE
    if not source.endswith("/"):
        source += "/"
    os.makedirs(directory, exist_ok=True)
    paths = []
    for key in tqdm(keys, desc="descriptions", unit="file", disable=len(keys) < 2):
        name, sha256 = PUBLISHED[key]
        target = os.path.join(directory, key + ".json")
        if not force and os.path.isfile(target) and _file_sha256(target) == sha256:
            print(f"{target}: present, checksum ok")
        else:
            fetch(source + name, target, sha256)
            print(f"{target}: downloaded ({name}, checksum ok)")
        paths.append(target)
    return paths


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m descriptions.download", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="*", metavar="DATASET", help="keys (default: all)")
    parser.add_argument("--dir", default="", help="target folder (default: $PROMPTKIT_DESCRIPTIONS_DIR or "
                                                   "~/.cache/promptkit/descriptions)")
    parser.add_argument("--force", action="store_true", help="download even when a correct file is present")
    args = parser.parse_args(argv)
    try:
        download(args.datasets or list(PUBLISHED), descriptions_dir(args.dir), args.force)
    except (DownloadError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted (files already downloaded are complete; run again to fetch the rest)",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
