"""Hostile and malformed input to the `kb` command, the JSON API, the pages and the upload forms.

Every case gets a clear 4xx (JSON `{"error": {code, message}}` under /api) or exit status 2 with one
error line, never a 500 or a traceback, and the corpus and index folders are byte-for-byte unchanged
afterwards. Odd but legal questions (emoji, HTML, SQL- or FAISS-looking text) are answered normally.
The CLI runs as real subprocesses for a representative subset and through click's CliRunner for the rest.

Documents written here are MADE UP (虚构示例).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from kb.cli import cli
from kb.config import ENV_VARS, Settings
from kb.service import KnowledgeBase

from browser_util import site_app
from conftest import CORPUS, ROOT

SEED_ID = "lianyungang-zjtx-plan-interpretation"
LONG_QUERY = ("专精特新小巨人企业" * 11112)[:100_000]
GOOD_DOC = """---
title: 虚构示例坏输入测试办法
issuer: 虚构示例机关
level: municipal
published: 2024-03-01
status: effective
---

第一条 本办法为虚构示例，仅用于软件测试。
"""


def tree_digest(*folders: Path) -> dict[str, str]:
    """Return sha256 of every file and a mark for every folder (hidden ones too) under the folders,
    keyed by folder number and path."""
    out = {}
    for n, folder in enumerate(folders):
        for path in sorted(Path(folder).rglob("*")):
            key = f"{n}:{path.relative_to(folder)}"
            if path.is_dir():
                out[key] = "folder"
            elif path.is_file():
                out[key] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                out[key] = "special"
    return out


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    env.update({"KB_DENSE": "0", "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))})
    env.update(extra)
    return env


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if re.match(r"^(kb: error:|error:|Error:)", line)]


def _assert_clean_refusal(code: int, stdout: str, stderr: str, what) -> None:
    assert code == 2, (what, code, stdout[-300:], stderr[-600:])
    assert "Traceback" not in stderr + stdout, (what, stderr[-600:])
    assert len(_error_lines(stderr)) == 1, (what, stderr)


# ---------------------------------------------------------------- a small index the CLI may not harm


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> dict[str, Path]:
    """A copy of corpus/ with its index (lexical only: the CLI cases do not need the encoder)."""
    root = tmp_path_factory.mktemp("bad-input")
    corpus = root / "corpus"
    shutil.copytree(CORPUS, corpus)
    index = root / "index"
    KnowledgeBase(Settings(corpus_dirs=(corpus,), index_dir=index, dense=False)).build()
    files = _hostile_files(root / "files")
    return {"root": root, "corpus": corpus, "index": index, **files}


def _docx_bytes() -> bytes:
    import docx

    document = docx.Document()
    document.add_paragraph("虚构示例截断测试办法", style="Title")
    for i in range(40):
        document.add_paragraph(f"第{i + 1}条 本条为虚构示例，仅用于软件测试。" * 3)
    buf = io.BytesIO()
    document.save(buf)
    return buf.getvalue()


def _pdf_bytes() -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    for _ in range(3):
        writer.add_blank_page(width=595, height=842)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def _hostile_files(folder: Path) -> dict[str, Path]:
    """Raw files a user might offer to `kb add` (or leave in a corpus folder)."""
    folder.mkdir()
    rng = random.Random(7)
    docx_data, pdf_data = _docx_bytes(), _pdf_bytes()
    contents = {
        "empty.txt": b"",
        "blank.txt": b" \n\t\n\r\n",
        "random.txt": bytes(rng.randrange(256) for _ in range(4096)),
        "png-named.txt": b"\x89PNG\r\n\x1a\n" + bytes(rng.randrange(256) for _ in range(512)),
        "nul.txt": "虚构示例\x00\x00\x00第一条".encode("utf-8") * 50,
        "truncated.docx": docx_data[: len(docx_data) // 2],
        "truncated.pdf": pdf_data[: len(pdf_data) // 2],
        "not-a.pdf": b"%PDF-1.7\n" + b"\xff" * 300,
        "empty.docx": b"",
        "zip-not-docx.docx": _zip_bytes({"hello.txt": b"hi"}),
        "program.exe": b"MZ\x90\x00" * 100,
        "no-extension": b"hello",
        "unclosed.md": "---\ntitle: 虚构示例\nissuer: x\n".encode("utf-8"),
    }
    paths = {}
    for name, data in contents.items():
        (folder / name).write_bytes(data)
        paths[name] = folder / name
    with open(folder / "huge.txt", "wb") as handle:  # sparse: costs no disk and no time
        handle.truncate(200 * 2**20)
    paths["huge.txt"] = folder / "huge.txt"
    os.mkfifo(folder / "fifo.txt")
    paths["fifo.txt"] = folder / "fifo.txt"
    paths["folder.txt"] = folder / "folder.txt"
    (folder / "folder.txt").mkdir()
    return {"files": folder, **{f"file:{k}": v for k, v in paths.items()}}


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


# ---------------------------------------------------------------- CLI: real subprocesses

# Runs the command as its child and writes "<exit code> <peak RSS in KB>" to a file. The peak is measured
# from this small process because a child forked straight from pytest inherits pytest's high-water mark.
_MEASURE = ("import os, subprocess, sys; p = subprocess.Popen(sys.argv[2:]); _, s, u = os.wait4(p.pid, 0); "
            "open(sys.argv[1], 'w').write(f'{os.waitstatus_to_exitcode(s)} {u.ru_maxrss}')")


class _Measured:
    """`python -m kb.cli ARGS` started at once; result() waits and returns (exit code, stdout, stderr, peak KB)."""

    def __init__(self, args, folder: Path) -> None:
        folder.mkdir()
        self.folder = folder
        self.out, self.err = (folder / "out").open("w+b"), (folder / "err").open("w+b")
        command = [sys.executable, "-c", _MEASURE, str(folder / "status"), sys.executable, "-m", "kb.cli"]
        self.proc = subprocess.Popen([*map(os.fsencode, command), *map(os.fsencode, args)], stdout=self.out,
                                     stderr=self.err, stdin=subprocess.DEVNULL, env=_clean_env(), cwd=folder,
                                     start_new_session=True)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)

    def result(self) -> tuple[int, str, str, int]:
        self.proc.wait()
        status = (self.folder / "status").read_text().split() if (self.folder / "status").exists() else ["-9", "0"]
        self.out.seek(0), self.err.seek(0)
        return (int(status[0]), self.out.read().decode("utf-8", "replace"),
                self.err.read().decode("utf-8", "replace"), int(status[1]))



def test_cli_subprocesses_refuse_bad_input_cleanly(small, tmp_path):
    """A representative subset as real `python -m kb.cli` processes, run side by side."""
    bad_corpus = tmp_path / "bad-corpus"
    shutil.copytree(small["corpus"], bad_corpus)
    (bad_corpus / "broken.md").write_text("---\ntitle 虚构示例没有冒号\n---\n正文。\n", encoding="utf-8")
    index = ["--index", str(small["index"])]
    cases = {
        "empty question": ["ask", "", *index],
        "whitespace question": ["ask", " \t ", *index],
        "100,000 characters": ["ask", "x" * 100_000, *index],
        "invalid UTF-8 / lone surrogate bytes": [b"ask", b"\xed\xa0\x80\xff", *map(os.fsencode, index)],
        "k of 10^9": ["ask", "专精特新", "-k", str(10**9), *index],
        "k of abc": ["ask", "专精特新", "-k", "abc", *index],
        "no index there": ["ask", "专精特新", "--index", str(tmp_path / "nowhere")],
        "malformed front matter in corpus": ["build", "--corpus", str(bad_corpus), *index],
        "kb add 200 MB file": ["add", str(small["file:huge.txt"]), "--corpus", str(small["corpus"])],
        "kb add /dev/zero": ["add", "/dev/zero", "--corpus", str(small["corpus"])],
        "kb add a FIFO": ["add", str(small["file:fifo.txt"]), "--corpus", str(small["corpus"])],
        "kb add empty file (baseline)": ["add", str(small["file:empty.txt"]), "--corpus", str(small["corpus"])],
    }
    before = tree_digest(small["corpus"], small["index"])
    runs = {what: _Measured(args, tmp_path / f"run{i}") for i, (what, args) in enumerate(cases.items())}
    # a watchdog: a case that hangs (a FIFO or /dev/zero read to the end) is killed, and fails
    watchdog = threading.Timer(120, lambda: [run.kill() for run in runs.values()])
    watchdog.start()
    try:
        results = {what: run.result() for what, run in runs.items()}
    finally:
        watchdog.cancel()
    for what, (code, stdout, stderr, _) in results.items():
        _assert_clean_refusal(code, stdout, stderr, what)
    assert "too long" in results["100,000 characters"][2]
    assert "broken.md" in results["malformed front matter in corpus"][2]
    huge = results["kb add 200 MB file"]
    assert "over the limit" in huge[2]
    # the size is checked before reading: the process grew no more than a small file's did
    assert huge[3] - results["kb add empty file (baseline)"][3] < 24 * 1024, "kb add read the 200 MB file"
    assert tree_digest(small["corpus"], small["index"]) == before


# ---------------------------------------------------------------- CLI: CliRunner for the rest


def _invoke(args: list[str], cwd: Path):
    env = {name: None for name in ENV_VARS}
    env["KB_DENSE"] = "0"
    old = Path.cwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(cli, args, env=env, catch_exceptions=True)
    finally:
        os.chdir(old)


def _assert_runner_refusal(result, what) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        what, repr(result.exception), result.stderr[-500:])
    _assert_clean_refusal(result.exit_code, result.stdout, result.stderr, what)


ASK_CASES = {
    "empty": [""],
    "spaces": ["   "],
    "tabs and newlines": ["\t\n\r"],
    "NUL": ["\x00"],
    "control characters": ["\x01\x02\x1b\x7f"],
    "lone surrogates": ["\ud800\udfff"],
    "501 characters": ["专" * 501],
    "100,000 characters": [LONG_QUERY],
    "k 0": ["专精特新", "-k", "0"],
    "k -1": ["专精特新", "-k", "-1"],
    "k 10^9": ["专精特新", "-k", str(10**9)],
    "k abc": ["专精特新", "-k", "abc"],
    "k 1.5": ["专精特新", "-k", "1.5"],
    "k empty": ["专精特新", "-k", ""],
    "k NUL": ["专精特新", "-k", "\x00"],
    "mode": ["专精特新", "--mode", "IndexFlatIP"],
    "year": ["专精特新", "--year-from", "二〇二三"],
}


@pytest.mark.parametrize("args", list(ASK_CASES.values()), ids=list(ASK_CASES))
def test_ask_refuses_bad_questions_and_options(small, args):
    before = tree_digest(small["corpus"], small["index"])
    result = _invoke(["ask", *args, "--index", str(small["index"])], small["root"])
    _assert_runner_refusal(result, args)
    assert tree_digest(small["corpus"], small["index"]) == before


ODD_QUESTIONS = ["😀🎉", "<script>alert(1)</script>", "' OR 1=1 --", '"; DROP TABLE clauses; --', "IndexFlatIP",
                 "*", "%", "%s%n%x", "\x00专精特新\x00", "专\ud800精特新", "\u202e专精特新\u200b", "《》", '"',
                 "${jndi:x}", "../../etc/passwd", "专" * 500]


@pytest.mark.parametrize("question", ODD_QUESTIONS, ids=[f"odd{i}" for i in range(len(ODD_QUESTIONS))])
def test_ask_answers_odd_but_legal_questions(small, question):
    """Text that looks like markup, SQL or an index name is just a question: JSON answer, exit 0."""
    before = tree_digest(small["corpus"], small["index"])
    result = _invoke(["ask", question, "--json", "--index", str(small["index"])], small["root"])
    assert result.exit_code == 0, (result.stderr, repr(result.exception))
    data = json.loads(result.stdout)
    assert isinstance(data["results"], list) and "\x00" not in data["query"]
    assert tree_digest(small["corpus"], small["index"]) == before


BAD_CORPUS_FILES = {
    "empty.md": b"",
    "binary.md": bytes(random.Random(3).randrange(256) for _ in range(2048)),
    "nul.md": b"---\ntitle: \xe8\x99\x9a\x00\n---\n\x00\x00",
    "no-front-matter.md": "第一条 虚构示例。".encode("utf-8"),
    "unclosed.md": "---\ntitle: 虚构示例\nissuer: x\n".encode("utf-8"),
    "no-colon.md": "---\ntitle 虚构示例\n---\n正文".encode("utf-8"),
    "bad-key.md": "---\ntitle: 虚构示例\n<script>: x\n---\n正文".encode("utf-8"),
    "no-title.md": "---\nissuer: 虚构示例机关\n---\n正文".encode("utf-8"),
    "empty-title.md": "---\ntitle:   \n---\n正文".encode("utf-8"),
    "truncated-utf8.md": "---\ntitle: 虚构示例\n---\n正文".encode("utf-8")[:-1],
    "utf16.md": "---\ntitle: 虚构示例\n---\n正文".encode("utf-16"),
    "gbk.md": "---\ntitle: 虚构示例\n---\n正文".encode("gbk"),
}


@pytest.mark.parametrize("name", list(BAD_CORPUS_FILES))
def test_build_refuses_a_broken_corpus_file(small, tmp_path, name):
    corpus = tmp_path / "corpus"
    shutil.copytree(small["corpus"], corpus)
    (corpus / name).write_bytes(BAD_CORPUS_FILES[name])
    before = tree_digest(corpus, small["index"])
    result = _invoke(["build", "--corpus", str(corpus), "--index", str(small["index"])], small["root"])
    _assert_runner_refusal(result, name)
    assert name in result.stderr
    assert tree_digest(corpus, small["index"]) == before


ADD_CASES = ["empty.txt", "blank.txt", "random.txt", "png-named.txt", "nul.txt", "truncated.docx", "truncated.pdf",
             "not-a.pdf", "empty.docx", "zip-not-docx.docx", "program.exe", "no-extension", "unclosed.md",
             "huge.txt", "folder.txt"]


@pytest.mark.parametrize("name", ADD_CASES)
def test_add_refuses_bad_files(small, name):
    before = tree_digest(small["corpus"], small["index"])
    result = _invoke(["add", str(small[f"file:{name}"]), "--corpus", str(small["corpus"])], small["root"])
    _assert_runner_refusal(result, name)
    assert tree_digest(small["corpus"], small["index"]) == before


def test_add_refuses_a_batch_with_one_bad_file_and_writes_nothing(small, tmp_path):
    good = tmp_path / "good.md"
    good.write_text(GOOD_DOC, encoding="utf-8")
    before = tree_digest(small["corpus"], small["index"])
    result = _invoke(["add", str(good), str(small["file:truncated.docx"]), "--corpus", str(small["corpus"])],
                     small["root"])
    _assert_runner_refusal(result, "batch")
    assert tree_digest(small["corpus"], small["index"]) == before


def test_add_refuses_a_docx_zip_bomb_without_inflating_it(small, tmp_path):
    source = zipfile.ZipFile(io.BytesIO(_docx_bytes()))
    members = {}
    for item in source.infolist():
        data = source.read(item.filename)
        if item.filename == "word/document.xml":
            data = data.replace(b"<w:body>", b"<w:body><!--" + b" " * (150 * 2**20) + b"-->", 1)
        members[item.filename] = data
    (tmp_path / "bomb.docx").write_bytes(_zip_bytes(members))
    baseline = _Measured(["add", str(small["file:empty.txt"]), "--corpus", str(small["corpus"])], tmp_path / "a")
    bomb = _Measured(["add", str(tmp_path / "bomb.docx"), "--corpus", str(small["corpus"])], tmp_path / "b")
    code, stdout, stderr, rss = bomb.result()
    _assert_clean_refusal(code, stdout, stderr, "zip bomb")
    grown = rss - baseline.result()[3]
    size = (tmp_path / "bomb.docx").stat().st_size
    assert grown < 64 * 1024, f"kb add grew by {grown // 1024} MB on a {size} byte docx"


@pytest.mark.parametrize("case", ["index is a file (build)", "index is a file (ask)", "damaged build (ask)",
                                  "cut-short slots (ask)"])
def test_unusable_index_folder_is_a_clean_error(small, tmp_path, case):
    target = tmp_path / "index"
    if case.startswith("index is a file"):
        target.write_text("not a folder")
    else:
        shutil.copytree(small["index"], target)
        build = (target / "builds" / (target / "CURRENT").read_text().strip())
        if case.startswith("damaged"):
            shutil.rmtree(build / "bm25-words")
        else:  # answer slots of fewer chunks than the build has
            np.save(build / "slots.npy", np.load(build / "slots.npy")[:-1])
    args = (["build", "--corpus", str(small["corpus"]), "--index", str(target)] if case.endswith("(build)")
            else ["ask", "专精特新", "--index", str(target)])
    _assert_runner_refusal(_invoke(args, small["root"]), case)


# ---------------------------------------------------------------- JSON API

API_REFUSED = {
    "no q": ("", "missing_query"),
    "empty q": ("q=", "bad_query"),
    "spaces": ("q=%20%20%20", "bad_query"),
    "tabs/newlines": ("q=%09%0A%0D", "bad_query"),
    "NUL": ("q=%00", "bad_query"),
    "control chars": ("q=%01%02%1B%7F", "bad_query"),
    "501 chars": ("q=" + "%E4%B8%93" * 501, "bad_query"),
    "100,000 chars": ("q=" + "a" * 100_000, "bad_query"),
    "k 0": ("q=x&k=0", "bad_query"),
    "k -1": ("q=x&k=-1", "bad_query"),
    "k 10^9": ("q=x&k=1000000000", "bad_query"),
    "k abc": ("q=x&k=abc", "bad_query"),
    "k empty": ("q=x&k=", "bad_query"),
    "k 1e3": ("q=x&k=1e3", "bad_query"),
    "k invalid UTF-8": ("q=x&k=%FF", "bad_query"),
    "mode": ("q=x&mode=IndexFlatIP", "bad_query"),
    "year_from": ("q=x&year_from=%ED%A0%80", "bad_query"),
}
API_ANSWERED = {
    "emoji": "q=%F0%9F%98%80%F0%9F%8E%89",
    "lone surrogate %ED%A0%80": "q=%ED%A0%80",
    "invalid UTF-8 %FF": "q=%FF%FE",
    "overlong UTF-8": "q=%C0%AF%E4%B8%93%E7%B2%BE",
    "html": "q=%3Cscript%3Ealert(1)%3C%2Fscript%3E%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E",
    "sql": "q=%27%20OR%201%3D1%20--",
    "sql drop": "q=%22%3B%20DROP%20TABLE%20clauses%3B%20--",
    "faiss": "q=IndexFlatIP",
    "star": "q=*",
    "percent": "q=%25",
    "NUL inside": "q=%E4%B8%93%00%E7%B2%BE",
    "zero-width and RTL": "q=%E2%80%8B%E2%80%AE%E4%B8%93%E7%B2%BE%E7%89%B9%E6%96%B0",
    "quote only": "q=%22",
    "quoted html": "q=%22%3Cb%3E%22",
    "title brackets": "q=%E3%80%8A%3Cscript%3E%E3%80%8B",
    "500 chars": "q=" + "%E4%B8%93" * 500,
    "k 100": "q=%E4%B8%93%E7%B2%BE%E7%89%B9%E6%96%B0&k=100",
    "unknown filters": "q=x&level=%FF&status=%00&region=%ED%A0%80&doc_type=*",
}


@pytest.fixture()
def web_unchanged(built_index):
    """Asserts the corpus and index behind `client` are byte-for-byte the same after the test."""
    folders = [*built_index.settings.corpus_dirs, built_index.settings.index_dir]
    before = tree_digest(*folders)
    yield
    assert tree_digest(*folders) == before


@pytest.mark.parametrize("query,code", list(API_REFUSED.values()), ids=list(API_REFUSED))
def test_api_refuses_bad_queries_with_json_400(client, web_unchanged, query, code):
    r = client.get("/api/search?" + query)
    assert r.status_code == 400, r.get_data(as_text=True)[:300]
    error = r.get_json()["error"]
    assert error["code"] == code and error["message"] and len(error["message"]) < 300


@pytest.mark.parametrize("query", list(API_ANSWERED.values()), ids=list(API_ANSWERED))
def test_api_answers_odd_but_legal_queries(client, web_unchanged, query):
    r = client.get("/api/search?" + query)
    assert r.status_code == 200, r.get_data(as_text=True)[:300]
    data = r.get_json()
    assert isinstance(data["query"], str) and isinstance(data["results"], list)
    for hit in data["results"]:
        assert hit["url"] == f"/doc/{hit['doc_id']}#{hit['clause_id']}"


@pytest.mark.parametrize("method,path,status", [
    ("POST", "/api/search?q=x", 405), ("PUT", "/api/search?q=x", 405), ("DELETE", "/api/search", 405),
    ("GET", "/api/../api/search", 404), ("GET", "/api/nope", 404), ("GET", "/api/search/..%2F..%2Fetc%2Fpasswd", 404),
])
def test_api_other_errors_are_json(client, web_unchanged, method, path, status):
    r = client.open(path, method=method)
    assert r.status_code == status
    assert r.get_json()["error"]["code"]


# ---------------------------------------------------------------- pages

TRAVERSAL_IDS = ["../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
                 "..%252F..%252Fetc%252Fpasswd", "%252e%252e%252fetc%252fpasswd", "....//....//etc/passwd",
                 "..%5C..%5Cetc%5Cpasswd", "..", "%2e%2e", ".", f"{SEED_ID}%00", f"{SEED_ID}%2F..%2F..%2Fx",
                 f"{SEED_ID.upper()}", "no-such-document", "%FF", "%ED%A0%80", "a" * 5000, "%00", "-", "%20"]


@pytest.mark.parametrize("doc_id", TRAVERSAL_IDS, ids=[f"id{i}" for i in range(len(TRAVERSAL_IDS))])
def test_unknown_and_traversal_document_ids_are_404(client, web_unchanged, doc_id):
    r = client.get("/doc/" + doc_id)
    assert r.status_code == 404
    body = r.get_data(as_text=True)
    assert "root:" not in body and "未找到" in body


PAGE_REFUSED = ["/search?q=", "/search?q=%20", "/search?q=%00%01", "/search?q=" + "a" * 100_000,
                "/search?q=x&k=0", "/search?q=x&k=-1", "/search?q=x&k=1000000000", "/search?q=x&k=abc",
                "/search?q=x&mode=%FF", "/search?q=x&year_to=abc", "/docs?year_from=abc"]
PAGE_ANSWERED = ["/search?q=%ED%A0%80", "/search?q=%FF", "/search?q=%F0%9F%98%80", "/search?q=*", "/search?q=%25",
                 "/search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E", "/search?q=%27%20OR%201%3D1%20--",
                 "/search?q=%22%3B%20DROP%20TABLE%20clauses%3B%20--", "/search?q=IndexFlatIP",
                 "/search?q=%22%22", "/search?q=%22", "/search?q=%E7%AC%AC%E4%B8%89%E6%9D%A1",
                 f"/doc/{SEED_ID}?hl=%FF%3Cscript%3E", f"/doc/{SEED_ID}?hl=" + "x" * 10000,
                 "/docs?level=%FF&status=%00&sort=%ED%A0%80&order=%00", "/docs?sort=../../etc", "/references?x=%FF",
                 "/?q=%00"]


@pytest.mark.parametrize("path", PAGE_REFUSED, ids=[f"refused{i}" for i in range(len(PAGE_REFUSED))])
def test_pages_refuse_bad_input_with_400_and_a_message(client, web_unchanged, path):
    r = client.get(path)
    assert r.status_code == 400
    html = r.get_data(as_text=True)
    assert 'class="error"' in html or "筛选条件有误" in html
    assert "Traceback" not in html


@pytest.mark.parametrize("path", PAGE_ANSWERED, ids=[f"answered{i}" for i in range(len(PAGE_ANSWERED))])
def test_pages_answer_odd_but_legal_input(client, web_unchanged, path):
    r = client.get(path)
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert "<script>alert" not in html and "Traceback" not in html


@pytest.mark.parametrize("path", ["/static/../kb/cli.py", "/static/..%2f..%2fkb%2fcli.py",
                                  "/static/%2e%2e/%2e%2e/setup.cfg", "/static/style.css%00.py", "/%FF", "/%ED%A0%80"])
def test_static_traversal_is_404(client, web_unchanged, path):
    r = client.get(path)
    assert r.status_code == 404 and b"install_requires" not in r.data and b"import click" not in r.data


# ---------------------------------------------------------------- admin upload (when the admin pages exist)

ADMIN_TOKEN = "bad-input-admin-token-2f9c"


class ZeroStream(io.RawIOBase):
    """A request body of `size` bytes (a multipart head, then zeros) produced on demand; counts what is read."""

    def __init__(self, size: int, head: bytes = b"") -> None:
        self.size, self.head, self.pos, self.bytes_read = size, head, 0, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:  # the test client asks where the stream starts
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = {0: offset, 1: self.pos + offset, 2: self.size + offset}[whence]
        return self.pos

    def readinto(self, buffer) -> int:
        n = max(0, min(len(buffer), self.size - self.pos))
        chunk = self.head[self.pos:self.pos + n]
        buffer[:n] = chunk + b"\0" * (n - len(chunk))
        self.pos += n
        self.bytes_read += n
        return n


@pytest.fixture()
def admin(tmp_path, small):
    corpus = tmp_path / "corpus"
    shutil.copytree(small["corpus"], corpus)
    index = tmp_path / "index"
    shutil.copytree(small["index"], index)
    settings = Settings(corpus_dirs=(corpus,), index_dir=index, dense=False, admin_token=ADMIN_TOKEN)
    app = site_app(settings, KnowledgeBase(settings), KB_ADMIN_PENDING_DIR=str(tmp_path / "pending"))
    client = app.test_client()
    page = client.get("/admin/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert client.post("/admin/login", data={"csrf_token": csrf, "token": ADMIN_TOKEN}).status_code == 303
    page = client.get("/admin/upload").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    before = tree_digest(corpus, index)
    yield {"app": app, "client": client, "csrf": csrf, "corpus": corpus, "index": index}
    assert tree_digest(corpus, index) == before


def test_admin_refuses_a_200mb_upload_with_413_before_reading_it(admin):
    size = 200 * 2**20
    head = (f'--BOUNDARY\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n{admin["csrf"]}\r\n'
            '--BOUNDARY\r\nContent-Disposition: form-data; name="files"; filename="huge.txt"\r\n'
            "Content-Type: text/plain\r\n\r\n").encode()
    body = ZeroStream(size, head)
    r = admin["client"].post("/admin/upload", input_stream=body, content_length=size,
                             content_type="multipart/form-data; boundary=BOUNDARY")
    assert r.status_code == 413
    assert "上限" in r.get_data(as_text=True)
    assert body.bytes_read < 2**20, f"the server read {body.bytes_read} bytes of a body it refuses"
    r = admin["client"].post("/admin/upload", input_stream=ZeroStream(size, head), content_length=size,
                             content_type="multipart/form-data; boundary=BOUNDARY",
                             headers={"Accept": "application/json"})
    assert r.status_code == 413 and r.get_json()["error"]["message"]


@pytest.mark.parametrize("name", ["empty.txt", "blank.txt", "random.txt", "png-named.txt", "nul.txt", "truncated.docx",
                                  "truncated.pdf", "not-a.pdf", "zip-not-docx.docx", "program.exe", "no-extension",
                                  "unclosed.md"])
def test_admin_upload_refuses_bad_files(admin, small, name):
    data = small[f"file:{name}"].read_bytes()
    r = admin["client"].post("/admin/upload", data={"csrf_token": admin["csrf"], "files": [(io.BytesIO(data), name)]},
                             content_type="multipart/form-data")
    assert r.status_code == 400, r.get_data(as_text=True)[:500]
    assert 'role="alert"' in r.get_data(as_text=True)


def test_admin_upload_over_the_per_file_limit_is_refused(admin):
    admin["app"].config["KB_ADMIN_MAX_FILE_BYTES"] = 64 * 1024
    data = GOOD_DOC.encode("utf-8") + "第二条 虚构示例。\n".encode("utf-8") * 8000
    r = admin["client"].post("/admin/upload",
                             data={"csrf_token": admin["csrf"], "files": [(io.BytesIO(data), "big.md")]},
                             content_type="multipart/form-data", headers={"Accept": "application/json"})
    assert r.status_code == 400 and "64 KB" in r.get_json()["error"]["message"]


def test_admin_upload_with_a_traversal_file_name_writes_nothing(admin):
    data = GOOD_DOC.encode("utf-8")
    for name in ("../../../../tmp/kb-evil.md", "..\\..\\kb-evil.md", "/etc/passwd.md"):
        r = admin["client"].post("/admin/upload",
                                 data={"csrf_token": admin["csrf"], "files": [(io.BytesIO(data), name)]},
                                 content_type="multipart/form-data")
        assert r.status_code in (303, 400), r.status_code  # a preview (nothing written yet) or a refusal
    assert not Path("/tmp/kb-evil.md").exists()


# ---------------------------------------------------------------- eligibility API (when it exists)

ELIGIBILITY_CASES = {
    "empty body": ("POST", "/api/eligibility", b""),
    "not JSON": ("POST", "/api/eligibility", b"<xml/>"),
    "invalid UTF-8": ("POST", "/api/eligibility", b'{"region": "\xed\xa0\x80\xff"}'),
    "NaN": ("POST", "/api/eligibility", b'{"employees": NaN}'),
    "1e999": ("POST", "/api/eligibility", b'{"employees": 1e999}'),
    "negative": ("POST", "/api/eligibility", b'{"employees": -1}'),
    "wrong type": ("POST", "/api/eligibility", b'{"employees": "many"}'),
    "a list": ("POST", "/api/eligibility", b"[]"),
    "unknown need": ("POST", "/api/eligibility", b'{"needs": ["\\u0000<script>"]}'),
    "too large": ("POST", "/api/eligibility", b'{"region": "' + b"x" * 100_000 + b'"}'),
    "deep nesting": ("POST", "/api/eligibility", b"[" * 50_000),
    "escaped lone surrogate": ("POST", "/api/eligibility", b'{"region": "\\ud800"}'),
    "infinite number (form)": ("GET", "/eligibility/result?employees=inf", b""),
    "NaN (form)": ("GET", "/eligibility/result?employees=nan", b""),
    "huge number (form)": ("GET", "/eligibility/result?revenue_wan_yuan=1e999", b""),
    "negative (form)": ("GET", "/eligibility/result?employees=-5", b""),
    "text in number (form)": ("GET", "/eligibility/result?employees=%ED%A0%80", b""),
}


@pytest.mark.parametrize("case", [
    name for name in ELIGIBILITY_CASES])
def test_eligibility_refuses_bad_profiles(small, case):
    settings = Settings(corpus_dirs=(small["corpus"],), index_dir=small["index"], dense=False)
    app = site_app(settings, KnowledgeBase(settings), TESTING=False)  # errors become responses, as served
    method, path, body = ELIGIBILITY_CASES[case]
    before = tree_digest(small["corpus"], small["index"])
    r = app.test_client().open(path, method=method, data=body, content_type="application/json")
    assert 400 <= r.status_code < 500, (r.status_code, r.get_data(as_text=True)[:200])
    if path.startswith("/api/"):
        assert r.get_json()["error"]["message"]
    assert tree_digest(small["corpus"], small["index"]) == before


# ---------------------------------------------------------------- a real server (`kb serve`)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_serve(index, corpus, cwd, env) -> tuple[subprocess.Popen, int]:
    """Start `kb serve` on a free loopback port in its own process group; return it once it accepts connections."""
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "kb.cli", "serve", "--index", str(index), "--corpus",
                               str(corpus), "--port", str(port)], env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server, port
        except OSError:
            if server.poll() is not None or time.monotonic() >= deadline:
                if server.poll() is None:
                    os.killpg(server.pid, signal.SIGKILL)
                    server.wait()
                raise AssertionError(server.stderr.read()[-2000:])
            time.sleep(0.2)


def test_kb_serve_refuses_a_200mb_body_before_reading_it(small, tmp_path):
    server, port = _start_serve(small["index"], small["corpus"], tmp_path, _clean_env())
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(f"POST /api/search HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: text/plain\r\n"
                         f"Content-Length: {200 * 2**20}\r\n\r\n".encode() + b"\0" * 65536)
            sock.settimeout(5)
            try:
                answer = sock.recv(200)
            except socket.timeout:
                answer = b""
        assert answer.startswith(b"HTTP/1.1 413"), "no 413 before the body was sent: the server waits to read it all"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)


# ================================================================ hardening round two (issue 15)
# Each case below reproduces one finding of the outside probe; each failed before its fix.

HUGE = "9" * 400  # past 2**1024: float() of it is infinite, and math.isfinite() of the int overflows


def _no_constant(name):
    raise AssertionError(f"the JSON holds {name}, which strict parsers reject")


def _served_app(small, **config):
    """The site as served (TESTING off: an unexpected error becomes a 500 response, not an exception)."""
    settings = Settings(corpus_dirs=(small["corpus"],), index_dir=small["index"], dense=False)
    return site_app(settings, KnowledgeBase(settings), TESTING=False, **config)


# ---- 1. a very long number in a question


@pytest.mark.parametrize("question", [f"我们有{HUGE}人，想贷款", f"我们营收{HUGE}万元，想贷款",
                                      f"我们成立{HUGE}年了，想贷款", f"我们有{HUGE}件发明专利，能享受什么支持"],
                         ids=["employees", "revenue", "years", "patents"])
def test_huge_numbers_in_a_question_are_ignored_and_the_json_stays_strict(small, question):
    client = _served_app(small).test_client()
    r = client.get("/api/search", query_string={"q": question})
    assert r.status_code == 200, r.get_data(as_text=True)[:300]
    data = json.loads(r.get_data(as_text=True), parse_constant=_no_constant)
    profile = (data.get("eligibility") or {}).get("profile") or {}
    for name in ("employees", "revenue_wan_yuan", "years_registered", "patents"):
        assert profile.get(name) is None, (name, profile.get(name))  # out of range: not understood
    assert client.get("/search", query_string={"q": question}).status_code == 200


def test_json_responses_are_strict_even_for_a_non_finite_number(small):
    app = _served_app(small)
    with app.app_context():
        text = app.json.dumps({"score": float("inf"), "nested": [float("nan")]})
    assert json.loads(text, parse_constant=_no_constant) == {"score": None, "nested": [None]}


# ---- 2. integers of 2**1024 and more in a profile


@pytest.mark.parametrize("field", ["employees", "revenue_wan_yuan", "rd_share_percent", "patents",
                                   "years_registered"])
def test_eligibility_api_refuses_huge_integers_naming_the_field(small, field):
    client = _served_app(small).test_client()
    r = client.post("/api/eligibility", data=f'{{"{field}": {HUGE}}}', content_type="application/json")
    assert r.status_code == 400, r.get_data(as_text=True)[:300]
    assert field in r.get_json()["error"]["message"]
    r = client.post("/api/eligibility", data=f'{{"{field}": -{HUGE}}}', content_type="application/json")
    assert r.status_code == 400 and field in r.get_json()["error"]["message"]


def test_kb_eligible_refuses_a_huge_integer(small, tmp_path):
    profile = tmp_path / "profile.json"
    profile.write_text(f'{{"employees": {HUGE}}}', encoding="utf-8")
    result = _invoke(["eligible", "--profile", str(profile), "--index", str(small["index"])], small["root"])
    _assert_runner_refusal(result, "huge employees")
    assert "employees" in result.stderr


# ---- 3. url_for's reserved arguments in the query string

RESERVED_ARGS = ["/docs?_method=POST", "/docs?_external=&_scheme=https", "/docs?_external=1",
                 "/docs?_anchor=x&_scheme=javascript", "/search?q=%E8%B4%B7%E6%AC%BE&_method=PUT",
                 "/search?q=%E8%B4%B7%E6%AC%BE&_external=1", "/search?q=%E8%B4%B7%E6%AC%BE&_scheme=https&_external=1"]


@pytest.mark.parametrize("path", RESERVED_ARGS, ids=[f"reserved{i}" for i in range(len(RESERVED_ARGS))])
def test_reserved_url_for_arguments_are_ignored(small, path):
    client = _served_app(small).test_client()
    r = client.get(path, headers={"Host": "evil.example"})
    assert r.status_code == 200, r.get_data(as_text=True)[:300]
    html = r.get_data(as_text=True)
    assert "evil.example" not in html and "_method" not in html and "_external" not in html


def test_page_links_keep_the_parameters_the_page_owns(small):
    client = _served_app(small).test_client()
    html = client.get("/docs?level=municipal&status=effective&status=draft&_external=1&junk=1").get_data(as_text=True)
    links = re.findall(r'href="(/docs\?[^"]*)"', html)
    assert links and all("level=municipal" in u and "status=effective" in u and "status=draft" in u for u in links)
    assert not any("junk" in u or "_external" in u for u in links)


# ---- 4. policy text that looks like markup is shown as text

MARKUP_DOC = ROOT / "tests" / "data" / "made_up_markup_clauses.md"


@pytest.fixture(scope="module")
def markup_site(tmp_path_factory):
    root = tmp_path_factory.mktemp("markup")
    corpus = root / "corpus"
    corpus.mkdir()
    shutil.copy(MARKUP_DOC, corpus / MARKUP_DOC.name)
    settings = Settings(corpus_dirs=(corpus,), index_dir=root / "index", dense=False)
    kb = KnowledgeBase(settings)
    kb.build()
    return kb, site_app(settings, kb).test_client()


def _squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_document_page_shows_every_character_of_markup_like_text(markup_site):
    from bs4 import BeautifulSoup

    from test_hostile_docs import dangerous_html

    kb, client = markup_site
    doc_id = kb.index().documents[0].doc_id
    r = client.get(f"/doc/{doc_id}")
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert dangerous_html(html) == []
    soup = BeautifulSoup(html, "lxml")
    for button in soup.select("button, a.permalink"):
        button.decompose()
    shown = _squeeze(soup.select_one("div.body").get_text())
    body = MARKUP_DOC.read_text(encoding="utf-8").split("---", 2)[2]
    checked = 0
    for line in body.splitlines():
        if "条文" not in line:
            continue
        if line.startswith("|"):  # a table row: each cell, with the pipe escape undone
            cells = [c.replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
            expected = [_squeeze(c) for c in cells if c.strip()]
        else:
            expected = [_squeeze(re.sub(r"^#{1,6}\s+", "", line))]  # a `# ` line is a heading: its words show
        for text in expected:
            assert text in shown, f"the page lost characters of: {text}"
            checked += 1
    assert checked >= 11
    assert soup.select("div.body table td") and soup.select("div.body h1, div.body h2, div.body h3")


# ---- 5. ids the /doc/ route accepts; README.md uploads


def test_a_long_ascii_file_name_gives_a_document_the_page_serves(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    stem = "made-up-" + "very-long-ascii-title-of-a-test-document-" * 4  # 168 characters
    (corpus / f"{stem}.md").write_text(GOOD_DOC, encoding="utf-8")
    settings = Settings(corpus_dirs=(corpus,), index_dir=tmp_path / "index", dense=False)
    kb = KnowledgeBase(settings)
    kb.build()
    client = site_app(settings, kb).test_client()
    hits = client.get("/api/search", query_string={"q": "虚构示例坏输入测试办法"}).get_json()["results"]
    assert hits
    for hit in hits:
        assert client.get(hit["url"].split("#")[0]).status_code == 200, hit["url"]


@pytest.mark.parametrize("name", ["README.md", "readme.md", "Readme.md"])
def test_admin_upload_of_a_readme_is_listed_and_removable(admin, name):
    client, csrf = admin["client"], admin["csrf"]
    doc = GOOD_DOC.replace("虚构示例坏输入测试办法", "虚构示例自述文件测试办法")
    r = client.post("/admin/upload", data={"csrf_token": csrf, "files": [(io.BytesIO(doc.encode()), name)]},
                    content_type="multipart/form-data", headers={"Accept": "application/json"})
    if r.status_code == 400:  # refused with a message: also acceptable
        assert "README" in r.get_json()["error"]["message"]
        return
    assert r.status_code == 201, r.get_data(as_text=True)[:300]
    commit = client.post(r.get_json()["commit_url"], data={"csrf_token": csrf}, headers={"Accept": "application/json"})
    assert commit.status_code == 200, commit.get_data(as_text=True)[:300]
    written = [Path(p) for p in commit.get_json()["written"]]
    listed = client.get("/admin/documents", headers={"Accept": "application/json"}).get_json()["documents"]
    mine = [d for d in listed if d["title"] == "虚构示例自述文件测试办法"]
    assert mine and Path(mine[0]["file"]) == written[0], (written, [d["file"] for d in listed])
    r = client.post(f"/admin/documents/{mine[0]['doc_id']}/remove", data={"csrf_token": csrf, "confirm": "yes"},
                    headers={"Accept": "application/json"})
    assert r.status_code == 200 and not written[0].exists()
    shutil.rmtree(admin["corpus"] / ".trash")  # the fixture checks the corpus is as it was


# ---- 6-9. the admin's session, lockout, next= and state shared by workers


def _login_client(app, token: str = ADMIN_TOKEN, **headers):
    client = app.test_client()
    page = client.get("/admin/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = client.post("/admin/login", data={"csrf_token": csrf, "token": token}, headers=headers)
    return client, r


def _admin_apps(tmp_path, small, n: int = 1, **config):
    """`n` apps over one corpus and index, as `kb serve --workers n` makes them (no pending folder configured)."""
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    if not corpus.exists():
        shutil.copytree(small["corpus"], corpus)
        shutil.copytree(small["index"], index)
    settings = Settings(corpus_dirs=(corpus,), index_dir=index, dense=False, admin_token=ADMIN_TOKEN,
                        **config.pop("settings", {}))
    return [site_app(settings, KnowledgeBase(settings), **config) for _ in range(n)]


def test_logout_revokes_a_copied_session_cookie(tmp_path, small):
    (app,) = _admin_apps(tmp_path, small)
    client, r = _login_client(app)
    assert r.status_code == 303
    page = client.get("/admin/upload").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    copied = client.get_cookie("session").value
    assert client.post("/admin/logout", data={"csrf_token": csrf}).status_code == 303
    thief = app.test_client()
    thief.set_cookie("session", copied)
    assert thief.get("/admin/documents").status_code == 302
    assert thief.get("/admin/build/status.json").status_code == 401
    r = thief.post("/admin/build", data={"csrf_token": csrf})
    assert r.status_code == 401
    assert thief.get("/admin/build/status.json",
                     headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).get_json()["state"] == "idle"


@pytest.mark.parametrize("token", ["a", "short-token-123", "x" * 23])
def test_a_short_admin_token_is_refused_at_start(small, tmp_path, token):
    from kb.config import ConfigError
    from web import create_app

    settings = Settings(corpus_dirs=(small["corpus"],), index_dir=small["index"], dense=False, admin_token=token)
    with pytest.raises(ConfigError, match="token_urlsafe"):
        create_app(settings=settings, kb=KnowledgeBase(settings))
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "kb.cli", "serve", "--index", str(small["index"]), "--port",
                             str(port)], env=_clean_env(KB_ADMIN_TOKEN=token), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError(f"kb serve started with the {len(token)}-character token {token!r}") from None
    _assert_clean_refusal(proc.returncode, stdout.decode(), stderr.decode(), "short token")
    assert "KB_ADMIN_TOKEN" in stderr.decode() and "token_urlsafe" in stderr.decode()


def test_failed_logins_are_throttled_but_the_right_token_still_works(tmp_path, small):
    (app,) = _admin_apps(tmp_path, small)
    codes = [_login_client(app, f"wrong-guess-{i}-xxxxxxxxxxxxxxxx")[1].status_code for i in range(12)]
    assert codes[:10] == [401] * 10 and codes[10:] == [429, 429]
    client, r = _login_client(app)
    assert r.status_code == 303 and client.get("/admin/documents").status_code == 200
    r = app.test_client().get("/admin/documents", headers={"Authorization": f"Bearer {ADMIN_TOKEN}",
                                                           "Accept": "application/json"})
    assert r.status_code == 200


def test_failed_logins_count_across_workers(tmp_path, small):
    one, two = _admin_apps(tmp_path, small, 2)
    codes = [_login_client(app, f"wrong-guess-{i}-xxxxxxxxxxxxxxxx")[1].status_code
             for i, app in enumerate([one, two] * 5)]
    assert codes == [401] * 10
    assert _login_client(two, "one-more-wrong-guess-xxxxxxxxxx")[1].status_code == 429
    assert _login_client(one, "one-more-wrong-guess-xxxxxxxxxx")[1].status_code == 429


def test_a_trusted_proxy_gives_each_client_its_own_count(tmp_path, small):
    (app,) = _admin_apps(tmp_path, small, settings={"trust_proxy": 1})
    for i in range(10):
        _login_client(app, f"wrong-{i}-xxxxxxxxxxxxxxxxxxxxxxxx", **{"X-Forwarded-For": "203.0.113.7"})
    assert _login_client(app, "wrong-xxxxxxxxxxxxxxxxxxxxxxxxxx", **{"X-Forwarded-For": "203.0.113.7"})[1] \
        .status_code == 429
    assert _login_client(app, "wrong-xxxxxxxxxxxxxxxxxxxxxxxxxx", **{"X-Forwarded-For": "198.51.100.9"})[1] \
        .status_code == 401
    (untrusting,) = _admin_apps(tmp_path / "b", small)  # by default the header is not believed
    for i in range(10):
        _login_client(untrusting, f"wrong-{i}-xxxxxxxxxxxxxxxxxxxxxxxx", **{"X-Forwarded-For": f"203.0.113.{i}"})
    assert _login_client(untrusting, "wrong-xxxxxxxxxxxxxxxxxxxxxxxxxx", **{"X-Forwarded-For": "198.51.100.9"})[1] \
        .status_code == 429


@pytest.mark.parametrize("next_url", ["/admin/%0d%0aSet-Cookie:%20x=1", "/admin/documents%0aX:1", "/admin/%00",
                                      "/admin/%09x", "/admin/%E2%80%A8x"])
def test_next_with_control_characters_is_refused_as_unsafe(tmp_path, small, next_url):
    (app,) = _admin_apps(tmp_path, small)
    anonymous = app.test_client()
    r = anonymous.get("/admin/login?next=" + next_url)
    assert r.status_code == 200
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', r.get_data(as_text=True)).group(1)
    r = anonymous.post("/admin/login?next=" + next_url, data={"csrf_token": csrf, "token": ADMIN_TOKEN})
    assert r.status_code == 303 and r.headers["Location"] == "/admin/"
    r = anonymous.get("/admin/login?next=" + next_url)  # now logged in: a redirect
    assert r.status_code == 302 and r.headers["Location"] == "/admin/"


def test_pending_uploads_and_build_status_are_shared_by_workers(tmp_path, small):
    one, two = _admin_apps(tmp_path, small, 2)
    bearer = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Accept": "application/json"}
    a, b = one.test_client(), two.test_client()
    r = a.post("/admin/upload", data={"files": [(io.BytesIO(GOOD_DOC.encode()), "made-up.md")]},
               content_type="multipart/form-data", headers=bearer)
    assert r.status_code == 201, r.get_data(as_text=True)[:300]
    pending = r.get_json()["pending"]
    assert b.get(f"/admin/pending/{pending}", headers=bearer).status_code == 200
    assert b.post(f"/admin/pending/{pending}/cancel", headers=bearer).status_code == 200
    assert a.get(f"/admin/pending/{pending}", headers=bearer).status_code == 404
    r = a.post("/admin/build", headers=bearer)
    assert r.status_code == 202, r.get_data(as_text=True)[:300]
    job = r.get_json()["job_id"]
    deadline = time.monotonic() + 120
    while True:
        status = b.get("/admin/build/status.json", headers=bearer).get_json()
        assert status.get("job_id") == job, status
        if not status["running"]:
            break
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert status["state"] in ("done", "up_to_date")
    assert a.get("/admin/build/status.json", headers=bearer).get_json() == status


# ---- 10. .docx conversion bounded, uploads converted in a worker that can be stopped, SIGTERM, --overwrite


def _docx_with_paragraphs(n: int, text: str = "虚构示例段落") -> bytes:
    """A made-up .docx whose body is `n` short paragraphs (XML written directly: python-docx would take minutes)."""
    source = zipfile.ZipFile(io.BytesIO(_docx_bytes()))
    members = {}
    for item in source.infolist():
        data = source.read(item.filename)
        if item.filename == "word/document.xml":
            head, rest = data.split(b"<w:body>", 1)
            tail = rest[rest.index(b"<w:sectPr"):]
            para = f"<w:p><w:r><w:t>{text}</w:t></w:r></w:p>".encode()
            data = head + b"<w:body>" + para * n + tail
        members[item.filename] = data
    return _zip_bytes(members)


def test_add_refuses_a_docx_with_too_many_paragraphs(small, tmp_path):
    from kb.ingest.docx import MAX_PARAGRAPHS

    path = tmp_path / "many.docx"
    path.write_bytes(_docx_with_paragraphs(MAX_PARAGRAPHS + 1))
    before = tree_digest(small["corpus"], small["index"])
    result = _invoke(["add", str(path), "--corpus", str(small["corpus"])], small["root"])
    _assert_runner_refusal(result, "too many paragraphs")
    assert "paragraphs" in result.stderr
    assert tree_digest(small["corpus"], small["index"]) == before


def test_docx_conversion_has_a_time_budget(monkeypatch):
    from kb.ingest import IngestError
    from kb.ingest import docx as docx_reader

    monkeypatch.setattr(docx_reader, "TIME_BUDGET_SECONDS", 0.0)
    with pytest.raises(IngestError, match="seconds"):
        docx_reader.read_docx(_docx_with_paragraphs(50), "slow.docx")


def test_docx_style_lookups_are_cached(monkeypatch):
    """python-docx looks a style up in styles.xml on every call; the reader asks once per style."""
    from docx.parts.document import DocumentPart

    from kb.ingest.docx import read_docx

    calls = []
    real = DocumentPart.get_style
    monkeypatch.setattr(DocumentPart, "get_style", lambda self, *a: calls.append(a) or real(self, *a))
    extraction = read_docx(_docx_bytes(), "made-up.docx")
    assert extraction.body.count("本条为虚构示例") == 120
    assert 0 < len(calls) <= 4, len(calls)


def test_admin_upload_conversion_is_stopped_past_its_budget(tmp_path, small):
    (app,) = _admin_apps(tmp_path, small, KB_ADMIN_CONVERT_SECONDS=0.05)  # less than a process takes to start
    bearer = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Accept": "application/json"}
    client = app.test_client()
    r = client.post("/admin/upload", data={"files": [(io.BytesIO(_docx_bytes()), "made-up.docx")]},
                    content_type="multipart/form-data", headers=bearer)
    assert r.status_code == 400, r.get_data(as_text=True)[:300]
    assert "秒" in r.get_json()["error"]["message"]
    app.config["KB_ADMIN_CONVERT_SECONDS"] = 60
    r = client.post("/admin/upload", data={"files": [(io.BytesIO(_docx_bytes()), "made-up.docx")]},
                    content_type="multipart/form-data", headers=bearer)
    assert r.status_code == 201, r.get_data(as_text=True)[:300]
    import multiprocessing

    assert multiprocessing.active_children() == []  # every conversion process was reaped


def _multipart(fields: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = "made-up-boundary-7c1"
    parts = []
    for name, (filename, data) in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                     "Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_sigterm_of_kb_serve_removes_pending_uploads(small, tmp_path):
    import urllib.request

    corpus, index = tmp_path / "corpus", tmp_path / "index"
    shutil.copytree(small["corpus"], corpus)
    shutil.copytree(small["index"], index)
    (tmp_path / "tmp").mkdir()
    server, port = _start_serve(index, corpus, tmp_path,
                                _clean_env(KB_ADMIN_TOKEN=ADMIN_TOKEN, TMPDIR=str(tmp_path / "tmp")))
    try:
        body, content_type = _multipart({"files": ("made-up.md", GOOD_DOC.encode())})
        request = urllib.request.Request(f"http://127.0.0.1:{port}/admin/upload", data=body, method="POST", headers={
            "Content-Type": content_type, "Authorization": f"Bearer {ADMIN_TOKEN}", "Accept": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as answer:
            assert answer.status == 201
        assert list(tmp_path.rglob("pending.json")), "the upload was kept somewhere else"
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    assert list(tmp_path.rglob("pending.json")) == []


def test_add_overwrite_keeps_the_old_file_in_the_trash(small, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    source = tmp_path / "made-up.md"
    source.write_text(GOOD_DOC, encoding="utf-8")
    assert _invoke(["add", str(source), "--corpus", str(corpus)], tmp_path).exit_code == 0
    (written,) = corpus.glob("*.md")
    old = written.read_bytes()
    source.write_text(GOOD_DOC + "第二条 本条为虚构示例的修改。\n", encoding="utf-8")
    result = _invoke(["add", str(source), "--corpus", str(corpus), "--overwrite"], tmp_path)
    assert result.exit_code == 0, result.stderr
    assert written.read_bytes() != old
    assert [p.read_bytes() for p in (corpus / ".trash").glob("*.md")] == [old]
