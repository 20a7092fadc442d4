"""Records the files a torchrun worker other than rank 0 creates or changes (tests/test_distributed.py).

Put on PYTHONPATH with DDP_AUDIT_ROOT (the folder watched) and DDP_AUDIT_OUT (where each such
worker writes `rank<R>.txt`, one event per line, at exit). Uses Python's audit hooks, which see
every open() and os.open() (torch.save into a file object, tempfile, tensorboard) and directory,
rename and removal calls; not torch.save(obj, path), whose C++ writer opens the file (the tests
also compare folder listings).
"""
import atexit
import os
import sys

_ROOT = os.environ.get("DDP_AUDIT_ROOT")
_RANK = os.environ.get("RANK")

if _ROOT and _RANK not in (None, "0"):
    _events = []
    _WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def _watched(path):
        try:
            return (os.path.abspath(os.fsdecode(path)) + os.sep).startswith(os.path.join(_ROOT, ""))
        except (TypeError, ValueError):
            return False

    def _hook(event, args):
        if event == "open":
            path, mode, flags = args
            writes = any(c in mode for c in "wax+") if isinstance(mode, str) else bool(flags & _WRITE_FLAGS)
            if writes and _watched(path):
                _events.append(f"{event} {path}")
        elif event in ("os.mkdir", "os.rename", "os.replace", "os.remove", "os.rmdir", "os.unlink",
                       "os.truncate", "shutil.copyfile", "shutil.move", "os.link", "os.symlink"):
            if any(isinstance(a, (str, bytes, os.PathLike)) and _watched(a) for a in args):
                _events.append(f"{event} {args[0]}")

    def _dump():
        # DDP_AUDIT_OUT lies outside DDP_AUDIT_ROOT, so this report is not an event itself.
        out = os.path.join(os.environ["DDP_AUDIT_OUT"], f"rank{_RANK}.txt")
        with open(out, "w") as f:
            f.write("".join(line + "\n" for line in _events))

    sys.addaudithook(_hook)
    atexit.register(_dump)
