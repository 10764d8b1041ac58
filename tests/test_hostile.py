"""Crafted hostile submissions against the sandboxed grading path (`python -m grading autograde`).

Issue 12, "Tests and measurements": a class of hostile submissions of lessons 01 and 05, each named
for what it tries (`forge_*` forging the verdict in the kernel, `tamper_*` the import system and
modules, `lie_*` lying objects, `write_*` course files, gradebook, classmates, home, `persist_*`
startup files, daemons, atexit, threads, files beside the notebook, `read_*` solutions and
classmates, `exhaust_*` memory, disk, processes, output, time, `fmt_*` notebook-format tricks,
`html_*` script in markdown, `ref_*` answers that call the reference), graded in a temporary course:

1. run 1 grades the honest students: a right answer (full marks), a wrong one of the right shapes
   (the baseline: some exercises right, the others wrong) and, for lesson 01, a right but slow conv2d;
2. the course, the honest students' files and gradebook rows and a sentinel in the instructor's home
   are hashed;
3. run 2 grades every hostile submission, and an honest right answer of each lesson after them;
4. run 3 grades a submission with a garbage timestamp.txt beside it, and an honest one.

Then: each hostile submission scores, in each test cell, no more than the honest wrong answer of its
lesson (the reference copies instead appear as REFERENCE lines for their exercises); nothing hashed
changed; nothing a submission tried to plant exists; no process a submission started is alive (each
carries a marker in its argv); outputs are cut; the instructor's secret, written into the answer
cells of the temporary course's solutions, is in no graded notebook, report or export.

A last test parses notebooks in two threads at once, as the workers of one autograde run do.

Every payload is bounded (at most ~2 GB written, 400 processes of `sleep`, 10 GB asked for in 100 MB
touched chunks that the sandbox's 4 GiB memory limit stops), so that even without a sandbox the
damage would show here and stay small; the fixture kills whatever carries its marker at the end.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import html.parser
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_raw_cell

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(ROOT))
L01, L05 = "01_convolution", "05_backpropagation"
LESSONS = (L01, L05)
SITE = sysconfig.get_paths()["purelib"]

pytestmark = [
    pytest.mark.skipif(not all((ROOT / "solutions" / lesson).exists() for lesson in LESSONS), reason="no solutions"),
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed (make sandbox)"),
]

# A serve of every test of lesson 01 from a cell of the student's, answering with torch: the grader's own
# encoding written out, so that the cell imports nothing of the grader's.
FORGED_SERVE = r'''import base64, json, os, socket
import numpy as np
import torch
import torch.nn.functional as F


def _encode(x):
    if isinstance(x, (int, np.integer)):
        return {"int": str(int(x))}
    x = np.ascontiguousarray(x)
    return {"ndarray": {"dtype": x.dtype.name, "shape": list(x.shape), "data": base64.b64encode(x.tobytes()).decode()}}


def _decode(d):
    if isinstance(d, dict) and "ndarray" in d:
        a = d["ndarray"]
        return np.frombuffer(base64.b64decode(a["data"]), dtype=a["dtype"]).reshape(a["shape"]).copy()
    if isinstance(d, dict) and "int" in d:
        return int(d["int"])
    if isinstance(d, dict) and "tuple" in d:
        return tuple(_decode(v) for v in d["tuple"])
    if isinstance(d, dict) and "list" in d:
        return [_decode(v) for v in d["list"]]
    if isinstance(d, dict) and "dict" in d:
        return {k: _decode(v) for k, v in d["dict"]}
    return d


def _right(name, args, kwargs):
    if name == "conv_output_size":
        size, k, *rest = args
        stride, padding = kwargs.get("stride", rest[0] if rest else 1), kwargs.get("padding", rest[1] if len(rest) > 1 else 0)
        return (size + 2 * padding - k) // stride + 1
    x, w, *rest = args
    b = kwargs.get("b", rest[0] if rest else None)
    stride = kwargs.get("stride", rest[1] if len(rest) > 1 else 1)
    padding = kwargs.get("padding", rest[2] if len(rest) > 2 else 0)
    t = lambda a: None if a is None else torch.as_tensor(np.asarray(a, dtype=np.float64))
    return F.conv2d(t(x), t(w), t(b), stride=stride, padding=padding).numpy().astype(np.result_type(x, w))


for test, name in [("test_conv_output_size", "conv_output_size"), ("test_conv_output_size_hidden", "conv_output_size"),
                   ("test_conv2d_naive", "conv2d_naive"), ("test_conv2d_naive_hidden", "conv2d_naive"),
                   ("test_conv2d", "conv2d"), ("test_conv2d_hidden", "conv2d")]:
    channel = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    channel.connect(os.environ.get("IMGREC_SERVE_SOCKET", "/tmp/imgrec-serve.sock"))
    lines = channel.makefile("rwb")
    for hello in ({"hello": test, "token": "0" * 32}, {"serve": test, "arguments": [{"source": name, "function": True}]}):
        lines.write(json.dumps(hello).encode() + b"\n")
    lines.flush()
    while line := lines.readline():
        call = json.loads(line).get("call")
        if call is None:
            break
        try:
            reply = {"result": _encode(_right(name, _decode(call["args"]), _decode(call["kwargs"])))}
        except Exception as error:
            reply = {"raised": [type(error).__name__, str(error)]}
        lines.write(json.dumps({"reply": dict(reply, printed="", args=[None, None], used=[])}).encode() + b"\n")
        lines.flush()
    channel.close()
'''


# --- answers ---------------------------------------------------------------------------------

SETUP01 = '''import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _out_shape(x, w, stride=1, padding=0):
    """The right output shape of a convolution (the hostile answers return zeros of it)."""
    return (x.shape[0], w.shape[0], (x.shape[2] + 2 * padding - w.shape[2]) // stride + 1,
            (x.shape[3] + 2 * padding - w.shape[3]) // stride + 1)
'''
SETUP05 = "import numpy as np\n"

NAIVE = '''def conv2d_naive(x, w, b=None, stride=1, padding=0):
    n_images, _, height, width = x.shape
    n_filters, _, kh, kw = w.shape
    oh, ow = (height + 2 * padding - kh) // stride + 1, (width + 2 * padding - kw) // stride + 1
    x_padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    out = np.zeros((n_images, n_filters, oh, ow))
    for n in range(n_images):
        for f in range(n_filters):
            for i in range(oh):
                for j in range(ow):
                    patch = x_padded[n, :, i * stride : i * stride + kh, j * stride : j * stride + kw]
                    out[n, f, i, j] = np.sum(patch * w[f])
            if b is not None:
                out[n, f] += b[f]
    return out
'''
SLOW_CONV = "def conv2d(x, w, b=None, stride=1, padding=0):\n    return conv2d_naive(x, w, b, stride, padding)  # right, with loops\n"
HONEST_WRONG = {
    L01: {  # conv2d_naive right (4 points); the output size and conv2d wrong, of the right shapes
        "conv_output_size": "def conv_output_size(size, kernel_size, stride=1, padding=0):\n"
                            "    return (size + 2 * padding - kernel_size) // stride  # forgot the + 1\n",
        "conv2d_naive": NAIVE,
        "conv2d": "def conv2d(x, w, b=None, stride=1, padding=0):\n"
                  "    return conv2d_naive(x, w[:, :, ::-1, ::-1], b, stride, padding)  # flipped: a true convolution\n",
    },
    L05: {  # numeric_gradient right (2 points); the backward passes wrong, of the right shapes
        "linear_backward": "def linear_backward(dout, x, w):\n"
                           "    return dout @ w, dout.T @ x, np.mean(dout, axis=0)  # mean: db is wrong\n",
        "relu_backward": "def relu_backward(dout, x):\n    return dout * (x >= 0)  # wrong at x == 0\n",
        "max_pool2d_backward": '''def max_pool2d_backward(dout, x, kernel_size=2, stride=None):
    k = kernel_size
    s = k if stride is None else stride
    dx = np.zeros(x.shape)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):  # the average pool's gradient, not the max pool's
            dx[:, :, i * s : i * s + k, j * s : j * s + k] += dout[:, :, i, j][:, :, None, None] / (k * k)
    return dx
''',
        "conv2d_backward": "def conv2d_backward(dout, x, w, stride=1, padding=0):\n"
                           "    return np.zeros(x.shape), np.zeros(w.shape), dout.sum(axis=(0, 2, 3))  # dx, dw missing\n",
    },
}

ZERO = {  # hostile answers: zeros of the right shapes (scored 0 by every test that checks values)
    "conv_output_size": "def conv_output_size(size, kernel_size, stride=1, padding=0):\n    return 0\n",
    "conv2d_naive": "def conv2d_naive(x, w, b=None, stride=1, padding=0):\n    return np.zeros(_out_shape(x, w, stride, padding))\n",
    "conv2d": "def conv2d(x, w, b=None, stride=1, padding=0):\n    return np.zeros(_out_shape(x, w, stride, padding))\n",
    "linear_backward": "def linear_backward(dout, x, w):\n    return np.zeros(x.shape), np.zeros(w.shape), np.zeros(w.shape[0])\n",
    "relu_backward": "def relu_backward(dout, x):\n    return np.zeros(x.shape)\n",
    "max_pool2d_backward": "def max_pool2d_backward(dout, x, kernel_size=2, stride=None):\n    return np.zeros(x.shape)\n",
    "conv2d_backward": "def conv2d_backward(dout, x, w, stride=1, padding=0):\n"
                       "    return np.zeros(x.shape), np.zeros(w.shape), np.zeros(w.shape[0])\n",
}


def zeros(lesson: str, **payloads: str) -> dict[str, str]:
    """Zero answers for the lesson's exercises but numeric_gradient (left as released), each with
    `payloads[exercise]` put before it."""
    names = ["conv_output_size", "conv2d_naive", "conv2d"] if lesson == L01 else \
        ["linear_backward", "relu_backward", "max_pool2d_backward", "conv2d_backward"]
    return {name: payloads.get(name, "") + ZERO[name] for name in names}


# --- payloads (placeholders: @COURSE@ @ROOT@ @HOME@ @SITE@ @TOKEN@ @MARK@, filled per student) ---

ATTEMPT = '''import os as _os


def attempt(what, action):
    """Try one thing; print what came of it (a hostile student reads it back in the feedback)."""
    try:
        action()
        print("DONE", what)
    except BaseException as error:  # noqa: BLE001
        print("failed", what, type(error).__name__)


def write(path, text="planted by @MARK@\\n", mode="w"):
    _os.makedirs(_os.path.dirname(path), exist_ok=True)
    with open(path, mode) as file:
        file.write(text)
'''

LIAR = '''import sys

from grading.values import encode


class _AnyShape(tuple):
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = tuple.__hash__


class Liar(np.ndarray):
    """Tells a test run in the kernel what it wants to hear; when the test computes `got - expected`,
    it walks up to the grader's frame and writes `expected` into the call's record as what it returned."""
    slot = None

    @property
    def shape(self):
        return _AnyShape(np.ndarray.shape.__get__(self))

    def __sub__(self, other):
        frame = sys._getframe(1)
        while frame is not None and not isinstance(frame.f_locals.get("entry"), dict):
            frame = frame.f_back
        if frame is not None:
            calls = [a for a in frame.f_locals["entry"]["arguments"] if "calls" in a][0]["calls"]
            right = encode(np.array(np.asarray(other), dtype=float))
            if self.slot is None:
                calls[-1]["result"] = right
            else:
                calls[-1]["result"]["tuple"][self.slot] = right
        return np.zeros(np.shape(np.asarray(other)))


def liar(slot=None):
    out = np.zeros(1).view(Liar)
    out.slot = slot
    return out
'''

SERVE_HARVEST = '''import grading.serve as _serve

_real_serve = _serve.serve


class _AnyShape(tuple):
    def __eq__(self, other):
        return True

    __hash__ = tuple.__hash__


class _Catch(np.ndarray):
    """Catches the right answer from the test's own comparison `got - expected`."""

    @property
    def shape(self):
        return _AnyShape((1,))

    def __sub__(self, other):
        self.box[self.slot] = np.array(np.asarray(other), dtype=float)
        return np.zeros(np.shape(np.asarray(other)))


def _harvesting_serve(test_name, probes, arguments, user, *token):
    """Replaces grading.serve.serve: looks for the test function in what reaches the kernel (the
    probes, the caller's frames, the notebook's globals), runs whatever it finds with probes that
    learn the expected values, then answers every call with exactly those."""
    import sys
    boxes = []

    def probe(*args, **kwargs):
        box = [None, None, None]
        boxes.append(box)
        out = []
        for slot in range(3):
            catch = np.zeros(1).view(_Catch)
            catch.box, catch.slot = box, slot
            out.append(catch)
        return tuple(out)

    scope = {"__builtins__": __builtins__}
    found = []
    try:
        exec(probes, scope)
        frame = sys._getframe()
        while frame is not None:
            found += [v for v in list(frame.f_globals.values()) + list(frame.f_locals.values())
                      if callable(v) and getattr(v, "__name__", "").startswith("test_")]
            frame = frame.f_back
        found += [v for k, v in scope.items() if k.startswith("test_")]
        for test in found:
            try:
                test(*[probe for _ in arguments])
            except BaseException:  # noqa: BLE001
                pass
    except BaseException:  # noqa: BLE001
        pass
    answers = iter(boxes)

    def replay(*args, **kwargs):
        box = next(answers, None)
        return tuple(box) if box else np.zeros(1)

    _real_serve(test_name, probes, arguments, dict(user, **{a: replay for a, _ in arguments}), *token)


_serve.serve = _harvesting_serve
'''


@dataclass
class Hostile:
    lesson: str
    intent: str                       # what it tries, and what must come of it
    answers: dict = field(default_factory=dict)
    setup: str | None = None          # the first code cell (None: SETUP01 / SETUP05)
    extra: tuple = ()                 # cells put after the first (code source, or a cell)
    mutate: Callable | None = None    # (notebook) -> notebook, or bytes to submit as they are
    beside: dict = field(default_factory=dict)  # files submitted next to the notebook
    baseline: str = "honest_wrong"    # whose per-test scores it may not pass
    references: tuple = ()            # exercises that must be flagged as REFERENCE (not score-checked)


def _duplicate_ids(nb):
    """Every cell the same id; a fake copy of test_conv2d (`print`) before the real one; the
    conv2d answer twice with its grade_id, the first copy zeros."""
    fake = copy.deepcopy(next(c for c in nb.cells if _gid(c) == "test_conv2d"))
    fake.source = "print('conv2d: correct')"
    answer = next(c for c in nb.cells if _gid(c) == "conv2d")
    first = copy.deepcopy(answer)
    at = nb.cells.index(answer)
    nb.cells[at:at] = [first, fake]
    for cell in nb.cells:
        cell["id"] = "same-id"
    return nb


def _flipped_flags(nb):
    """Test cells unlocked, ungraded, turned into answers worth 100 with `pass` as the test;
    an answer cell marked as a graded answer worth 100."""
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") and not meta.get("solution"):
            meta.update(locked=False, grade=False, solution=True, points=100)
            cell.source = "pass"
        elif meta.get("grade_id") == "linear_backward":
            meta.update(grade=True, points=100)
    return nb


def _moved_grade_id(nb):
    """test_conv2d deleted, its grade_id (graded, locked, 2 points) moved onto the student's own
    `print` cell; test_conv2d_hidden deleted and its grade_id put on the conv2d answer cell."""
    test = next(c for c in nb.cells if _gid(c) == "test_conv2d")
    mine = new_code_cell("print('conv2d: correct')", metadata=copy.deepcopy(test.metadata))
    nb.cells[nb.cells.index(test)] = mine
    nb.cells = [c for c in nb.cells if _gid(c) != "test_conv2d_hidden"]
    answer = next(c for c in nb.cells if _gid(c) == "conv2d")
    answer.metadata["nbgrader"]["grade_id"] = "test_conv2d_hidden"
    return nb


def _non_utf8(nb):
    """A latin-1 byte inside a code cell: the file is not UTF-8."""
    nb.cells[0].source += "\n# NON-UTF8-HERE\n"
    return nbformat.writes(nb).encode().replace(b"NON-UTF8-HERE", b"caf\xe9 \xff\xfe")


def _huge(nb):
    """An 18 MB markdown cell, a 3 MB comment in a code cell and a 4 MB stored output (under the
    50 MB a notebook may have)."""
    nb.cells.insert(1, new_markdown_cell("# big\n\n" + "lorem ipsum " * (18 * 2**20 // 12)))
    nb.cells.insert(2, new_code_cell("# " + "x" * (3 * 2**20) + "\npass",
                                     outputs=[nbformat.v4.new_output("stream", name="stdout", text="y" * (4 * 2**20))]))
    return nb


def _kernel_and_cell_types(nb):
    """Another kernel in the metadata; the relu_backward answer as a raw cell, test_linear_backward
    as a markdown cell worth 100; a code cell of the student's, graded, worth 100, holding a
    stored execute_result '100'."""
    nb.metadata["kernelspec"] = {"name": "../../../bin/sh", "display_name": "sh", "language": "sh"}
    nb.metadata["language_info"] = {"name": "bash"}
    for i, cell in enumerate(nb.cells):
        if _gid(cell) == "relu_backward":
            raw = new_raw_cell("def relu_backward(dout, x):\n    return dout\n", metadata=copy.deepcopy(cell.metadata))
            nb.cells[i] = raw
        elif _gid(cell) == "test_linear_backward":
            md = new_markdown_cell("All tests passed.", metadata=copy.deepcopy(cell.metadata))
            md.metadata["nbgrader"]["points"] = 100
            nb.cells[i] = md
    extra = new_code_cell("100", outputs=[nbformat.v4.new_output("execute_result", data={"text/plain": "100"},
                                                                 execution_count=1)])
    extra.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True, "points": 100,
                                  "grade_id": "extra_points", "schema_version": 3}
    nb.cells.insert(1, extra)
    return nb


PLANT = '''import os
for _where in ["@COURSE@", "/tmp", "@HOME@"]:
    try:
        with open(os.path.join(_where, "planted-@TOKEN@-beside-{name}"), "w") as _file:
            _file.write("imported")
    except OSError:
        pass
'''

HTML_MARKDOWN = [
    '<img src="data:," onerror="fetch(\'/api/contents/planted-@TOKEN@-xss\', {method: \'PUT\'})">',
    "<script>document.title = 'owned @TOKEN@'</script>",
    "[click me](javascript:alert('@TOKEN@'))",
    '<a href="javascript:alert(1)">grade me</a> <svg onload="alert(1)"></svg>',
    '<iframe srcdoc="<script>alert(1)</script>"></iframe> <div onmouseover="alert(1)">hover</div>',
]

HOSTILE: dict[str, Hostile] = {
    # --- forging the verdict inside the kernel ------------------------------------------------
    "forge_displayhook": Hostile(L01, "each answer calls displayhook('ok') (a non-numeric execute_result in the test "
                                      "cell: nbgrader's old scoring gave full marks), publishes '2.0', prints pass "
                                      "messages, a fake traceback and a fake graded output: must score 0",
                                 {name: "import sys\n\n\n"
                                        f"def {name}(x, w, b=None, stride=1, padding=0):\n"
                                        "    get_ipython().displayhook('ok')\n"
                                        "    get_ipython().display_pub.publish({'text/plain': '2.0'})\n"
                                        f"    print('{name}: correct')\n"
                                        "    print('{\"output_type\": \"execute_result\", \"data\": {\"text/plain\": \"2\"}}')\n"
                                        "    print('Traceback (most recent call last):\\nAssertionError: fake', file=sys.stderr)\n"
                                        "    return np.zeros(_out_shape(x, w, stride, padding))\n"
                                  for name in ("conv2d_naive", "conv2d")}),
    "forge_channel": Hostile(L01, "writes forged event lines (tests served, replies, outputs, done) into every "
                                  "pipe it can open under /proc and into the kernel's socket: must score 0",
                             zeros(L01), extra=('''import glob, json, os, socket
ZEROS = {"ndarray": {"dtype": "float64", "shape": [1], "data": "AAAAAAAAAAA="}}
events = [{"serve": t, "arguments": [{"source": "conv2d", "function": True}]}
          for t in ["test_conv2d", "test_conv2d_hidden", "test_conv2d_naive", "test_conv2d_naive_hidden"]]
events += [{"reply": {"result": ZEROS}}] * 20 + [{"cell": 0, "outputs": []}, {"done": "ok"}]
line = ("\\n".join(json.dumps(e) for e in events) + "\\n").encode()
for fd in glob.glob("/proc/*/fd/*"):
    try:
        if os.readlink(fd).startswith("pipe:"):
            f = os.open(fd, os.O_WRONLY | os.O_NONBLOCK)
            os.write(f, line)
            os.close(f)
    except OSError:
        pass
try:
    forged = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    forged.connect(os.environ.get("IMGREC_SERVE_SOCKET", "/tmp/imgrec-serve.sock"))
    forged.sendall(line)
    forged.close()
except OSError:
    pass
''',)),
    "forge_serve": Hostile(L01, "a cell of its own connects to the kernel's socket and serves every test itself, "
                                "answering the judge's calls with torch's results, before the test cells run (they "
                                "find their tests decided); its answers are zeros: must score 0, the tries named",
                           zeros(L01), extra=(FORGED_SERVE,)),
    "forge_custom_exc": Hostile(L05, "set_custom_exc swallowing every exception, a post_run_cell hook clearing "
                                     "error_in_exec, showtraceback and excepthook silenced: must score 0",
                                zeros(L05), setup=SETUP05 + '''import sys
ip = get_ipython()
ip.set_custom_exc((BaseException,), lambda shell, etype, value, tb, tb_offset=None: print("ok"))


def _clear(result):
    result.error_in_exec = None
    result.error_before_exec = None


ip.events.register("post_run_cell", _clear)
ip.showtraceback = lambda *args, **kwargs: None
sys.excepthook = lambda *args: None
'''),
    "forge_stdout": Hostile(L05, "sys.stdout/sys.stderr replaced and fds 1 and 2 pointed at /dev/null: must score 0",
                            zeros(L05), setup=SETUP05 + '''import io, os, sys
class _Pass(io.StringIO):
    def write(self, text):
        return sys.__stdout__.write("test passed\\n")
sys.stdout = _Pass()
sys.stderr = io.StringIO()
null = os.open("/dev/null", os.O_WRONLY)
os.dup2(null, 1)
os.dup2(null, 2)
'''),
    # --- tampering with the import system and modules -----------------------------------------
    "tamper_meta_path": Hostile(L01, "a sys.meta_path finder serves fake grading.serve / grading.values "
                                     "(each test 'served' with zeros, no calls answered): must score 0",
                                zeros(L01), extra=('''import importlib.abc, importlib.util, json, os, socket, sys


class Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        if name in ("grading.serve", "grading.values", "grading.judge"):
            return importlib.util.spec_from_loader(name, self)

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        def serve(test_name, probes, arguments, user, *token):
            told = [{"source": s, "value": {"float": "0.0"}} for s, _ in arguments]
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as channel:
                channel.connect(os.environ.get("IMGREC_SERVE_SOCKET", "/tmp/imgrec-serve.sock"))
                channel.sendall((json.dumps({"serve": test_name, "arguments": told}) + "\\n").encode())
            print(test_name + ": passed")
        module.serve = serve
        module.encode = lambda x: {"float": "0.0"}


sys.meta_path.insert(0, Finder())
for name in [n for n in sys.modules if n.startswith("grading")]:
    del sys.modules[name]
''',)),
    "tamper_numpy_torch": Hostile(L01, "F.conv2d / torch.conv2d replaced by zeros (so the kernel's expected values "
                                       "are zeros), np.abs, np.max, np.allclose patched: must score 0",
                                  zeros(L01), extra=('''import builtins
import numpy
import torch
import torch.nn.functional as F
F.conv2d = torch.conv2d = lambda x, w, b=None, stride=1, padding=0, **k: torch.zeros(
    _out_shape(x, w, stride, padding), dtype=torch.float64)
numpy.abs = numpy.absolute = lambda *a, **k: numpy.zeros(1)
numpy.max = numpy.amax = lambda *a, **k: 0.0
numpy.allclose = lambda *a, **k: True
numpy.shape = lambda a: getattr(a, "shape", ())
builtins.abs = lambda x: numpy.zeros(1)
''',)),
    "tamper_serve_harvest": Hostile(L05, "grading.serve.serve replaced: it looks for the test in the kernel and runs "
                                         "it with probes whose `-` catches the expected values, then answers with "
                                         "them (no answer written): must score 0",
                                    zeros(L05, linear_backward=SERVE_HARVEST)),
    "tamper_torch_builtins": Hostile(L05, "torch.Tensor.backward / torch.relu / F.linear / F.max_pool2d patched so "
                                          "the kernel's expected gradients are zeros; builtins.abs patched: "
                                          "must score 0",
                                     zeros(L05), setup=SETUP05 + '''import builtins
import torch
import torch.nn.functional as F


def _backward(self, gradient=None, *args, **kwargs):
    for leaf in [t for t in __import__("gc").get_objects() if isinstance(t, torch.Tensor) and t.requires_grad and t.is_leaf]:
        leaf.grad = torch.zeros_like(leaf)


torch.Tensor.backward = _backward
torch.relu = F.relu = lambda t, *a, **k: t * 0
builtins.abs = lambda x: x * 0
'''),
    "tamper_clock": Hostile(L01, "conv2d right but with loops (too slow for the hidden speed test), and "
                                 "time.perf_counter frozen so the in-kernel timing says it is fast: must score no "
                                 "more than the same code without the clock trick (honest_slow)",
                            {"conv2d_naive": NAIVE,
                             "conv2d": SLOW_CONV + "\n\nimport time\ntime.perf_counter = lambda: 0.0\n"},
                            baseline="honest_slow"),
    # --- lying objects ---------------------------------------------------------------------------
    "lie_ndarray": Hostile(L01, "an ndarray subclass whose ==, -, abs, max, sum and shape lie, and an int "
                                "subclass equal to everything from conv_output_size: must score 0",
                           {"conv_output_size": "class Int(int):\n"
                                                "    __eq__ = lambda self, other: True\n"
                                                "    __ne__ = lambda self, other: False\n"
                                                "    __hash__ = int.__hash__\n\n\n"
                                                "def conv_output_size(size, kernel_size, stride=1, padding=0):\n"
                                                "    return Int(0)\n",
                            "conv2d_naive": "class Lie(np.ndarray):\n"
                                            "    shape = property(lambda self: type('S', (tuple,), {'__eq__': lambda a, b: True,"
                                            " '__hash__': tuple.__hash__})((1,)))\n"
                                            "    __eq__ = lambda self, other: np.ones(1, bool)\n"
                                            "    __sub__ = __rsub__ = lambda self, other: np.zeros(1)\n"
                                            "    __abs__ = lambda self: np.zeros(1)\n"
                                            "    max = sum = lambda self, *a, **k: 0.0\n\n\n"
                                            "def conv2d_naive(x, w, b=None, stride=1, padding=0):\n"
                                            "    return np.zeros(1).view(Lie)\n",
                            "conv2d": "def conv2d(x, w, b=None, stride=1, padding=0):\n    return np.zeros(1).view(Lie)\n"}),
    "lie_harvest_frames": Hostile(L01, "conv2d_naive and conv2d return an ndarray subclass that, when the test "
                                       "computes `got - expected`, writes `expected` into the recorder's call record "
                                       "(found by walking the frames): must score 0",
                                  {"conv2d_naive": LIAR + "\n\ndef conv2d_naive(x, w, b=None, stride=1, padding=0):\n"
                                                          "    return liar()\n",
                                   "conv2d": "def conv2d(x, w, b=None, stride=1, padding=0):\n    return liar()\n"}),
    "lie_tensor_array": Hostile(L05, "relu/max-pool return a torch.Tensor subclass whose __torch_function__ answers "
                                     "zeros/True to everything; linear/conv2d_backward return objects whose "
                                     "__array__, __array_ufunc__, shape, -, float lie: must score 0",
                                {"relu_backward": '''import torch


class Lie(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in ("__eq__", "eq", "allclose", "equal"):
            return True
        if name in ("__sub__", "sub", "__rsub__", "abs", "__abs__", "max", "amax"):
            return torch.zeros(())
        return super().__torch_function__(func, types, args, kwargs or {})


def relu_backward(dout, x):
    return torch.zeros(1).as_subclass(Lie)
''', "max_pool2d_backward": "def max_pool2d_backward(dout, x, kernel_size=2, stride=None):\n"
                            "    return torch.zeros(1).as_subclass(Lie)\n",
                                 "linear_backward": '''class ArrayLie:
    shape = property(lambda self: type("S", (tuple,), {"__eq__": lambda a, b: True, "__hash__": tuple.__hash__})(()))

    def __array__(self, dtype=None, copy=None):
        return np.zeros(1)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return np.zeros(1)

    __sub__ = __rsub__ = __abs__ = lambda self, *a: np.zeros(1)
    __float__ = lambda self: 0.0
    __eq__ = lambda self, other: True
    __len__ = lambda self: 3


def linear_backward(dout, x, w):
    return ArrayLie(), ArrayLie(), ArrayLie()
''', "conv2d_backward": "def conv2d_backward(dout, x, w, stride=1, padding=0):\n"
                        "    return ArrayLie(), ArrayLie(), ArrayLie()\n"}),
    # --- writing where grading reads --------------------------------------------------------------
    "write_course": Hostile(L01, "rewrites gradebook.db (every grade 100), overwrites and deletes classmates' "
                                 "submitted and autograded files, overwrites solutions/, lessons/, the config, appends "
                                 "to the repo's grading/ and imgrec_lib/ sources, plants a .pth in the venv: nothing "
                                 "may change",
                            zeros(L01), extra=(ATTEMPT + '''import glob, shutil, sqlite3
C, R = "@COURSE@", "@ROOT@"


def gradebook():
    db = sqlite3.connect(f"file:{C}/gradebook.db?mode=rw", uri=True)
    db.execute("UPDATE grade SET auto_score = 100, manual_score = 100")
    db.commit()


attempt("gradebook", gradebook)
attempt("classmate notebook", lambda: write(f"{C}/submitted/honest_right/01_convolution/01_convolution.ipynb", "{}"))
attempt("classmate graded", lambda: write(f"{C}/autograded/honest_right/01_convolution/01_convolution.ipynb", "{}"))
attempt("classmate delete", lambda: shutil.rmtree(f"{C}/submitted/honest_wrong"))
attempt("classmate plant", lambda: write(f"{C}/submitted/honest_right/01_convolution/planted-@TOKEN@-classmate.py"))
attempt("grades.csv", lambda: write(f"{C}/grades.csv", "hacked"))
attempt("solutions", lambda: write(f"{C}/solutions/01_convolution/01_convolution.ipynb", "{}"))
attempt("lessons", lambda: write(f"{C}/lessons/01_convolution/01_convolution.ipynb", "{}"))
attempt("config", lambda: write(f"{C}/nbgrader_config.py", "\\n# @MARK@\\n", "a"))
for path in [f"{R}/grading/judge.py", f"{R}/grading/serve.py", f"{R}/imgrec_lib/conv.py",
             "/opt/imgrec-grading/grading/judge.py"] + glob.glob("/opt/imgrec-grading/grading/*.py")[:3]:
    attempt(path, lambda path=path: write(path, "\\n# @MARK@\\n", "a"))
attempt("venv .pth", lambda: write("@SITE@/planted-@TOKEN@-venv.pth", "# @MARK@\\n"))
attempt("venv module", lambda: write("@SITE@/planted_@TOKEN@_venv.py", "# @MARK@\\n"))
''',)),
    "write_home_tmp": Hostile(L05, "overwrites a sentinel in the instructor's home, plants files in $HOME, "
                                   "~/.ipython startup, host /tmp, /var/tmp, /dev/shm: nothing may appear",
                              zeros(L05), setup=SETUP05 + ATTEMPT + '''H = "@HOME@"
attempt("sentinel", lambda: write(f"{H}/.imgrec-hostile-sentinel-@TOKEN@", "overwritten"))
attempt("home", lambda: write(f"{H}/planted-@TOKEN@-home"))
attempt("home startup", lambda: write(f"{H}/.ipython/profile_default/startup/planted-@TOKEN@-home.py", "# hi\\n"))
attempt("/tmp", lambda: write("/tmp/planted-@TOKEN@-tmp"))
attempt("/var/tmp", lambda: write("/var/tmp/planted-@TOKEN@-vartmp"))
attempt("/dev/shm", lambda: write("/dev/shm/planted-@TOKEN@-shm"))
'''),
    # --- persistence --------------------------------------------------------------------------------
    "persist_ipython_startup": Hostile(L01, "plants IPython startup files (sandbox HOME, IPYTHONDIR, the real home) "
                                            "that break np.pad, to sink the honest students graded after it: they "
                                            "must keep full marks, and no file may appear",
                                       zeros(L01), extra=(ATTEMPT + '''import os
STARTUP = "import numpy\\nnumpy.pad = None  # @MARK@\\nopen('/tmp/planted-@TOKEN@-startup-ran', 'w')\\n"
for folder in [os.path.expanduser("~/.ipython"), os.environ.get("IPYTHONDIR", "/nonexistent"), "@HOME@/.ipython"]:
    attempt(folder, lambda folder=folder: write(f"{folder}/profile_default/startup/00-planted-@TOKEN@.py", STARTUP))
''',)),
    "persist_daemon": Hostile(L05, "starts a double-forked setsid daemon, a nohup process, a background job of a "
                                   "shell and a late writer aimed at the gradebook (all `sleep` with a marker in "
                                   "argv): none may be alive after grading",
                              zeros(L05), setup=SETUP05 + '''import os, subprocess
M = "@MARK@"
pid = os.fork()
if pid == 0:  # double fork + setsid: a classic daemon
    try:
        os.setsid()
        if os.fork() == 0:
            os.execv("/bin/bash", ["bash", "-c", f"exec -a {M}-daemon sleep 600"])
    finally:
        os._exit(0)
os.waitpid(pid, 0)
subprocess.Popen(["nohup", "bash", "-c", f"exec -a {M}-nohup sleep 600"], stdout=subprocess.DEVNULL,
                 stderr=subprocess.DEVNULL, start_new_session=True)
subprocess.Popen(["bash", "-c", f"(exec -a {M}-bg sleep 600 &) ; exit 0"])
subprocess.Popen(["setsid", "bash", "-c", f"sleep 20; echo hacked > @COURSE@/planted-@TOKEN@-late; exec -a {M}-late sleep 600"],
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
'''),
    "persist_atexit_thread": Hostile(L05, "an atexit handler, a non-daemon thread forging records every 0.2 s and "
                                          "planting files, SIGTERM/SIGHUP ignored: nothing may appear, must score 0",
                                     zeros(L05), setup=SETUP05 + '''import atexit, json, os, signal, threading, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGHUP, signal.SIG_IGN)


def plant():
    for path in ["@COURSE@/planted-@TOKEN@-atexit", "/tmp/planted-@TOKEN@-atexit", "@HOME@/planted-@TOKEN@-atexit"]:
        try:
            open(path, "w").write("x")
        except OSError:
            pass


def forever():
    import socket
    forged = json.dumps({"reply": {"result": {"ndarray": {"dtype": "float64", "shape": [1], "data": "AAAAAAAAAAA="}}}})
    while True:
        plant()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as channel:
                channel.connect(os.environ.get("IMGREC_SERVE_SOCKET", "/tmp/imgrec-serve.sock"))
                channel.sendall((forged + "\\n").encode())
        except OSError:
            pass
        time.sleep(0.2)


atexit.register(plant)
threading.Thread(target=forever, daemon=False).start()
'''),
    "persist_files_beside": Hostile(L01, "submits imgrec_lib/ (a shadow conv2d via F.conv2d), grading/, "
                                         "sitecustomize.py, usercustomize.py and a .pth beside the notebook; the "
                                         "notebook imports the shadow: none of it may travel, must score 0",
                                    {"conv2d": "try:\n    from imgrec_lib.shadow import conv2d\n"
                                               "except ImportError:\n" + "\n".join("    " + line for line in ZERO["conv2d"].splitlines()) + "\n"},
                                    beside={"imgrec_lib/__init__.py": PLANT.replace("{name}", "imgrec_lib"),
                                            "imgrec_lib/shadow.py": "import torch, torch.nn.functional as F\n"
                                                                    "def conv2d(x, w, b=None, stride=1, padding=0):\n"
                                                                    "    t = lambda a: None if a is None else torch.from_numpy(a)\n"
                                                                    "    return F.conv2d(t(x), t(w), t(b), stride=stride, padding=padding).numpy()\n",
                                            "grading/__init__.py": PLANT.replace("{name}", "grading"),
                                            "grading/serve.py": PLANT.replace("{name}", "serve"),
                                            "sitecustomize.py": PLANT.replace("{name}", "sitecustomize"),
                                            "usercustomize.py": PLANT.replace("{name}", "usercustomize"),
                                            "planted.pth": "import os; open('/tmp/planted-@TOKEN@-beside-pth', 'w')\n"}),
    # --- reading what it should not ----------------------------------------------------------------
    "read_solutions": Hostile(L01, "looks for solutions/ (the course's, the repo's, anywhere under / within a "
                                   "budget) and classmates' notebooks, runs any conv2d answer found, prints them, "
                                   "the gradebook (sqlite), /proc/*/cmdline and environ, mountinfo, its environment: "
                                   "must find nothing, score 0, and leak no secret",
                              {**zeros(L01), "conv2d": ZERO["conv2d"] + '''import glob, json, os
found = []
for pattern in ["@COURSE@/solutions/*/*.ipynb", "@ROOT@/solutions/*/*.ipynb", "@COURSE@/submitted/*/*/*.ipynb",
                "@COURSE@/autograded/*/*/*.ipynb", "@COURSE@/gradebook.db"]:
    found += glob.glob(pattern)
seen = 0
for top, dirs, files in os.walk("/"):
    dirs[:] = [d for d in dirs if d not in ("proc", "sys", "dev")]
    seen += len(files) + len(dirs)
    found += [os.path.join(top, f) for f in files if f.endswith(".ipynb") and "site-packages" not in top]
    if seen > 60000:
        break
print("found", found)
for path in found:
    try:
        text = open(path, errors="replace").read()
        print(path, text[:20000])
        for cell in json.loads(text)["cells"]:
            source = "".join(cell["source"])
            if "def conv2d(" in source:
                exec(source)
    except Exception as error:  # noqa: BLE001
        print(path, error)
import glob, os, sqlite3
try:
    print(sqlite3.connect("file:@COURSE@/gradebook.db?mode=ro", uri=True).execute("SELECT * FROM grade").fetchall())
except Exception as error:  # noqa: BLE001
    print("gradebook:", error)
for path in glob.glob("/proc/*/cmdline") + glob.glob("/proc/*/environ") + ["/proc/self/mountinfo"]:
    try:
        print(path, open(path, "rb").read()[:2000])
    except OSError as error:
        print(path, error)
print(dict(os.environ))
print(os.listdir("/"), glob.glob("/opt/imgrec-grading/**", recursive=True)[:50])
'''}),
    # --- resource exhaustion ---------------------------------------------------------------------------
    "exhaust_memory": Hostile(L05, "asks for 10 GB in touched 100 MB chunks: the 4 GiB memory limit must stop it "
                                   "and the others must still be graded",
                              zeros(L05, relu_backward="chunks = []\nfor _ in range(100):\n"
                                                       "    chunks.append(np.ones(100 * 2**20 // 8))\n")),
    "exhaust_disk_output": Hostile(L01, "writes 1.2 GB into /tmp, 400 MB into /dev/shm and 200 MB into $HOME in 64 "
                                        "MB chunks (stopped by the private /tmp's size, nothing reaches the host), "
                                        "then prints 20 MB in a cell (cut in the graded notebook) and 100 MB in "
                                        "another (the sandbox's output limit stops the notebook)",
                            zeros(L01), extra=('''import os
def fill(path, limit):
    written, chunk = 0, b"\\0" * (64 << 20)
    try:
        with open(path, "wb") as file:
            while written < limit:
                file.write(chunk)
                written += len(chunk)
    except OSError as error:
        print(path, type(error).__name__, written >> 20, "MB")
fill("/tmp/planted-@TOKEN@-disk", 1200 << 20)
fill("/dev/shm/planted-@TOKEN@-shm-fill", 400 << 20)
fill(os.path.expanduser("~/planted-@TOKEN@-home-fill"), 200 << 20)
for path in ["/tmp/planted-@TOKEN@-disk", "/dev/shm/planted-@TOKEN@-shm-fill"]:
    os.remove(path)  # room again for the runner, so that the output part below runs
''', "print('y' * (20 << 20))", "for _ in range(100):\n    print('z' * (1 << 20))\n")),
    "exhaust_fork": Hostile(L05, "starts up to 400 processes (`sleep` with a marker): the pids limit stops it, "
                                 "none survives",
                            zeros(L05), setup=SETUP05 + '''import subprocess
procs = []
for i in range(400):
    try:
        procs.append(subprocess.Popen(["bash", "-c", f"exec -a @MARK@-fork{i} sleep 300"]))
    except OSError as error:
        print("stopped at", i, type(error).__name__)
        break
'''),
    "exhaust_loop_sigint": Hostile(L05, "ignores SIGINT and loops forever in every answer cell: the notebook's wall "
                                        "time stops it, must score 0 (the loop sleeps: a busy one would take a core "
                                        "from the rest of the suite for the whole minute, and stops the same way)",
                                   {name: "while True:\n    time.sleep(0.05)\n" for name in zeros(L05)},
                                   setup=SETUP05 + "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"),
    # --- notebook-format tricks ------------------------------------------------------------------------
    "fmt_duplicate_ids": Hostile(L01, "every cell the same id, a fake test_conv2d before the real one, the conv2d "
                                      "answer twice: must score 0", zeros(L01), mutate=_duplicate_ids),
    "fmt_moved_grade_id": Hostile(L01, "test_conv2d deleted and its grade_id put on the student's own `print` "
                                       "cell; test_conv2d_hidden's grade_id put on the answer: must score 0",
                                  zeros(L01), mutate=_moved_grade_id),
    "fmt_non_utf8": Hostile(L01, "a notebook with non-UTF-8 bytes: not graded (0), the class still is",
                            zeros(L01), mutate=_non_utf8),
    "fmt_huge_notebook": Hostile(L01, "a 25 MB notebook (18 MB markdown, 3 MB source, 4 MB stored output): graded, "
                                      "cut to size", zeros(L01), mutate=_huge),
    "fmt_flags_kernel_types": Hostile(L05, "another kernel in the metadata; test cells unlocked, ungraded, made "
                                           "answers worth 100 holding `pass`; an answer made a graded cell worth "
                                           "100; an answer as a raw cell, a test as markdown, an extra graded code "
                                           "cell holding '100': must score 0 and not change max_score",
                                      zeros(L05), mutate=lambda nb: _flipped_flags(_kernel_and_cell_types(nb))),
    # --- script in markdown and outputs ----------------------------------------------------------------
    "html_script": Hostile(L01, "onerror images, <script>, javascript: links, svg onload, iframe srcdoc in "
                                "markdown, and HTML/JavaScript outputs: no active content in the graded notebook",
                           zeros(L01), extra=tuple(new_markdown_cell(text) for text in HTML_MARKDOWN) + (
                               "from IPython.display import HTML, Javascript, display\n"
                               "display(HTML('<img src=x onerror=\"alert(1)\"><script>alert(2)</script>'))\n"
                               "display(Javascript('alert(3)'))\n",)),
    # --- answering with the reference (flagged, may score) ---------------------------------------------
    "ref_library": Hostile(L01, "conv2d is imgrec_lib.conv.conv2d and conv2d_naive calls the library's: flagged "
                                "as REFERENCE for both",
                           {"conv2d_naive": "from imgrec_lib.conv import conv2d_naive as _naive\n\n\n"
                                            "def conv2d_naive(x, w, b=None, stride=1, padding=0):\n"
                                            "    return _naive(x, w, b, stride, padding)\n",
                            "conv2d": "import imgrec_lib.conv\nconv2d = imgrec_lib.conv.conv2d\n"},
                           baseline="", references=("conv2d_naive", "conv2d")),
    "ref_framework": Hostile(L01, "conv2d calls F.conv2d: flagged as REFERENCE for conv2d",
                             {"conv2d": "import torch\nimport torch.nn.functional as F\n\n\n"
                                        "def conv2d(x, w, b=None, stride=1, padding=0):\n"
                                        "    t = lambda a: None if a is None else torch.from_numpy(a)\n"
                                        "    return F.conv2d(t(x), t(w), t(b), stride=stride, padding=padding).numpy()\n"},
                             baseline="", references=("conv2d",)),
    "ref_autograd": Hostile(L05, "linear_backward is the library's, conv2d_backward uses torch autograd: flagged "
                                 "as REFERENCE for both",
                            {"linear_backward": "from imgrec_lib import dense\nlinear_backward = dense.linear_backward\n",
                             "conv2d_backward": '''import torch


def conv2d_backward(dout, x, w, stride=1, padding=0):
    x_t, w_t = torch.from_numpy(x).requires_grad_(True), torch.from_numpy(w).requires_grad_(True)
    b_t = torch.zeros(w.shape[0], dtype=x_t.dtype, requires_grad=True)
    torch.nn.functional.conv2d(x_t, w_t, b_t, stride=stride, padding=padding).backward(torch.from_numpy(dout))
    return x_t.grad.numpy(), w_t.grad.numpy(), b_t.grad.numpy()
'''}, baseline="", references=("linear_backward", "conv2d_backward")),
    "ref_runtime": Hostile(L01, "conv2d reaches torch.convolution through the frame's globals, which the static "
                                "reader cannot name: flagged as REFERENCE for conv2d from what ran while graded",
                           {"conv2d": '''import sys
import torch


def conv2d(x, w, b=None, stride=1, padding=0):
    t = sys._getframe().f_globals["to" + "rch"]
    out = t.convolution(t.from_numpy(x), t.from_numpy(w), None if b is None else t.from_numpy(b), [stride] * 2,
                        [padding] * 2, [1, 1], False, [0, 0], 1)
    return out.numpy()
'''}, baseline="", references=("conv2d",)),
    "ref_runtime_grad_fn": Hostile(L05, "relu_backward calls autograd's backward node (y.grad_fn): flagged as "
                                        "REFERENCE for relu_backward from what ran while graded",
                                   {"relu_backward": '''import torch


def relu_backward(dout, x):
    y = torch.relu(torch.tensor(x, requires_grad=True))
    return y.grad_fn(torch.from_numpy(dout)).detach().numpy()
'''}, baseline="", references=("relu_backward",)),
    "ref_stored_on_numpy": Hostile(L01, "conv2d calls np.conv_impl, a helper around F.conv2d that another cell put on "
                                        "numpy with setattr: flagged as REFERENCE for conv2d",
                                   {"conv2d": "def conv2d(x, w, b=None, stride=1, padding=0):\n"
                                              "    return np.conv_impl(x, w, b, stride, padding)\n"},
                                   extra=('''import torch


def _helper(x, w, b, stride, padding):
    t = lambda a: None if a is None else torch.from_numpy(a)
    return torch.nn.functional.conv2d(t(x), t(w), t(b), stride=stride, padding=padding).numpy()


setattr(np, "conv_" + "impl", _helper)
''',), baseline="", references=("conv2d",)),
    "ref_recorder_off": Hostile(L01, "a cell switches the run-time record off through map() (R3 of an outside tester) "
                                     "and conv2d reaches torch through the frame's globals: every exercise flagged as "
                                     "REFERENCE, for that cell blinds the record of each",
                                {"conv2d": '''def conv2d(x, w, b=None, stride=1, padding=0):
    _off()
    t = sys._getframe().f_globals["to" + "rch"]
    out = t.convolution(t.from_numpy(x), t.from_numpy(w), None if b is None else t.from_numpy(b), [stride] * 2,
                        [padding] * 2, [1, 1], False, [0, 0], 1)
    return out.numpy()
'''}, extra=("import sys\nimport torch\n_off = lambda: list(map(sys.setprofile, [None]))\n",), baseline="",
                                references=("conv_output_size", "conv2d_naive", "conv2d")),
}
# Run 3, alone (a failure here stops the whole lesson's merge, which would hide the other checks).
TIMESTAMP = ("beside_bad_timestamp", Hostile(L05, "a garbage timestamp.txt beside the notebook: that submission "
                                                  "may be refused, the honest one graded with it must be stored",
                                             zeros(L05), beside={"timestamp.txt": "not a date at all\n"}))


# --- the course ----------------------------------------------------------------------------------

def _gid(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def _answers(lesson: str) -> dict[str, str]:
    """The instructor's answer cells, from the repository (no secret in them)."""
    nb = nbformat.read(ROOT / "solutions" / lesson / f"{lesson}.ipynb", as_version=4)
    return {_gid(c): c.source for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("solution")}


def _notebook(course: Path, lesson: str, answers: dict[str, str], setup: str | None = None, extra=()):
    """The release trimmed to its first code cell (or `setup`), `extra` cells, the answer and test
    cells, with `answers` in the answer cells (the others as released)."""
    nb = nbformat.read(course / "lessons" / lesson / f"{lesson}.ipynb", as_version=4)
    first = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    nb.cells = [c for i, c in enumerate(nb.cells) if c.cell_type == "code" and (i == first or _gid(c))]
    if setup is not None:
        nb.cells[0].source = setup
    for cell in nb.cells:
        if _gid(cell) in answers:
            cell.source = answers[_gid(cell)]
    nb.cells[1:1] = [new_code_cell(e) if isinstance(e, str) else copy.deepcopy(e) for e in extra]
    return nb


def _submit(course: Path, student: str, lesson: str, nb, beside: dict | None = None) -> None:
    folder = course / "submitted" / student / lesson
    folder.mkdir(parents=True)
    path = folder / f"{lesson}.ipynb"
    if isinstance(nb, bytes):
        path.write_bytes(nb)
    else:
        nbformat.write(nb, path)
    for name, text in (beside or {}).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)


def _autograde(course: Path) -> subprocess.CompletedProcess:
    """`make autograde` in the course: 2 workers; 40 s a cell and 60 s a notebook, long enough for
    the honest notebooks here on a busy 2-core machine (5-12 s on an idle one, 35 s seen on a busy
    one), short enough for the endless loops (exhaust_loop_sigint holds a worker for the whole 60 s)."""
    return subprocess.run([sys.executable, "-m", "grading", "autograde", "--workers", "2", "--timeout", "40",
                           "--notebook-timeout", "60"], cwd=course, env=ENV, capture_output=True, text=True,
                          timeout=1500)


def _fill(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace(key, value)
    return text


def _hashes(course: Path, trees: list[str]) -> dict[str, str]:
    out = {}
    for tree in trees:
        top = course / tree
        for path in sorted([top] if top.is_file() else top.rglob("*") if top.exists() else []):
            if path.is_file():
                out[str(path.relative_to(course))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _rows(course: Path, students: list[str]) -> dict:
    """Every gradebook row of `students`: per grade cell (auto, manual, extra), and the totals."""
    from nbgrader.api import Gradebook, MissingEntry

    rows = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for lesson in LESSONS:
            for student in students:
                try:
                    nb = gradebook.find_submission_notebook(lesson, lesson, student)
                except MissingEntry:
                    continue
                rows[(lesson, student)] = (sorted((g.name, g.auto_score, g.manual_score, g.extra_credit) for g in nb.grades),
                                           nb.score, nb.max_score, str(nb.assignment.timestamp))
    return rows


def scores(course: Path, lesson: str, student: str) -> dict[str, float] | None:
    """{test grade_id: score} of one graded submission in the gradebook; None if it is not there."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        try:
            nb = gradebook.find_submission_notebook(lesson, lesson, student)
        except MissingEntry:
            return None
        return {g.name: g.score for g in nb.grades}


def _marked_processes(token: str) -> dict[int, str]:
    found = {}
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if token in text:
            found[int(cmdline.parent.name)] = text
    return found


def _planted(course: Path, token: str) -> list[str]:
    """Files named planted-<token>... on the host (where the payloads aim), and the repo's and
    venv's files that a payload appended its marker to."""
    name = f"planted-{token}"
    places = [Path("/tmp"), Path("/var/tmp"), Path("/dev/shm"), Path.home(), Path(SITE),
              Path.home() / ".ipython" / "profile_default" / "startup", course / "submitted" / "honest_right" / L01]
    found = [str(p) for place in places if place.is_dir() for p in place.iterdir() if name in p.name or
             f"planted_{token}" in p.name]
    found += [str(p) for p in course.rglob(f"*{name}*")]
    for path in [*(ROOT / "grading").glob("*.py"), *(ROOT / "imgrec_lib").glob("*.py")]:
        if token in path.read_text(errors="replace"):
            found.append(f"{path} (marker appended)")
    return found


@dataclass
class Class:
    course: Path
    token: str
    runs: list                      # the three autograde runs
    report: dict                    # grading_report.json of run 2 (the hostile class)
    before: dict                    # hashes and gradebook rows of the honest after run 1
    after: dict                     # the same after runs 2 and 3
    sentinel: Path
    sentinel_hash: str
    processes: dict                 # marked processes alive right after grading
    planted: list


HONEST1 = ["honest_right", "honest_wrong", "honest_slow"]
HONEST2 = ["zz_honest_right"]       # graded after the hostile ones, in the same run


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    token = secrets.token_hex(6)
    course = tmp_path_factory.mktemp("hostile_course")
    shutil.copy(ROOT / "nbgrader_config.py", course)
    secret = f"INSTRUCTOR-SECRET-{token}"
    for lesson in LESSONS:  # the course's solutions, with a secret in every answer (stripped in the release)
        nb = nbformat.read(ROOT / "solutions" / lesson / f"{lesson}.ipynb", as_version=4)
        for cell in nb.cells:
            if cell.get("metadata", {}).get("nbgrader", {}).get("solution"):
                cell.source = re.sub(r"^(\s*)### BEGIN SOLUTION\n", rf"\1### BEGIN SOLUTION\n\1# {secret}\n",
                                     cell.source, count=1, flags=re.M)
                assert secret in cell.source
        (course / "solutions" / lesson).mkdir(parents=True)
        nbformat.write(nb, course / "solutions" / lesson / f"{lesson}.ipynb")
    start = "import grading, sys; from nbgrader.apps.nbgraderapp import main; sys.argv[0] = 'nbgrader'; main()"
    made = subprocess.run([sys.executable, "-c", start, "generate_assignment", "*", "--force", "--log-level=WARN"],
                          cwd=course, env=ENV, capture_output=True, text=True, timeout=600)
    assert made.returncode == 0, made.stderr[-3000:]
    for lesson in LESSONS:
        assert secret not in (course / "lessons" / lesson / f"{lesson}.ipynb").read_text()

    sentinel = Path.home() / f".imgrec-hostile-sentinel-{token}"
    sentinel.write_text(f"the instructor's own file {token}\n")
    values = {"@COURSE@": str(course), "@ROOT@": str(ROOT), "@HOME@": str(Path.home()), "@SITE@": SITE,
              "@TOKEN@": token}
    runs = []
    try:
        # Run 1: the honest students.
        for lesson in LESSONS:
            right = _answers(lesson)
            _submit(course, "honest_right", lesson, _notebook(course, lesson, right))
            _submit(course, "honest_wrong", lesson, _notebook(course, lesson, right | HONEST_WRONG[lesson]))
        _submit(course, "honest_slow", L01, _notebook(course, L01, _answers(L01) | {"conv2d": SLOW_CONV}))
        runs.append(_autograde(course))
        trees = ["solutions", "lessons", "nbgrader_config.py", *(f"{d}/{s}" for d in ("submitted", "autograded")
                                                                 for s in HONEST1)]
        before = {"files": _hashes(course, trees), "rows": _rows(course, HONEST1)}

        # Run 2: the hostile class, then an honest right answer of each lesson.
        for student, spec in HOSTILE.items():
            _submit(course, student, spec.lesson, *_hostile_notebook(course, student, spec, values))
        for lesson in LESSONS:
            _submit(course, "zz_honest_right", lesson, _notebook(course, lesson, _answers(lesson)))
        runs.append(_autograde(course))
        report = json.loads((course / "grading_report.json").read_text()) if (course / "grading_report.json").exists() else {}

        # Run 3: the garbage timestamp, and an honest student graded with it.
        student, spec = TIMESTAMP
        _submit(course, student, spec.lesson, *_hostile_notebook(course, student, spec, values))
        _submit(course, "zz_after_timestamp", L05, _notebook(course, L05, _answers(L05)))
        runs.append(_autograde(course))

        after = {"files": _hashes(course, trees), "rows": _rows(course, HONEST1)}
        alive = _marked_processes(token)
        yield Class(course, token, runs, report, before, after, sentinel,
                    hashlib.sha256(f"the instructor's own file {token}\n".encode()).hexdigest(), alive,
                    _planted(course, token))
    finally:
        for pid in _marked_processes(token):  # ours, by their marker: whatever a failed sandbox let live
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        _clean_host(token)
        sentinel.unlink(missing_ok=True)


def _hostile_notebook(course: Path, student: str, spec: Hostile, values: dict[str, str]):
    mine = values | {"@MARK@": f"hostile-{values['@TOKEN@']}-{student}"}
    answers = {k: _fill(v, mine) for k, v in spec.answers.items()}
    extra = [_fill(e, mine) if isinstance(e, str) else nbformat.from_dict(json.loads(_fill(json.dumps(e), mine)))
             for e in spec.extra]
    setup = _fill(spec.setup or (SETUP01 if spec.lesson == L01 else SETUP05), mine)
    nb = _notebook(course, spec.lesson, answers, setup, extra)
    if spec.mutate is not None:
        nb = spec.mutate(nb)
    return nb, {k: _fill(v, mine) for k, v in spec.beside.items()}


def _clean_host(token: str) -> None:
    """Remove what a payload planted on the host if a sandbox failed (reported by the tests)."""
    for place in [Path("/tmp"), Path("/var/tmp"), Path("/dev/shm"), Path.home(), Path(SITE),
                  Path.home() / ".ipython" / "profile_default" / "startup"]:
        if place.is_dir():
            for path in place.iterdir():
                if f"planted-{token}" in path.name or f"planted_{token}" in path.name:
                    path.unlink(missing_ok=True)
    for path in [*(ROOT / "grading").glob("*.py"), *(ROOT / "imgrec_lib").glob("*.py")]:
        text = path.read_text(errors="replace")
        if token in text:
            path.write_text("".join(line for line in text.splitlines(keepends=True) if token not in line))


# --- the checks ------------------------------------------------------------------------------------

def test_the_class_is_large_and_covers_every_kind():
    kinds = {student.split("_")[0] for student in HOSTILE}
    assert len(HOSTILE) >= 30 and kinds >= {"forge", "tamper", "lie", "write", "persist", "read", "exhaust", "fmt",
                                            "html", "ref"}, sorted(kinds)


def test_the_runs_finish_and_grade_every_honest_student(graded):
    first, second, third = graded.runs
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-3000:]
    assert "grades exported to grades.csv" in second.stdout, second.stdout[-2000:] + second.stderr[-3000:]
    for run in graded.runs:
        refused = [line for line in run.stderr.splitlines() if line.startswith("NOT GRADED")
                   and ("honest" in line or "after_timestamp" in line)]
        assert not refused, "\n".join(refused)


@pytest.mark.parametrize("student", ["honest_right", "zz_honest_right"])
@pytest.mark.parametrize("lesson", LESSONS)
def test_an_honest_right_answer_gets_full_marks(graded, lesson, student):
    got = scores(graded.course, lesson, student)
    assert got is not None, f"{student} {lesson} is not in the gradebook"
    nb = nbformat.read(graded.course / "solutions" / lesson / f"{lesson}.ipynb", as_version=4)
    points = {_gid(c): float(c.metadata.nbgrader["points"]) for c in nb.cells
              if c.get("metadata", {}).get("nbgrader", {}).get("grade")}
    assert got == points, f"{student} {lesson}: {got}, expected {points}"


def test_the_honest_wrong_answers_score_their_baseline(graded):
    assert scores(graded.course, L01, "honest_wrong") == {
        "test_conv_output_size": 0, "test_conv_output_size_hidden": 0, "test_conv2d_naive": 2,
        "test_conv2d_naive_hidden": 2, "test_conv2d": 0, "test_conv2d_hidden": 0}
    got05 = scores(graded.course, L05, "honest_wrong")
    assert got05 is not None and {k: v for k, v in got05.items() if v} == {
        "test_numeric_gradient": 1, "test_numeric_gradient_hidden": 1}, got05
    slow = scores(graded.course, L01, "honest_slow")
    assert slow["test_conv2d"] == 2 and slow["test_conv2d_hidden"] == 0, slow


@pytest.mark.parametrize("student", [s for s, spec in HOSTILE.items() if spec.baseline])
def test_a_hostile_submission_scores_no_more_than_the_honest_baseline(graded, student):
    spec = HOSTILE[student]
    baseline = scores(graded.course, spec.lesson, spec.baseline)
    got = scores(graded.course, spec.lesson, student) or {}  # not graded: 0
    gained = {cell: (score, baseline[cell]) for cell, score in got.items() if score > baseline.get(cell, 0) + 1e-9}
    report = graded.report.get(f"{student}/{spec.lesson}/{spec.lesson}.ipynb")
    assert not gained, (f"{student} ({spec.intent}) gained marks: {{cell: (its score, {spec.baseline}'s)}} = "
                        f"{gained}; report {report}")


@pytest.mark.parametrize("student", [s for s, spec in HOSTILE.items() if spec.references])
def test_an_answer_that_calls_the_reference_is_flagged_per_exercise(graded, student):
    spec = HOSTILE[student]
    lines = [line for line in graded.runs[1].stdout.splitlines()
             if line.startswith("REFERENCE") and f"student {student}, lesson {spec.lesson}," in line]
    flagged = {re.search(r"exercise (\w+):", line).group(1) for line in lines}
    assert flagged == set(spec.references), "\n".join(lines) or graded.runs[1].stdout[-3000:]
    honest = [line for run in graded.runs for line in run.stdout.splitlines()
              if line.startswith("REFERENCE") and "honest" in line]
    assert not honest, "\n".join(honest)


def test_the_course_and_the_honest_students_are_unchanged(graded):
    changed = {path for path in set(graded.before["files"]) | set(graded.after["files"])
               if graded.before["files"].get(path) != graded.after["files"].get(path)}
    assert not changed, f"changed, added or removed by the hostile runs: {sorted(changed)}"
    assert graded.before["rows"] == graded.after["rows"], "the honest students' gradebook rows changed"
    assert set(graded.before["rows"]) == {(L01, s) for s in HONEST1} | {(L05, s) for s in HONEST1[:2]}


def test_the_instructor_home_is_untouched(graded):
    assert graded.sentinel.is_file()
    assert hashlib.sha256(graded.sentinel.read_bytes()).hexdigest() == graded.sentinel_hash


def test_the_maximum_score_cannot_be_changed_by_a_submission(graded):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{graded.course / 'gradebook.db'}") as gradebook:
        for student, lesson in [("fmt_flags_kernel_types", L05), ("fmt_moved_grade_id", L01),
                                ("fmt_duplicate_ids", L01)]:
            assert gradebook.find_submission(lesson, student).max_score == gradebook.find_assignment(lesson).max_score
        assert gradebook.find_assignment(L01).max_score == 10 and gradebook.find_assignment(L05).max_score == 14


def test_nothing_a_submission_planted_exists(graded):
    assert not graded.planted, f"planted on the host: {graded.planted}"


def test_no_process_a_submission_started_is_left(graded):
    assert not graded.processes, f"still running after grading: {graded.processes}"


def test_the_limits_stop_the_bombs_and_say_so(graded):
    for student in ["exhaust_memory", "exhaust_loop_sigint", "exhaust_disk_output"]:
        lesson = HOSTILE[student].lesson
        report = graded.report.get(f"{student}/{lesson}/{lesson}.ipynb", {})
        assert report.get("notes"), f"{student}: no note says what stopped it: {report}"
        assert f"NOTE        student {student}, lesson {lesson}:" in graded.runs[1].stdout


def _graded_files(course: Path) -> list[Path]:
    return sorted((course / "autograded").rglob("*.ipynb"))


def test_outputs_and_sources_are_cut_to_size(graded):
    sizes = {str(p.relative_to(graded.course)): p.stat().st_size for p in _graded_files(graded.course)}
    assert sizes and max(sizes.values()) < 8 * 2**20, sorted(sizes.items(), key=lambda kv: -kv[1])[:3]
    path = graded.course / "autograded" / "exhaust_disk_output" / L01 / f"{L01}.ipynb"
    assert path.is_file(), f"exhaust_disk_output was not graded: {graded.report.get(f'exhaust_disk_output/{L01}/{L01}.ipynb')}"
    text = path.read_text()
    assert "output cut" in text and "y" * 200_000 not in text
    assert (graded.course / "autograded" / "fmt_huge_notebook" / L01 / f"{L01}.ipynb").stat().st_size < 4 * 2**20


def test_no_secret_of_the_instructor_leaks(graded):
    secret = f"INSTRUCTOR-SECRET-{graded.token}"
    places = [*_graded_files(graded.course), graded.course / "grading_report.json", graded.course / "grades.csv",
              *(graded.course / "feedback").rglob("*.html")]
    leaked = [str(p) for p in places if p.is_file() and secret in p.read_text(errors="replace")]
    leaked += [f"output of run {i + 1}" for i, run in enumerate(graded.runs) if secret in run.stdout + run.stderr]
    assert not leaked, leaked


class _ActiveContent(html.parser.HTMLParser):
    """Collects what a browser would run: script/iframe/object tags, on* attributes, javascript: URLs."""

    def __init__(self):
        super().__init__()
        self.found = []

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "iframe", "object", "embed"):
            self.found.append(tag)
        for name, value in attrs:
            if name.startswith("on") or (value or "").strip().lower().startswith(("javascript:", "data:text/html")) \
                    or name == "srcdoc":
                self.found.append(f"{tag} {name}={value!r}")


def test_markdown_and_outputs_carry_no_script(graded):
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    nb = nbformat.read(graded.course / "autograded" / "html_script" / L01 / f"{L01}.ipynb", as_version=4)
    parser = _ActiveContent()
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            parser.feed(markdown2html_mistune(cell.source))
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            assert "application/javascript" not in data, output
            parser.feed(str(data.get("text/html", "")))
    assert not parser.found, parser.found  # the text may stay, escaped: only what a browser would run counts


def test_a_garbage_timestamp_beside_a_notebook_does_not_stop_the_lesson(graded):
    third = graded.runs[2]
    assert "storing the grades" not in third.stderr, third.stderr[-3000:]
    rows = {row["student_id"] for row in csv.DictReader((graded.course / "grades.csv").open())}
    assert "zz_after_timestamp" in rows, "grades.csv was not exported after the garbage timestamp"
    got = scores(graded.course, L05, "zz_after_timestamp")
    assert got is not None and sum(got.values()) == 14, got


def test_two_workers_reading_notebooks_at_once_never_fail():
    """`autograde --workers N` grades in N threads of one process, and each thread parses notebooks
    (grading/references.py, grading/notebooks.to_run). In CPython 3.11 the ast module counts its
    recursion depth per interpreter, not per thread: when the garbage collector runs a finalizer
    (any Python code) in the middle of one thread's ast.parse and lets the other thread parse, the
    count comes out wrong and ast.parse raises SystemError, and the submission is NOT GRADED
    (seen here: "grading failed: SystemError: AST constructor recursion depth mismatch (before=33,
    after=27)"). Two threads doing what the workers do, with such garbage around, for 5 s: with the
    lock taken out (grading.PARSING a nullcontext) this failed in 17 tries out of 17 here, for 2, 5
    and 20 s alike (at the latest when the first thread ends, while the other parses)."""
    import threading
    import time

    from grading import notebooks, references

    source = nbformat.read(ROOT / "solutions" / L05 / f"{L05}.ipynb", as_version=4)
    errors: list[str] = []

    class Finalized:  # garbage whose collection runs Python code, as a notebook's objects do
        def __init__(self):
            self.cycle = self

        def __del__(self):
            time.sleep(0)

    def work():
        end = time.monotonic() + 5
        while time.monotonic() < end and not errors:
            try:
                for _ in range(20):
                    Finalized()
                references.find_reference_copies(source, source)
                notebooks.to_run(source)
            except SystemError as error:
                errors.append(str(error))

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, f"a worker thread failed while the other parsed: {errors[0]}"
