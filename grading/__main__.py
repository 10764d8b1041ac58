"""python -m grading autograde | check | grade ... (see docs/INSTRUCTOR_GUIDE.md)."""

import sys

USAGE = """usage: python -m grading COMMAND [options]
  autograde   grade every submission under submitted/ (make autograde)
  check       grade your own notebooks in lessons/ on copies (make check)
  grade       grade one submission: one notebook in, one graded notebook out (a batch or Kubernetes job)"""


def main() -> int:
    command, args = (sys.argv[1], sys.argv[2:]) if len(sys.argv) > 1 else ("", [])
    if command == "autograde":
        from grading.autograde import main as run
    elif command == "check":
        from grading.check import main as run
    elif command == "grade":
        from grading.worker import main as run
    else:
        print(USAGE, file=sys.stderr)
        return 2
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
