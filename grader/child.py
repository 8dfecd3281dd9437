"""One notebook run by papermill: the program each grading child process runs (``python child.py ARGS``).

``ARGS`` is one JSON object: ``input``, ``output``, ``parameters``, ``kernel``, ``cwd``,
``progress``. It imports papermill only (no grader, no labutils), so the sandbox needs
just this file. Errors are allowed (nbclient's ``allow_errors``): a cell that raises does
not stop the cells after it, so one wrong exercise leaves the rest of the notebook to run
and be scored; the notebook still counts as failed: a cell error exits quietly with
:data:`CELL_ERROR_EXIT` once every cell ran, the output notebook saying where and why; any other failure (dead kernel, unreadable notebook)
leaves its traceback in the log. The kernel talks over Unix sockets in its private
runtime folder, not over localhost TCP.
"""
import json
import os
import sys

CELL_ERROR_EXIT = 3


def main(arguments: str) -> int:
    import papermill
    from papermill.exceptions import PapermillExecutionError
    from traitlets.config import Config

    a = json.loads(arguments)
    transport = {"KernelManager": {"transport": "ipc" if os.name == "posix" else "tcp"}}
    try:
        papermill.execute_notebook(a["input"], a["output"], parameters=a["parameters"], kernel_name=a["kernel"],
                                   cwd=a["cwd"], progress_bar=a["progress"], config=Config(transport), allow_errors=True)
    except PapermillExecutionError:
        return CELL_ERROR_EXIT
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
