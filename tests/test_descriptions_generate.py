"""`python -m descriptions.generate` against an OpenAI-compatible HTTP server the test runs on
127.0.0.1 (the real `openai` client, real HTTP): retries, rejected answers, resuming, the key."""
from __future__ import annotations

import http.server
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections import Counter
from typing import Optional

import pytest

from descriptions.generate import main
from fixtures.trainer_fixtures import REPO

KEY = "sk-test-5ecret-key-0123456789"
CATEGORY = re.compile(r'Category: "(.+?)"')


class FakeLLM:
    """State of the fake server: what each class gets (`script`), what was asked and answered."""

    def __init__(self) -> None:
        self.script: dict[str, list[str]] = {}  # class -> behaviours of its next requests ("429", "500", "bad")
        self.asked: list[str] = []
        self.answered: list[str] = []
        self.authorizations: list[str] = []
        self.block_at: Optional[int] = None  # hold the request for the n-th distinct class (1-based)
        self.blocked, self.release = threading.Event(), threading.Event()
        self.lock = threading.Lock()

    def reset(self) -> None:
        self.asked, self.answered, self.script, self.block_at = [], [], {}, None


def make_handler(llm: FakeLLM):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def reply(self, status: int, body: dict, headers: dict = {}) -> None:  # noqa: B006
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            assert self.path == "/v1/chat/completions", self.path
            name = CATEGORY.search(body["messages"][-1]["content"]).group(1)
            with llm.lock:
                llm.authorizations.append(self.headers.get("Authorization", ""))
                llm.asked.append(name)
                behaviour = llm.script.get(name, [])
                action = behaviour.pop(0) if behaviour else "ok"
                hold = llm.block_at is not None and len(dict.fromkeys(llm.asked)) == llm.block_at
            if hold:
                llm.blocked.set()
                llm.release.wait(120)
                return
            if action in ("429", "500"):
                self.reply(int(action), {"error": {"message": "try later", "type": "server", "code": None}},
                           {"Retry-After": "0"})
                return
            content = ("Sure! Here are some descriptions of the category." if action == "bad"
                       else json.dumps({"descriptions": [f"has part {i} of the {name}" for i in range(5)]}))
            with llm.lock:
                if action == "ok":
                    llm.answered.append(name)
            self.reply(200, {
                "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": content}}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})

    return Handler


@pytest.fixture
def llm(monkeypatch):
    state = FakeLLM()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    state.url = f"http://127.0.0.1:{server.server_port}/v1"
    yield state
    state.release.set()
    server.shutdown()
    server.server_close()


def class_file(tmp_path, names: list[str]) -> str:
    path = tmp_path / "classes.txt"
    path.write_text("\n".join(names) + "\n")
    return str(path)


def argv(llm: FakeLLM, classes: str, out: str, *extra: str) -> list[str]:
    return ["--classes", classes, "--out", out, "--base-url", llm.url, "--model", "test-model",
            "-n", "4", "--backoff", "0.01", *extra]


def assert_no_key(*texts: str, folder=None) -> None:
    for text in texts:
        assert KEY not in text
    if folder is not None:
        for directory, _, files in os.walk(folder):
            for name in files:
                with open(os.path.join(directory, name), "rb") as f:
                    assert KEY.encode() not in f.read(), name


def test_retries_rejections_and_output(llm, tmp_path, capsys):
    out = str(tmp_path / "out" / "mine.json")
    llm.script = {"zebra": ["429"], "red panda": ["500"], "cat": ["bad"]}
    assert main(argv(llm, class_file(tmp_path, ["zebra", "cat", "red panda"]), out)) == 0
    with open(out) as f:
        written = json.load(f)
    assert list(written) == ["zebra", "cat", "red panda"]
    assert written["cat"] == [f"has part {i} of the cat" for i in range(4)]  # the first n
    assert Counter(llm.asked) == {"zebra": 2, "cat": 2, "red panda": 2}
    assert set(llm.authorizations) == {f"Bearer {KEY}"}  # the key reached the server ...
    captured = capsys.readouterr()
    log = captured.out + captured.err
    assert "zebra: rate limited (429); retry 1/5" in log and "red panda: server error 500; retry 1/5" in log
    assert "cat: answer rejected (not JSON" in log
    assert "classes: 100%" in captured.err  # the progress bar
    assert os.listdir(tmp_path / "out") == ["mine.json"]  # per-class results folded in, no partial file
    assert_no_key(captured.out, captured.err, folder=tmp_path)  # ... and nothing else


def test_malformed_answers_are_bounded_and_the_rest_kept(llm, tmp_path, capsys):
    out = str(tmp_path / "mine.json")
    classes = class_file(tmp_path, ["dog", "cat"])
    llm.script = {"dog": ["bad"] * 10}
    assert main(argv(llm, classes, out, "--max-attempts", "3")) == 1
    assert Counter(llm.asked) == {"dog": 3, "cat": 1}
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: no valid answer for 1 classes (dog)")
    assert not os.path.exists(out) and len(os.listdir(out + ".parts")) == 1  # cat's result is kept
    llm.reset()
    assert main(argv(llm, classes, out)) == 0
    assert llm.asked == ["dog"]
    with open(out) as f:
        assert list(json.load(f)) == ["dog", "cat"]
    assert_no_key(folder=tmp_path)


def test_interrupted_run_resumes_without_asking_again(llm, tmp_path):
    names = ["ant", "bee", "cow", "elk", "fox"]
    classes, out = class_file(tmp_path, names), str(tmp_path / "mine.json")
    llm.block_at = 3  # the run is interrupted while its third request waits for an answer
    env = dict(os.environ, OPENAI_API_KEY=KEY, PYTHONPATH=REPO)
    proc = subprocess.Popen([sys.executable, "-m", "descriptions.generate", *argv(llm, classes, out)], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert llm.blocked.wait(120), "the generator never reached the third class"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        llm.release.set()
    assert proc.returncode == 130 and "interrupted" in stderr
    first = list(llm.answered)
    assert first == ["ant", "bee"] and not os.path.exists(out)

    llm.reset()
    assert main(argv(llm, classes, out)) == 0
    assert not set(first) & set(llm.asked) and set(first) | set(llm.asked) == set(names)
    assert sorted(Counter(llm.asked).values()) == [1, 1, 1]
    with open(out) as f:
        assert list(json.load(f)) == names
    assert_no_key(stdout, stderr, folder=tmp_path)


def test_key_comes_from_the_environment_only(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    code = main(["--classes", class_file(tmp_path, ["cat"]), "--model", "m"])
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        "error: set the API key in the environment variable OPENAI_API_KEY (or give --base-url for a server "
        "without keys)")
