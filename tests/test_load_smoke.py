"""scripts/load.py, short: `kb serve --workers 2` (gunicorn) under two client processes for about 8 s
while a rebuild publishes a new document; zero errors, and the new document becomes searchable.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

from conftest import CORPUS, ROOT


def test_load_smoke_zero_errors(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    env["KB_DENSE"] = "0"  # lexical only: the bundled encoder would take most of the time loading
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "load.py"), "--workers", "2", "--clients", "2", "--seconds", "8",
         "--corpus", str(CORPUS)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    assert "RESULT: PASS (0 errors)" in done.stdout, report
    total = re.search(r"^all\s+(\d+)\s+(\d+)\s", done.stdout, re.M)
    assert total and int(total.group(1)) > 50 and int(total.group(2)) == 0, report
    assert "new document searchable: yes" in done.stdout, report
    assert "server log: 0 traceback(s)" in done.stdout, report
