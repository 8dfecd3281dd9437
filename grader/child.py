"""One notebook run by papermill: the program each grading child process runs (``python child.py ARGS``).

``ARGS`` is one JSON object: ``input``, ``output``, ``parameters``, ``kernel``, ``cwd``,
``progress``, ``output_cap``. It imports papermill only (no grader, no labutils), so the sandbox needs
just this file. Errors are allowed (nbclient's ``allow_errors``): a cell that raises does
not stop the cells after it, so one wrong exercise leaves the rest of the notebook to run
and be scored; the notebook still counts as failed: a cell error exits quietly with
:data:`CELL_ERROR_EXIT` once every cell ran, the output notebook saying where and why; any other failure (dead kernel, unreadable notebook)
leaves its traceback in the log. The kernel talks over Unix sockets in its private
runtime folder, not over localhost TCP.

Outputs are bounded where they arise: once a notebook's outputs hold ``output_cap`` bytes, the
kernel's further outputs are dropped (one note says so), so that a notebook that prints without
end still passes or fails on its own cells and its executed notebook always fits the grader's
reserved space.
"""
import json
import os
import sys

CELL_ERROR_EXIT = 3
DROPPED = "[the grader dropped this notebook's further output: over {cap:,} bytes]\n"


def cap_outputs(client_class, cap: int) -> None:
    """Make ``client_class`` (nbclient's, as papermill subclasses it) keep at most ``cap`` bytes of
    outputs in a notebook: past that, one note, then nothing more."""
    original = client_class.output

    def output(self, outs, msg, display_id, cell_index):
        used = getattr(self, "_lab5_output_bytes", 0)
        if used > cap:
            return None
        self._lab5_output_bytes = used + len(json.dumps(msg.get("content", {})))
        if self._lab5_output_bytes <= cap:
            return original(self, outs, msg, display_id, cell_index)
        note = {"header": {**msg["header"], "msg_type": "stream"}, "msg_type": "stream",
                "parent_header": msg["parent_header"],
                "content": {"name": "stderr", "text": DROPPED.format(cap=cap)}}
        return original(self, outs, note, None, cell_index)

    client_class.output = output


def main(arguments: str) -> int:
    import papermill
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.exceptions import PapermillExecutionError
    from traitlets.config import Config

    a = json.loads(arguments)
    cap_outputs(PapermillNotebookClient, a["output_cap"])
    transport = {"KernelManager": {"transport": "ipc" if os.name == "posix" else "tcp"}}
    try:
        papermill.execute_notebook(a["input"], a["output"], parameters=a["parameters"], kernel_name=a["kernel"],
                                   cwd=a["cwd"], progress_bar=a["progress"], config=Config(transport), allow_errors=True)
    except PapermillExecutionError:
        return CELL_ERROR_EXIT
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
