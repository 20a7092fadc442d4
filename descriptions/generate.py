"""Generate class descriptions with any OpenAI-compatible LLM (OpenAI, a local vLLM or Ollama, ...).

    python -m descriptions.generate --dataset oxford_pets --root $DATA --model gpt-4o-mini
    python -m descriptions.generate --classes my_classes.txt --out my.json \\
        --base-url http://localhost:8000/v1 --model Qwen/Qwen2.5-7B-Instruct

For every class, the prompt (a template file, default descriptions/generate_prompt.txt, where
{classname}, {dataset} and {n} are replaced) asks for N descriptions; the answer must be JSON
{"descriptions": [...]}: non-empty strings whose SAP sentence fits CLIP's 77 tokens. The first N
valid ones are kept. The output is the SAP file format {"<class>": [...]}, by default
<DESCRIPTIONS dir>/<dataset>.json where training finds it.

- API key: read from the environment only (--api-key-env, default OPENAI_API_KEY), never printed
  or written; servers that need none (--base-url given, variable unset) get a placeholder.
- Retries: rate limits (429), server errors (5xx), timeouts, lost connections and rejected
  answers are retried with exponential back-off (Retry-After honoured), at most --max-attempts
  requests per class. Other errors (bad key, unknown model) stop the run.
- Resumable: each class's result is written atomically to <out>.parts/ as soon as it arrives, so
  an interrupted or failed run, started again with the same command, asks only for the classes
  still missing; the output file is written (atomically) once every class has its descriptions.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import sys
import time
from typing import Any, Callable, Optional, Sequence

from tqdm import tqdm

from datasets.splits import write_json_atomic

from .library import DATASET_KEYS, dataset_key, descriptions_dir, read_descriptions, validate
from .template import CONTEXT_LENGTH, sentence_length

PROMPT_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "generate_prompt.txt")
MAX_BACKOFF_S = 60.0
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)


class GenerateError(Exception):
    """Stops the run; reported as one line."""


class Rejected(Exception):
    """An answer that is not the JSON asked for."""


def parse_answer(content: Optional[str], classname: str, n: int) -> list[str]:
    """The first n valid descriptions of an answer, or Rejected saying why."""
    text = (content or "").strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    try:
        answer = json.loads(text)
    except json.JSONDecodeError:
        raise Rejected(f"not JSON: {text[:60]!r}") from None
    entries = answer.get("descriptions") if isinstance(answer, dict) else None
    if not isinstance(entries, list):
        raise Rejected('no "descriptions" list')
    kept = [" ".join(e.split()) for e in entries if isinstance(e, str) and e.strip()]
    kept = [e for e in kept if sentence_length(classname, e) <= CONTEXT_LENGTH]
    if not kept:
        raise Rejected("no usable description (empty, not strings, or too long for CLIP)")
    return kept[:n]


class Generator:
    """Asks for one class at a time through an `openai.OpenAI` client (see the module docstring)."""

    def __init__(self, client: Any, model: str, prompt: str, dataset: str, n: int, max_attempts: int,
                 backoff: float, json_mode: bool, secret: str = "",
                 log: Callable[[str], None] = tqdm.write, sleep: Callable[[float], None] = time.sleep):
        self.client, self.model, self.prompt, self.dataset, self.n = client, model, prompt, dataset, n
        self.max_attempts, self.backoff, self.json_mode = max_attempts, backoff, json_mode
        self.secret, self.log, self.sleep = secret, log, sleep

    def redact(self, text: str) -> str:
        return text.replace(self.secret, "***") if self.secret else text

    def request(self, classname: str) -> Optional[str]:
        text = self.prompt.replace("{classname}", classname).replace("{dataset}", self.dataset)
        text = text.replace("{n}", str(self.n))
        extra = {"response_format": {"type": "json_object"}} if self.json_mode else {}
        reply = self.client.chat.completions.create(
            model=self.model, messages=[{"role": "user", "content": text}], **extra)
        return reply.choices[0].message.content if reply.choices else None

    def describe(self, classname: str) -> Optional[list[str]]:
        """The class's descriptions, or None after max_attempts failed tries."""
        import openai

        for attempt in range(1, self.max_attempts + 1):
            wait = self.backoff * 2 ** (attempt - 1) * random.uniform(0.8, 1.2)
            try:
                return parse_answer(self.request(classname), classname, self.n)
            except Rejected as why:
                problem = f"answer rejected ({why})"
            except openai.APIStatusError as err:
                if err.status_code != 429 and err.status_code < 500:
                    raise GenerateError(self.redact(f"{classname}: HTTP {err.status_code}: {err.message}")) from None
                problem = "rate limited (429)" if err.status_code == 429 else f"server error {err.status_code}"
                retry_after = err.response.headers.get("retry-after", "")
                if retry_after.replace(".", "", 1).isdigit():
                    wait = float(retry_after)
            except (openai.APIConnectionError, openai.APITimeoutError) as err:
                problem = f"no answer ({type(err).__name__})"
            wait = min(wait, MAX_BACKOFF_S)
            if attempt < self.max_attempts:
                self.log(self.redact(f"{classname}: {problem}; retry {attempt}/{self.max_attempts - 1} in {wait:.1f} s"))
                self.sleep(wait)
            else:
                self.log(self.redact(f"{classname}: {problem}; giving up after {attempt} requests"))
        return None


def part_path(parts: str, classname: str) -> str:
    return os.path.join(parts, hashlib.sha1(classname.encode()).hexdigest()[:16] + ".json")


def finished(out: str, parts: str, classnames: Sequence[str]) -> dict[str, list[str]]:
    """Descriptions already obtained: the output file's entries and the per-class results."""
    done: dict[str, list[str]] = {}
    if os.path.isfile(out):
        done.update(read_descriptions(out))
    for name in classnames:
        path = part_path(parts, name)
        if name not in done and os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                entry = json.load(f)
            if entry.get("class") == name:
                done[name] = validate({name: entry.get("descriptions")}, path)[name]
    return done


def generate(generator: Generator, classnames: Sequence[str], out: str) -> list[str]:
    """Fill `out` for classnames; returns the classes that failed (the output then is not written)."""
    parts = out + ".parts"
    done = finished(out, parts, classnames)
    todo = [name for name in classnames if name not in done]
    if len(done) and todo:
        generator.log(f"Resuming: {len(classnames) - len(todo)} of {len(classnames)} classes already done")
    failed = []
    with tqdm(total=len(classnames), initial=len(classnames) - len(todo), unit="class", desc="classes") as bar:
        for name in todo:
            result = generator.describe(name)
            if result is None:
                failed.append(name)
            else:
                done[name] = result
                write_json_atomic({"class": name, "descriptions": result}, part_path(parts, name))
            bar.update(1)
    if failed:
        return failed
    write_json_atomic({name: done[name] for name in classnames}, out)
    for name in classnames:
        if os.path.exists(part_path(parts, name)):
            os.remove(part_path(parts, name))
    if os.path.isdir(parts) and not os.listdir(parts):
        os.rmdir(parts)
    return []


def read_class_list(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        names = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    if not names:
        raise GenerateError(f"{path}: no class names (one per line)")
    return list(dict.fromkeys(names))


def dataset_classnames(dataset: str, root: str) -> tuple[str, list[str]]:
    """(file key, class names as the dataset's loader gives them) for a dataset key or DATASET.NAME."""
    by_key = {key: name for name, key in DATASET_KEYS.items()}
    name = by_key.get(dataset, dataset)
    import datasets  # noqa: F401 - registers the dataset names
    from dassl.config import get_cfg_default
    from dassl.data.datasets import DATASET_REGISTRY

    if name not in DATASET_REGISTRY.registered_names():
        raise GenerateError(f"unknown dataset {dataset!r}; known: {', '.join(DATASET_KEYS.values())} "
                            "(or give --classes FILE)")
    if not root:
        raise GenerateError("--dataset needs the datasets folder: --root DIR (or $DATA); or give --classes FILE")
    cfg = get_cfg_default()
    datasets.extend_cfg(cfg)
    cfg.DATASET.NAME, cfg.DATASET.ROOT = name, root
    names = DATASET_REGISTRY.get(name)(cfg).classnames
    return dataset_key(name), [n.replace("_", " ") for n in dict.fromkeys(names)]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m descriptions.generate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", help="dataset key (oxford_pets, ...) or DATASET.NAME; needs --root")
    source.add_argument("--classes", help="text file, one class name per line")
    parser.add_argument("--root", default=os.environ.get("DATA", ""), help="datasets folder (default: $DATA)")
    parser.add_argument("--out", help="output JSON (default: <DESCRIPTIONS dir>/<dataset or class file name>.json)")
    parser.add_argument("--dir", default="", help="DESCRIPTIONS dir for the default output")
    parser.add_argument("--model", required=True, help="model name on the server")
    parser.add_argument("--base-url", default=None, help="OpenAI-compatible endpoint (default: the client's, "
                                                         "$OPENAI_BASE_URL or OpenAI)")
    parser.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the key")
    parser.add_argument("-n", "--num-descriptions", type=int, default=8, help="descriptions per class")
    parser.add_argument("--prompt-template", default=PROMPT_FILE, help="prompt file ({classname}, {dataset}, {n})")
    parser.add_argument("--max-attempts", type=int, default=6, help="requests per class at most")
    parser.add_argument("--backoff", type=float, default=2.0, help="first retry wait in seconds (doubles)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    parser.add_argument("--no-json-mode", action="store_true", help="do not send response_format json_object "
                                                                     "(servers without it)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    secret = os.environ.get(args.api_key_env, "")
    try:
        if args.num_descriptions < 1 or args.max_attempts < 1:
            raise GenerateError("--num-descriptions and --max-attempts must be >= 1")
        if not secret and not args.base_url:
            raise GenerateError(f"set the API key in the environment variable {args.api_key_env} "
                                "(or give --base-url for a server without keys)")
        if args.classes:
            classnames = read_class_list(args.classes)
            key = os.path.splitext(os.path.basename(args.classes))[0]
        else:
            key, classnames = dataset_classnames(args.dataset, args.root)
        out = args.out or os.path.join(descriptions_dir(args.dir), key + ".json")
        with open(args.prompt_template, encoding="utf-8") as f:
            prompt = f.read()
        import openai

        client = openai.OpenAI(api_key=secret or "none", base_url=args.base_url, max_retries=0, timeout=args.timeout)
        generator = Generator(client, args.model, prompt, key, args.num_descriptions, args.max_attempts,
                              args.backoff, not args.no_json_mode, secret)
        print(f"Asking {args.model} for {args.num_descriptions} descriptions of each of {len(classnames)} classes; "
              f"output {out}", flush=True)
        failed = generate(generator, classnames, out)
    except KeyboardInterrupt:
        print("error: interrupted; the classes done so far are saved: run the same command to resume",
              file=sys.stderr)
        return 130
    except (GenerateError, OSError, ValueError) as err:
        message = str(err).replace(secret, "***") if secret else str(err)
        print(f"error: {message}", file=sys.stderr)
        return 2
    if failed:
        print(f"error: no valid answer for {len(failed)} classes ({', '.join(failed[:5])}"
              f"{', ...' if len(failed) > 5 else ''}); the others are saved: run the same command to retry them",
              file=sys.stderr)
        return 1
    print(f"Wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
