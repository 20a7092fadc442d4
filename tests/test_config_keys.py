"""docs/CONFIG_KEYS.md lists every config key the project adds, each with a note."""
import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_config_keys_doc_is_current_and_every_key_has_a_note():
    generated = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "config_keys.py")],
                               capture_output=True, text=True, check=True, cwd=REPO).stdout
    with open(os.path.join(REPO, "docs", "CONFIG_KEYS.md"), encoding="utf-8") as f:
        assert f.read() == generated, "docs/CONFIG_KEYS.md is stale: run python scripts/config_keys.py > docs/CONFIG_KEYS.md"
    rows = [line for line in generated.splitlines() if line.startswith("| `")]
    assert len(rows) > 100  # TRAINER.<NAME>.* of every trainer, DESCRIPTIONS.*, DATASET.* extras
    notes = {row.split("`")[1]: re.match(r"^\| `.+?` \| `.*?` \| `.+?` \|(.*)\|$", row).group(1).strip()
             for row in rows}
    undocumented = [key for key, note in notes.items() if not note]
    assert not undocumented, f"keys without a note: {undocumented}"
