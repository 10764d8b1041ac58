"""Record what a student's code calls while it is graded: a second look next to grading/references.py.

The static reader (grading/references.py) reads the notebook; however an answer spells its way to
torch (``sys._getframe().f_globals["torch"]``, ``functools.reduce(getattr, ...)``, a module kept in a
list, ``pickle.loads``, ``y.grad_fn(dout)``, ``torch.relu_`` where the exercise lists ``torch.relu``),
the library's code runs in the end. So while grading/serve.py evaluates a test's probes and runs
each call the judge makes to a student's function, `Recorder` notes:

- Python functions entered in a watched package (``WATCHED``: torch, torchvision, scipy, sklearn,
  skimage, imgrec_lib), as ``module.qualname``, only where the package is entered (from the
  student's code, or from another package: torch running torchvision's ``BasicBlock.forward``; not
  from the course library, whose use is judged by its own name), and
  built-in functions of those packages the student's code calls (``torch.relu_``), with
  ``sys.setprofile``;
- the ways out of this recording (``ESCAPES``: threads, processes, ``ctypes``, ``gc``, pickle's and
  marshal's loads, ``code``, ``cProfile``, ``pydoc.locate``, ``runpy``, ``importlib``,
  ``sys.setprofile`` ...) that the student's code calls, as ``escape:name``;
- once torch is imported, every aten operator that the student's code runs (``aten.relu_``), with a
  ``TorchDispatchMode``: it sees a torch computation however it was reached, a C callback included
  (the nearest frame outside torch says whose it is: the probes' and the library's are not noted);
- what an audit hook sees the notebook's code do, which no profile event shows (`watch_audit_events`:
  ``sys.setprofile`` called through ``map()``, code given an installed library's file name, ctypes);
- at the end, whether both were still in place (``switched-off:...`` when the answer removed them),
  and what the notebook left running beside the answer, out of their sight: a thread with the
  notebook's code on its stack, a child process (``beside:...``).

The instructor's probe code (compiled by grading/serve.py) and the grader's own modules are trusted,
known by their code objects (`trust`), never by a file name, which a student's code can set: what they
call is not recorded, what the student's code they call does is. The kernel imports this module
before the notebook's first cell (grading/runner.PRELOAD), and it binds what it uses of sys then;
`replaced` names what a notebook replaced since (``switched-off:sys._getframe replaced``). The names (at most ``MAX_NAMES``) go to the grader with each
reply, where ``references.runtime_findings`` decides which of them void an exercise. This runs in
the student's kernel: a student who knows it can remove it, so a name here, like a static finding, is
a reason to look, and its absence proves nothing.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import sysconfig
import threading
import time

PROBES = "<probes of the test cell>"  # the file name the probes are compiled with (grading/serve.py)
WATCHED = ("torch", "torchvision", "scipy", "sklearn", "skimage", "imgrec_lib")
MAX_NAMES = 200

# Ways out of the recording, by module: None for any function of it, else the names that count.
# A Python function counts only where the student's code runs it: one that a C extension calls (numpy's
# random generator makes a threading.RLock) seems called from the student's frame too, so of
# threading only what starts or talks to another thread counts, and of _thread only what starts one
# (a lock moves no work out of sight; code that torch compiles from a string makes them).
ESCAPES: dict[str, frozenset | None] = {
    "threading": frozenset({"Thread.start", "Thread.join", "Timer.start", "Event.wait", "Event.set", "Condition.wait",
                            "Condition.wait_for", "Condition.notify", "Condition.notify_all", "Semaphore.acquire",
                            "Semaphore.release", "Barrier.wait", "settrace", "setprofile", "settrace_all_threads",
                            "setprofile_all_threads", "enumerate"}),
    "_thread": frozenset({"start_new_thread", "start_new", "start_joinable_thread"}), "queue": None, "_queue": None, "multiprocessing": None,
    "concurrent": None, "subprocess": None, "_posixsubprocess": None, "ctypes": None, "_ctypes": None,
    "gc": None, "code": None, "codeop": None, "cProfile": None, "_lsprof": None, "profile": None,
    "runpy": None, "importlib": None, "importlib.util": None, "importlib.machinery": None,
    "pydoc": frozenset({"locate"}),
    "pickle": frozenset({"load", "loads", "Unpickler.load", "_Unpickler.load", "_load", "_loads"}),
    "_pickle": frozenset({"load", "loads", "Unpickler.load"}),
    "marshal": frozenset({"load", "loads"}),
    "sys": frozenset({"setprofile", "settrace", "_setprofileallthreads", "_settraceallthreads"}),
    "posix": frozenset({"system", "fork", "forkpty", "execv", "execve", "posix_spawn", "posix_spawnp",
                        "register_at_fork"}),
    "os": frozenset({"system", "popen", "fork", "forkpty", "execl", "execle", "execlp", "execlpe", "execv",
                     "execve", "execvp", "execvpe", "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv",
                     "spawnve", "spawnvp", "spawnvpe", "posix_spawn", "posix_spawnp"}),
}

# torch's own functions that running an operator under a dispatch mode calls: not the student's doing
_MODE_MACHINERY = {"find_torch_dispatch_rule"}
# The course library: its functions are recorded where the student's code calls them (whether that is
# a reference is the exercise's business), not the torch or scipy code they run themselves.
_LIBRARY = "imgrec_lib"
_ESCAPE_PACKAGES = {"multiprocessing", "concurrent", "ctypes"}

# What a code object is: the student's (any code not installed: the notebook's cells, code made with
# exec), trusted (the probes, this module), grading/serve.py (it calls the student's function), an
# installed library's (ESCAPE: a module of ESCAPES; IMPORT: the import system), a watched package's.
STUDENT, TRUSTED, SERVE, LIBRARY, ESCAPE, IMPORT, WATCHED_CODE = range(7)


def _package_folders() -> list[tuple[str, str]]:
    """[(folder + os.sep, the package's dotted name)] of the watched packages, found without importing them."""
    folders = []
    for name in WATCHED:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        for folder in (spec.submodule_search_locations or []) if spec else []:
            folders.append((os.path.join(os.path.realpath(folder), ""), name))
    return folders


_FOLDERS = _package_folders()
_GRADING = os.path.join(os.path.dirname(os.path.realpath(__file__)), "")
_STDLIB = os.path.join(os.path.realpath(sysconfig.get_paths()["stdlib"]), "")
_LIBRARIES = tuple({os.path.join(os.path.realpath(p), "") for p in
                    (sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"],
                     sysconfig.get_paths()["platlib"], sys.base_prefix, sys.prefix)})


def _dotted(relative: str) -> str:
    """'nn/functional.py' -> 'nn.functional'; 'models/__init__.py' -> 'models'."""
    parts = relative[:-3].split(os.sep) if relative.endswith(".py") else relative.split(os.sep)
    if parts and parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


# The grader's own code objects and the probes', by identity: id(code) -> (code, TRUSTED or SERVE). A file
# name says nothing here, for a student can give any code object any name (``code.replace(co_filename=...)``).
_KNOWN: dict[int, tuple] = {}


def _code_objects(x):
    """The code objects of a code object, function, class or module, and of everything defined inside them
    (a nested function, a class body, a comprehension: each is a constant of the code around it)."""
    stack, seen = [x], set()
    while stack:
        x = stack.pop()
        if id(x) in seen:
            continue
        seen.add(id(x))
        if isinstance(x, type(_dotted.__code__)):
            yield x
            stack.extend(c for c in x.co_consts if isinstance(c, type(x)))
        elif isinstance(x, (staticmethod, classmethod)):
            stack.append(x.__func__)
        elif isinstance(x, property):
            stack.extend(f for f in (x.fget, x.fset, x.fdel) if f is not None)
        elif hasattr(x, "__code__"):
            stack.append(x.__code__)
        elif isinstance(x, type) or type(x).__name__ == "module":
            owner = x.__name__ if not isinstance(x, type) else x.__module__
            stack.extend(v for v in vars(x).values()
                         if isinstance(v, (staticmethod, classmethod, property))
                         or getattr(v, "__module__", None) == owner and (isinstance(v, type) or hasattr(v, "__code__")))


def trust(x, kind: int = TRUSTED) -> None:
    """Know the code objects of `x` (the probes' compiled code, a grading module) as the grader's:
    `classify` calls them `kind` by identity, whatever file name they carry."""
    for code in _code_objects(x):
        _KNOWN[id(code)] = (code, kind)


def foreign_trusted() -> list[str]:
    """Code the record was told to trust (`trust`) that is neither the grader's nor the probes': the
    notebook's own code passed off as the grader's, so that what it calls goes unrecorded."""
    found, paths = [], {}  # the grader's ~80 code objects come from a dozen files: one realpath each
    for code, _ in list(_KNOWN.values()):
        filename = getattr(code, "co_filename", "")
        if filename not in paths:
            paths[filename] = os.path.realpath(filename) if filename.startswith(os.sep) else filename
        if filename != PROBES and not paths[filename].startswith(_GRADING):
            found.append(f"the notebook's code ({str(getattr(code, 'co_name', '?'))[:60]}) trusted as the grader's")
            if len(found) >= 5:
                break
    return found


def classify(code) -> tuple[int, str]:
    """(what the code is, its dotted module name where that matters): the grader's own by identity
    (`trust`), else from its file name. Code named as the grader's that is not known is the student's."""
    known = _KNOWN.get(id(code))
    if known is not None and known[0] is code:
        return known[1], ""
    filename = code.co_filename
    if filename == PROBES:
        return STUDENT, ""
    if filename.startswith("<frozen "):  # a frozen standard module: '<frozen os>'
        module = filename[len("<frozen "):-1]
        return (IMPORT if module.startswith("importlib._") else ESCAPE if _escape_module(module) else LIBRARY), module
    path = os.path.realpath(filename) if filename.startswith(os.sep) else filename
    if path.startswith(_GRADING):
        return STUDENT, ""
    for folder, package in _FOLDERS:
        if path.startswith(folder):
            inner = _dotted(path[len(folder):])
            return WATCHED_CODE, f"{package}.{inner}" if inner else package
    if path.startswith(_STDLIB):
        module = _dotted(path[len(_STDLIB):])
        return (ESCAPE if _escape_module(module) else LIBRARY), module
    if path.startswith(_LIBRARIES):
        return LIBRARY, ""
    return STUDENT, ""


def _escape_module(module: str) -> bool:
    top = module.split(".")[0]
    return module in ESCAPES or top in _ESCAPE_PACKAGES and module.startswith(top + ".")


def _escape(module: str, name: str) -> bool:
    """Whether module.name is a way out of the recording (``ESCAPES``; the packages' submodules too)."""
    if not _escape_module(module):
        return False
    names = ESCAPES.get(module)
    return names is None or name in names or name.split(".")[-1] in names


def builtin_name(function) -> str:
    """The name of a built-in function as the recorder writes it: torch.relu_, torch.Tensor.relu, gc.get_objects."""
    module = getattr(function, "__module__", None)
    qualname = getattr(function, "__qualname__", None) or getattr(function, "__name__", "?")
    if module is None:  # a method bound to an object: the module of its type
        module = getattr(type(getattr(function, "__self__", None)), "__module__", None) or "builtins"
    if module == "posix":
        module = "os"
    return f"{module}.{qualname.replace('_VariableFunctionsClass.', '')}"


class Recorder:
    """``with Recorder() as seen: ...`` runs the block with the recording on; ``seen.names()`` is what
    the student's code called there (see the module's docstring). It can be entered again: the
    names add up."""

    def __init__(self):
        self.seen: dict[str, None] = {}
        self.full = False
        # id(code) -> classify(code), by identity: code objects compare equal whatever their file name.
        # `held` keeps each classified code object alive, so no id is reused while recording.
        self.kinds: dict = {}
        self.held: list = []
        self.mode = None
        self.previous = None

    def add(self, name: str) -> None:
        if name in self.seen:
            return
        if len(self.seen) >= MAX_NAMES:
            self.full = True
            return
        self.seen[name] = None

    def names(self) -> list[str]:
        return [*self.seen, *(["more:names were left out"] if self.full else [])]

    def kind(self, code) -> tuple[int, str]:
        kind = self.kinds.get(id(code))
        if kind is None:
            kind = self.kinds[id(code)] = classify(code)
            self.held.append(code)
        return kind

    def _profiler(self):
        """The sys.setprofile function: a closure over local names, for it runs at every call."""
        kinds, kind_of, add, ident = self.kinds, self.kind, self.add, id
        builtins_seen: dict = {}  # a built-in's module name or type -> whether it can matter

        def profile(frame, event, arg):
            try:
                if event == "call":
                    code = frame.f_code
                    kind, module = kinds.get(ident(code)) or kind_of(code)
                    if kind == WATCHED_CODE:
                        caller = frame.f_back
                        if caller is None or code.co_name in ("__del__", "<module>"):
                            return
                        caller_kind, caller_module = kinds.get(ident(caller.f_code)) or kind_of(caller.f_code)
                        if caller_kind in (TRUSTED, IMPORT) or caller_module.startswith(_LIBRARY):
                            return  # the probes' calls, an import, the course library's own use of torch
                        if ((caller_kind != WATCHED_CODE or caller_module.split(".")[0] != module.split(".")[0])
                                and code.co_name not in _MODE_MACHINERY):
                            add(f"{module}.{code.co_qualname}")
                    elif kind == ESCAPE and frame.f_back is not None:
                        caller = frame.f_back.f_code
                        if (kinds.get(ident(caller)) or kind_of(caller))[0] == STUDENT and _escape(module, code.co_qualname):
                            add(f"escape:{module}.{code.co_qualname}")
                elif event == "c_call":
                    owner = arg.__module__ or type(arg.__self__)
                    matters = builtins_seen.get(owner)
                    if matters is None:
                        top = (owner if isinstance(owner, str) else owner.__module__ or "").split(".")[0]
                        matters = builtins_seen[owner] = top in WATCHED or top in ESCAPES or top == "posix"
                    if not matters:
                        return
                    code = frame.f_code
                    kind = (kinds.get(ident(code)) or kind_of(code))[0]
                    if kind in (TRUSTED, WATCHED_CODE, IMPORT):
                        return
                    name = builtin_name(arg)
                    top = name.split(".")[0]
                    if top in WATCHED:
                        add(name)
                    elif kind == STUDENT and (_escape(*name.rsplit(".", 1)) or _escape(top, name.split(".", 1)[1])):
                        add(f"escape:{name}")
            except Exception:  # noqa: BLE001 - the recording must never change what the answer does
                pass

        return profile

    def _start_mode(self) -> None:
        """Enter the aten operator recording, when the student's code can run torch at all."""
        if "torch" not in sys.modules:
            return
        try:
            self.mode = _aten_ops(self)
            self.mode.__enter__()
        except Exception:  # noqa: BLE001 - a torch without dispatch modes: the profile still records
            self.mode = None

    def _stop_mode(self) -> None:
        if self.mode is None:
            return
        from torch.utils._python_dispatch import _get_current_dispatch_mode_stack

        if self.mode not in _get_current_dispatch_mode_stack():
            self.add("switched-off:the torch dispatch mode")
            return
        try:
            self.mode.__exit__(None, None, None)
        except Exception:  # noqa: BLE001 - the answer left other modes on top of ours
            self.add("switched-off:the torch dispatch mode")

    def __enter__(self) -> "Recorder":
        self.previous = _getprofile()
        self._start_mode()
        self.profile = self._profiler()
        _RECORDING.append(self)
        _setprofile(self.profile)
        return self

    def __exit__(self, *exc) -> None:
        still = _getprofile()
        _setprofile(self.previous)
        if self not in _RECORDING:
            self.add("switched-off:this recording taken off the list of recordings")
        while self in _RECORDING:
            _RECORDING.remove(self)
        if still is not self.profile:
            self.add("switched-off:sys.setprofile")
        for name in foreign_trusted():
            self.add(f"switched-off:{name}")
        self._stop_mode()
        self._note_helpers()
        for changed in replaced():
            self.add(f"switched-off:{changed} replaced")
        for name in _AUDITED:
            self.add(name)

    def _note_helpers(self) -> None:
        """Note what the notebook left running beside the answer, out of this record's sight (the profile
        and the dispatch mode are the calling thread's): another thread with the notebook's code on
        its stack (a worker started in an earlier cell that the answer hands its work to), and child
        processes of the kernel."""
        frames = _current_frames()
        frames.pop(_get_ident(), None)  # this frame itself: held here, it would keep the caller's alive
        try:
            for frame in frames.values():
                for _ in range(100):
                    if frame is None:
                        break
                    if self.kind(frame.f_code)[0] == STUDENT:
                        self.add("beside:a thread running the notebook's code")
                        break
                    frame = frame.f_back
            for task in _listdir("/proc/self/task"):
                with _open(f"/proc/self/task/{task}/children") as children:
                    if children.read().split():
                        self.add("beside:a process the notebook started")
        except (OSError, RuntimeError):  # not Linux, or a task that ended meanwhile
            pass
        finally:
            frames = frame = None  # no reference to another thread's frames outlives this call


_ATEN_OPS: dict[bool, type] = {}  # whether torch._dynamo was imported when it was made -> the mode's class


def _aten_ops(recorder: Recorder):
    """A TorchDispatchMode that notes, in `recorder`, each aten operator the student's code runs (the
    first frame outside torch and this module is not trusted code) and runs it unchanged. The first
    one made runs an operator first: torch imports its dispatch machinery then, which is not the
    student's doing.

    torch keeps torch.compile out of a mode's ``__torch_dispatch__`` by wrapping it, and the wrapper
    imports torch._dynamo (and sympy) at its first operator: about 2 s in every kernel that grades a
    torch answer. So the mode goes without that wrapper until the notebook has imported torch._dynamo
    itself (it compiles something); each operator is recorded either way."""
    compiling = "torch._dynamo" in sys.modules
    if compiling not in _ATEN_OPS:
        import torch
        from torch.utils._python_dispatch import TorchDispatchMode

        class AtenOps(TorchDispatchMode):
            @classmethod
            def _should_skip_dynamo(cls) -> bool:
                return compiling

            def __init__(self, recorder=None):
                super().__init__()
                self.recorder = recorder

            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                try:
                    if self.recorder is not None:
                        frame = _getframe(1)
                        kind = self.recorder.kind
                        while frame is not None and kind(frame.f_code)[1].startswith("torch"):
                            frame = frame.f_back
                        if frame is not None and kind(frame.f_code)[0] != TRUSTED \
                                and not kind(frame.f_code)[1].startswith(_LIBRARY):
                            self.recorder.add(f"aten.{func.__name__.split('.')[0]}")
                except Exception:  # noqa: BLE001
                    pass
                return func(*args, **(kwargs or {}))

        with AtenOps():
            torch.zeros(1).add(1)
        _ATEN_OPS[compiling] = AtenOps
    return _ATEN_OPS[compiling](recorder)


# What the notebook's own code did that no profile event shows, seen by an audit hook (`watch_audit_events`):
# notes for every recording from then on (`_AUDITED`), and the recordings now running (`_RECORDING`).
_AUDITED: dict[str, None] = {}
_RECORDING: list = []
_AUDIT_EVENTS = frozenset({"sys.setprofile", "sys.settrace", "code.__new__", "function.__new__",
                           "gc.get_objects", "gc.get_referrers", "gc.get_referents"})


def watch_audit_events() -> None:
    """Add an audit hook (``sys.addaudithook``: once added, nothing in Python removes it) that notes what the
    notebook's code does to get around the recording, by whatever route, a C function such as
    ``map()`` included:

    - ``sys.setprofile`` or ``sys.settrace`` called while an answer is recorded (``switched-off:``), even
      where the answer puts the hook back before it returns;
    - a code object made with a file name that is not the notebook's (the probes', the grader's, an
      installed library's: ``code.replace(co_filename=...)``), or a function made of such code
      (``types.FunctionType(probe_code, my_globals)``), from then on (``switched-off:``);
    - ctypes and ``gc.get_objects``/``get_referrers``/``get_referents`` (``escape:``), from then on.

    Only where the notebook's own code does it (the nearest frame outside ctypes and the like is the
    student's): a library that builds code objects or uses ctypes is not noted."""
    recording, audited, getframe, known = _RECORDING, _AUDITED, _getframe, {}

    def kind(code) -> int:
        seen = known.get(id(code))
        if seen is None or seen[0] is not code:
            seen = known[id(code)] = (code, classify(code)[0])
        return seen[1]

    def notebooks_own_doing() -> bool:
        frame = getframe(2)  # the innermost Python frame where the event happened
        try:
            while frame is not None and kind(frame.f_code) == ESCAPE:
                frame = frame.f_back
            return frame is not None and kind(frame.f_code) == STUDENT
        finally:
            frame = None

    def note(event: str, args: tuple) -> None:
        if event not in _AUDIT_EVENTS and not event.startswith("ctypes."):
            return
        try:
            if not notebooks_own_doing():
                return
            if event in ("sys.setprofile", "sys.settrace"):
                for recorder in list(recording):
                    recorder.add(f"switched-off:{event} called")
            elif event == "code.__new__" and (args[1] == PROBES or _installed(args[1])):
                audited[f"switched-off:code given the file name {str(args[1])[-80:]}"] = None
            elif event == "function.__new__" and kind(args[0]) != STUDENT:
                audited[f"switched-off:a function made of {args[0].co_filename[-80:]}'s code"] = None
            elif event.startswith(("ctypes.", "gc.")):
                audited[f"escape:{event.split('/')[0]}"] = None
        except Exception:  # noqa: BLE001 - the hook must never change what the notebook does
            pass

    sys.addaudithook(note)


def _installed(filename: str) -> bool:
    """Whether a file name claims code that is not the notebook's: the grader's, or an installed library's."""
    if not isinstance(filename, str):
        return False
    if filename.startswith("<frozen "):
        return True
    path = os.path.realpath(filename) if filename.startswith(os.sep) else filename
    return path.startswith((_GRADING, _STDLIB, *_LIBRARIES, *(folder for folder, _ in _FOLDERS)))


# What this module calls of sys, threading, os and builtins, and the clock grading/serve.py times an
# answer with, bound once when it is imported (before the notebook's first cell: grading/runner.py),
# so that a notebook that replaces ``sys.setprofile``, ``sys._getframe`` or ``time.perf_counter`` with
# a fake fools neither the recording nor the timing; `replaced` says which were replaced.
_BOUND = {"sys.setprofile": sys.setprofile, "sys.getprofile": sys.getprofile, "sys._getframe": sys._getframe,
          "sys._current_frames": sys._current_frames, "sys.settrace": sys.settrace, "sys.gettrace": sys.gettrace,
          "threading.get_ident": threading.get_ident, "threading.Thread": threading.Thread,
          "os.listdir": os.listdir, "builtins.open": open, "time.perf_counter": time.perf_counter}
_setprofile, _getprofile, _getframe = sys.setprofile, sys.getprofile, sys._getframe
perf_counter = time.perf_counter  # the clock grading/serve.py times an answer with, bound before the notebook runs
_current_frames, _get_ident, _listdir, _open = sys._current_frames, threading.get_ident, os.listdir, open
_MODULES = {"sys": sys, "threading": threading, "os": os, "builtins": sys.modules["builtins"], "time": time}
_OWN = {}  # this module's names and Recorder's attributes as imported (filled below)


def replaced() -> list[str]:
    """What a notebook replaced since this module was imported: the functions of `_BOUND` on their modules,
    this module's own names ("grading.recorder.Recorder.names")."""
    found = [name for name, bound in _BOUND.items()
             if getattr(_MODULES[name.split(".")[0]], name.split(".", 1)[1], None) is not bound]
    own = _own_names()
    found += [name for name, value in _OWN.items() if own.get(name, _OWN) is not value]
    found += [name for name in own if name not in _OWN]
    return found


def _own_names() -> dict:
    """{"grading.recorder.NAME" or "grading.recorder.Recorder.NAME": value} but the names set after import."""
    own = {**{f"grading.recorder.{k}": v for k, v in _GLOBALS.items() if not k.startswith("__")},
           **{f"grading.recorder.Recorder.{k}": v for k, v in _RECORDER.items()}}
    return {name: value for name, value in own.items() if not name.endswith(_LAZY)}


_LAZY = ("._PRELOADED",)  # this module's names that are set after its import
_PRELOADED: frozenset = frozenset()


def preloaded() -> None:
    """Called where grading/runner.py imports this module in the kernel before the notebook's first cell:
    the grading modules there now are the grader's doing, not the notebook's (grading/serve.IMPORTED_BEFORE);
    the audit hook watches the notebook from its first cell on (`watch_audit_events`)."""
    global _PRELOADED
    _PRELOADED = frozenset(name for name in sys.modules if name.startswith("grading."))
    watch_audit_events()


_GLOBALS, _RECORDER = globals(), Recorder.__dict__
trust(sys.modules[__name__])
_OWN.update(_own_names())
