"""grading/values.py, serve.py and judge.py: a test decided in one place, the student's code run in another.

Here both halves run in this process, talking in JSON as they do across the sandbox: `judge_cell`
runs the instructor's test, and each call of a student's function goes through JSON to
`serve.answer`, as in the student's kernel.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from grading import judge, notebooks, serve, values

CELL = '''def test_double(double):
    import numpy as np
    got = double(np.arange(3.0))
    assert isinstance(got, np.ndarray), f"double should return an array, got {type(got).__name__}"
    assert got.shape == (3,), f"expected shape (3,), got {got.shape}"
    assert float(abs(got - np.array([0.0, 2.0, 4.0])).max()) == 0, f"expected [0, 2, 4], got {got}"
    try:
        double("x")
    except TypeError:
        pass
    else:
        raise AssertionError("double should raise TypeError for a string")
    print("double: correct")


test_double(double)
'''


def through_json(x):
    return json.loads(json.dumps(x))


def verdict(cell: str, told: list | None = None, calls: list | None = None, **student) -> dict:
    """The judge's verdict on `cell` with the student's objects answering in this process, as
    grading/serve.py does in the sandbox; `told` replaces what the kernel says about the arguments,
    `calls` collects the calls the judge sent."""
    before, _, arguments, _ = judge.split_test_cell(cell)
    described, functions = serve.arguments_of(notebooks.probes_of(before, arguments), arguments, dict(student))

    def call(index, args, kwargs):
        message = through_json({"argument": index, "args": args, "kwargs": kwargs})
        if calls is not None:
            calls.append(message)
        return through_json(serve.answer(functions, message))

    return judge.judge_cell("test_x", cell, through_json(described if told is None else told), call)


def right(x):
    if isinstance(x, str):
        raise TypeError("not a number")
    return 2 * np.asarray(x)


def test_values_keep_their_types_and_lying_objects_arrive_plain():
    class Liar(np.ndarray):
        def __eq__(self, other):
            return np.ones(np.shape(self), bool)

    class LyingFloat(float):
        def __sub__(self, other):
            return 0.0

    for value in [1, 2.5, True, None, "s", b"b", (1, [2.0]), {"k": (1,)}, {1, 2}, np.float32(1.5), np.int64(3),
                  np.arange(6).reshape(2, 3), torch.ones(2, dtype=torch.bfloat16), torch.Size([2, 3]), 1 + 2j]:
        back = values.decode(json.loads(json.dumps(values.encode(value))))
        assert type(back) is type(value), (value, back)
        assert repr(back) == repr(value) or (isinstance(value, torch.Tensor) and torch.equal(back, value))
    liar = values.decode(values.encode(np.arange(3.0).view(Liar)))
    assert type(liar) is np.ndarray and not (liar == np.zeros(3)).all()
    lying = values.decode(values.encode(LyingFloat(2.0)))
    assert type(lying) is float and lying - 1.0 == 1.0
    opaque = values.decode(values.encode(x for x in []))
    assert "generator" in repr(opaque)
    with pytest.raises(TypeError):
        opaque.shape


def test_a_right_answer_passes_and_a_wrong_one_fails_with_the_tests_message():
    good = verdict(CELL, double=right)
    assert good["passed"] and "double: correct" in good["outputs"][0]["text"]
    bad = verdict(CELL, double=lambda x: 3 * np.asarray(x))
    assert not bad["passed"]
    error = bad["outputs"][-1]
    assert error["ename"] == "AssertionError" and "expected [0, 2, 4], got [0. 3. 6.]" in error["evalue"]
    no_raise = verdict(CELL, double=lambda x: 2 * np.asarray(x, dtype=object))
    assert not no_raise["passed"]


def test_the_test_and_its_expected_values_stay_with_the_judge():
    """The kernel gets the probes only, and each call's arguments: never the test's source or what it expects."""
    cell = CELL.replace("def test_double", "def probe(f):\n    return 1\n\n\ndef test_double").replace(
        "test_double(double)\n", "test_double(double, probe(double))\n").replace("(double):", "(double, one):")
    before, _, arguments, _ = judge.split_test_cell(cell)
    probes = notebooks.probes_of(before, arguments)
    assert "def probe" in probes and "test_double" not in probes and "expected" not in probes
    calls: list = []
    assert verdict(cell, calls=calls, double=right)["passed"]
    assert "[0, 2, 4]" not in json.dumps(calls) and "4.0" not in json.dumps(calls)


def test_what_the_kernel_says_cannot_pass_a_wrong_answer():
    wrong = lambda x: 3 * np.asarray(x)  # noqa: E731
    assert not verdict(CELL, told=[{"source": "double", "value": {"opaque": "function"}}], double=wrong)["passed"]
    assert not verdict(CELL, told=[], double=right)["passed"]  # nothing said at all
    assert not verdict(CELL, told=[{"source": "other", "function": True}], double=right)["passed"]
    assert not verdict(CELL, told=[{"source": "double", "value": {"float": "2.0"}}], double=right)["passed"]
    before, _, arguments, _ = judge.split_test_cell(CELL)
    for reply in [None, "ok", {}, {"result": "ok"}, {"raised": ["AssertionError", ""]},
                  {"result": {"ndarray": {"dtype": "float64", "shape": [10**7], "data": ""}}}]:
        result = judge.judge_cell("test_x", CELL, [{"source": "double", "function": True}], lambda *a, r=reply: r)
        assert not result["passed"], reply
    assert "too large" in result["outputs"][-1]["evalue"]


def test_in_place_changes_come_back_and_only_plain_values_are_sent():
    cell = '''def test_step(step):
    import numpy as np
    p = np.ones(3)
    assert step(p) is None
    assert (p == 0.5).all(), f"step should halve p in place, got {p}"


test_step(step)
'''

    def step(p):
        p *= 0.5

    assert verdict(cell, step=step)["passed"]
    assert not verdict(cell, step=lambda p: None)["passed"]
    sends_a_function = cell.replace("step(p) is None", "step(lambda: 1) is None")
    refused = verdict(sends_a_function, step=step)
    assert not refused["passed"] and "only be called with plain values" in refused["outputs"][-1]["evalue"]


def test_a_probe_returns_plain_values_the_test_checks():
    cell = '''def describe(Net):
    net = Net()
    return {"params": sum(p.numel() for p in net.parameters())}


def test_net(facts):
    assert facts["params"] == 4 * 3 + 3, f"expected 15 parameters, got {facts['params']}"


test_net(describe(Net))
'''
    assert verdict(cell, Net=lambda: torch.nn.Linear(4, 3))["passed"]
    assert "expected 15 parameters, got 20" in verdict(cell, Net=lambda: torch.nn.Linear(4, 4))["outputs"][-1]["evalue"]
    assert "ZeroDivisionError" in verdict(cell, Net=lambda: 1 / 0)["outputs"][-1]["evalue"]


def test_a_lying_result_arrives_plain_and_a_call_stopped_by_the_time_limit_fails():
    class Liar(np.ndarray):
        def __sub__(self, other):
            return np.zeros(np.shape(other))
        __rsub__ = __sub__
        __eq__ = lambda self, other: np.ones(np.shape(self), bool)  # noqa: E731

    assert not verdict(CELL, double=lambda x: np.zeros(3).view(Liar) if not isinstance(x, str) else right(x))["passed"]

    def interrupted(x):
        raise KeyboardInterrupt

    stopped = verdict(CELL, double=interrupted)
    assert not stopped["passed"] and "time limit" in stopped["outputs"][-1]["evalue"]


def test_a_test_cell_must_end_with_a_call_of_its_test():
    with pytest.raises(judge.NotGradable):
        judge.split_test_cell("def test_x(f):\n    pass\n\nprint('no call')\n")
    before, name, arguments, after = judge.split_test_cell(CELL + "### END HIDDEN TESTS\n")
    assert name == "test_double" and arguments == [("double", True)] and "END HIDDEN" in after


class Lines:
    """A sandbox's side of the conversation, scripted: the lines it sends, what it was sent."""

    def __init__(self, lines: list[bytes]):
        self.lines, self.sent = list(lines), []

    def send(self, data: bytes, *, last: bool = False) -> bool:
        self.sent.append(data)
        return True

    def next_line(self):
        return self.lines.pop(0) if self.lines else None


def test_a_sandbox_cannot_make_the_worker_parse_a_deep_line_or_millions_of_items_or_keep_a_thousand_outputs():
    from nbformat.v4 import new_code_cell, new_notebook

    from grading import worker

    cell = {"output_type": "stream", "name": "stdout", "text": "x\n"}
    lines = [b"[" * 5000 + b"\n", b"[" + b"[]," * 400_000 + b"[]]\n", b"[" + b"0," * 1_200_000 + b"0]\n",
             b'{"text": "' + b"y" * (20 * 2**20) + b'"}\n',
             json.dumps({"cell": 0, "outputs": [cell] * 5000}).encode() + b"\n", b'{"done": "ok"}\n']
    run = worker.Run(Lines(lines), {}, judge=None)
    run.go({"cells": []})
    assert run.done == "ok" and len(run.outputs[0]) == 5000
    graded = notebooks.assemble(new_notebook(cells=[new_code_cell("print('x')")]), run.outputs, {})
    assert len(graded.cells[0].outputs) == notebooks.MAX_OUTPUTS_PER_CELL


class FakeJudge:
    """Passes every test it is asked to run, and notes which."""

    def __init__(self):
        self.ran = []

    def run_test(self, grade_id, source, arguments, call):
        self.ran.append(grade_id)
        return {"passed": True, "outputs": []}


def test_a_test_is_served_only_by_the_kernel_with_its_test_cells_token_and_only_once():
    from grading import worker

    def kernel(event):
        return worker.KERNEL + json.dumps(event).encode() + b"\n"

    lines = [kernel({"serve": "test_a", "arguments": []}),                        # no hello
             kernel({"hello": "test_a", "token": "guess"}), kernel({"serve": "test_a", "arguments": []}),
             json.dumps({"hello": "test_a", "token": "A" * 32}).encode() + b"\n",  # not the kernel's line
             json.dumps({"serve": "test_a", "arguments": []}).encode() + b"\n",
             kernel({"hello": "test_b", "token": "B" * 32}), kernel({"serve": "test_a", "arguments": []}),
             kernel({"hello": "test_a", "token": "A" * 32}), kernel({"serve": "test_a", "arguments": []}),
             kernel({"hello": "test_a", "token": "A" * 32}), kernel({"serve": "test_a", "arguments": []}),
             kernel({"hello": "\x1b[2K\x1b[1A", "token": "x"}),
             kernel({"cell": 0, "outputs": [{"output_type": "stream", "name": "stdout", "text": "forged"}]}),
             kernel({"done": "forged"}), b'{"done": "ok"}\n']
    judge_ = FakeJudge()
    run = worker.Run(Lines(lines), {"test_a": "", "test_b": ""}, judge_, {"test_a": "A" * 32, "test_b": "B" * 32})
    run.go({"cells": []})
    assert judge_.ran == ["test_a"], "only the serve right after a hello with test_a's token is judged, once"
    assert run.refused == ["test_a"] * 4 + ["(a name that is no test's)"], run.refused  # the serve alone, the guess
    # and its serve, the serve after test_b's hello; a name of the student's that could move the terminal's cursor
    assert run.outputs == {} and run.done == "ok", "outputs and the end come only from the runner"


def test_the_outputs_kept_have_a_budget_across_cells():
    from grading import worker

    cell = {"output_type": "stream", "name": "stdout", "text": "x\n"}
    line = json.dumps({"cell": 0, "outputs": [cell] * 100_000}).encode() + b"\n"
    count = worker.items(line)
    lines = [line.replace(b'"cell": 0', f'"cell": {i}'.encode()) for i in range(worker.MAX_ITEMS_OF_OUTPUTS // count + 3)]
    run = worker.Run(Lines(lines + [b'{"done": "ok"}\n']), {}, judge=None)
    run.go({"cells": []})
    assert sum(run.output_items.values()) <= worker.MAX_ITEMS_OF_OUTPUTS
    assert len(run.outputs[0]) == 100_000 and "left out" in run.outputs[len(lines) - 1][0]["text"]


def test_a_judge_left_in_the_middle_of_a_test_is_restarted_not_reused():
    """A call that fails in the worker (a reply it could not handle) must not leave the judge
    waiting for that reply: the next test would read its request as the reply."""
    from grading import worker

    judge_ = worker.Judge(worker.Options(sandboxed=False))
    try:
        def broken(call):
            raise RecursionError("a reply nested too deeply")

        with pytest.raises(RecursionError):
            judge_.run_test("test_x", CELL, [{"source": "double", "function": True}], broken)
        before, _, arguments, _ = judge.split_test_cell(CELL)
        _, functions = serve.arguments_of(notebooks.probes_of(before, arguments), arguments, {"double": right})
        verdict = judge_.run_test("test_x", CELL, [{"source": "double", "function": True}],
                                  lambda call: through_json(serve.answer(functions, through_json(call))))
        assert verdict["passed"], verdict
    finally:
        judge_.close()


def test_an_error_inside_the_students_function_shows_where_in_their_code_it_was_raised():
    import linecache

    from grading import check

    source = "def double(x):\n    y = 2 * x\n    return y * mask\n"
    cell = "/tmp/ipykernel_4242/1717.py"  # where ipykernel compiles a notebook's cell
    linecache.cache[cell] = (len(source), None, source.splitlines(keepends=True), cell)
    namespace: dict = {}
    exec(compile(source, cell, "exec"), namespace)
    failed = verdict(CELL, double=namespace["double"])
    assert not failed["passed"]
    error = failed["outputs"][-1]
    assert error["ename"] == "NameError"
    shown = "\n".join(error["traceback"])
    assert f"{cell}, line 3, in double\n    return y * mask" in shown, shown
    assert "got = double(np.arange(3.0))" in shown  # the test's own call stays above it
    assert not any("serve.py" in line or "values.py" in line for line in error["traceback"])  # none of the grader's
    assert check._where(error) == f" (raised at {cell}, line 3, in double)"
    assert check._where({"traceback": ["Traceback (most recent call last):", '  File "<test cell x>", line 3, in t',
                                       "    assert got == 1", "AssertionError"]}) == ""


def test_a_cell_is_named_as_ipython_names_it_in_a_kernel(monkeypatch):
    class Compiler:
        def format_code_name(self, name):
            return ("Cell", "In[17]") if name == "/tmp/ipykernel_1/5.py" else None

    class Shell:
        compile = Compiler()

    monkeypatch.setattr("IPython.get_ipython", lambda: Shell())
    assert serve.cell_name("/tmp/ipykernel_1/5.py") == "Cell In[17]"
    assert serve.cell_name("/tmp/other.py") == "/tmp/other.py"


def test_a_call_says_how_long_the_students_function_ran_without_the_carrying():
    """A test that times the student's code reads `function.seconds` when graded: the time in the kernel,
    not the time to carry the values there and back, which on a busy machine is the larger part."""
    import time

    def slow(x):
        time.sleep(0.05)
        return x

    reply = serve.answer({0: slow}, {"argument": 0, "args": values.encode([np.zeros(3)]), "kwargs": values.encode({})})
    assert 0.05 <= reply["seconds"] < 1.0

    def carried_slowly(index, args, kwargs):
        time.sleep(0.2)
        return through_json(serve.answer({0: slow}, through_json({"argument": index, "args": args, "kwargs": kwargs})))

    remote = judge.Remote("slow", 0, carried_slowly)
    start = time.perf_counter()
    remote(np.zeros(3))
    assert time.perf_counter() - start >= 0.25 and 0.05 <= remote.seconds < 0.2
    remote.call = lambda *a: None
    with pytest.raises(RuntimeError):
        remote(np.zeros(3))
    assert remote.seconds is None


def test_a_notebooks_fake_clock_does_not_change_how_long_its_function_ran(monkeypatch):
    """serve times an answer with the clock grading/recorder.py bound before the notebook ran: an answer cell's
    `time.perf_counter = lambda: 0.0` does not make slow loops look fast to lesson 01's speed test."""
    import time

    def slow(x):
        time.sleep(0.05)
        return x

    monkeypatch.setattr(time, "perf_counter", lambda: 0.0)
    reply = serve.answer({0: slow}, {"argument": 0, "args": values.encode([np.zeros(3)]), "kwargs": values.encode({})})
    assert reply["seconds"] >= 0.05 and "switched-off:time.perf_counter replaced" in reply["used"], reply
