"""How `python -m pipeline` ends: exit handlers run and buffered output is written, the interpreter's teardown is
skipped, and a thread still working is waited for. Each case runs in a child Python with an explicit environment."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path


def _child(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(code), encoding="utf-8")
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})


TEARDOWN_WITNESS = """
    import os

    class Witness:  # held by a module global: the interpreter's teardown deletes it, and it says so
        def __del__(self):
            os.write(2, b"teardown ran\\n")

    witness = Witness()
"""


def test_exit_handlers_and_buffered_output_survive_and_the_code_is_kept(tmp_path):
    result = _child(TEARDOWN_WITNESS + """
    import atexit, sys
    from pipeline.base.quick_exit import quick_exit

    atexit.register(lambda: print("exit handler ran"))
    sys.stdout.write("buffered, no newline; ")  # stdout is a pipe here, so this waits in the buffer
    quick_exit(3)
    print("never printed")
    """, tmp_path)
    assert result.returncode == 3
    assert result.stdout == "buffered, no newline; exit handler ran\n"
    assert "teardown ran" not in result.stderr  # the point: the interpreter's teardown is skipped


def test_the_teardown_witness_speaks_under_an_ordinary_exit(tmp_path):
    """The witness above is a fair one: without quick_exit, the same script's teardown deletes it."""
    result = _child(TEARDOWN_WITNESS + """
    import sys
    sys.exit(3)
    """, tmp_path)
    assert result.returncode == 3
    assert "teardown ran" in result.stderr


def test_a_thread_still_working_is_waited_for(tmp_path):
    result = _child("""
    import threading, time
    from pathlib import Path
    from pipeline.base.quick_exit import quick_exit

    def work():
        time.sleep(0.5)
        Path("written by the thread").write_text("done")

    threading.Thread(target=work).start()
    quick_exit(0)
    """, tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "written by the thread").read_text() == "done"
