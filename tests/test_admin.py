"""Admin pages against a real corpus folder and a real index: login, CSRF, upload, preview, commit,
background rebuild, search, remove to .trash, and refusals that leave the corpus untouched.

The uploaded policy texts below are MADE UP for these tests (虚构示例 in the text itself): the organs,
文号 and dates name no real document. The base corpus is a copy of a short real regulation from corpus/.
"""

from __future__ import annotations

import fcntl
import io
import re
import shutil
import time
from pathlib import Path

import pytest

from kb.config import Settings
from kb.service import KnowledgeBase

from conftest import CORPUS

TOKEN = "admin-token-for-tests-7f3a9c"
BASE_DOC = "cujin-geti-gongshanghu-fazhan-tiaoli-2022.md"  # a short real regulation (10 KB): builds stay quick
BASE_ID = BASE_DOC.removesuffix(".md")

# 虚构示例 — a made-up notice, saved as GBK like many files from government sites. Not a real policy.
GBK_NOTICE = "\n".join([
    "虚构示例市人民政府办公室关于印发虚构示例星火补助办法的通知",
    "虚示政办发〔2024〕3号",
    "各县（区）人民政府，市各委办局：",
    "现将《虚构示例星火补助办法》印发给你们，请认真贯彻执行。（本文件为虚构示例，仅用于软件测试。）",
    "一、补助对象",
    "（一）虚构示例星火补助面向本市创新型中小企业，每家最高补助５０万元。",
    "二、申报程序",
    "（二）企业向所在县区工业和信息化部门提交申报材料。",
    "虚构示例市人民政府办公室",
    "2024年3月1日",
]) + "\n"
GBK_TITLE = "虚构示例市人民政府办公室关于印发虚构示例星火补助办法的通知"


def _docx_bytes() -> bytes:
    """A made-up plan (虚构示例) written with python-docx: title style, headings, a signature block."""
    import docx

    document = docx.Document()
    document.add_paragraph("虚构示例市晨曦贷款贴息实施细则", style="Title")
    document.add_paragraph("（本文件为虚构示例，仅用于软件测试。）")
    document.add_heading("第一章 总则", level=1)
    document.add_paragraph("第一条 为支持专精特新中小企业融资，设立虚构示例晨曦贷款贴息。")
    document.add_paragraph("第二条 贴息比例为贷款市场报价利率的百分之五十。")
    document.add_paragraph("虚构示例市工业和信息化局")
    document.add_paragraph("2024年5月6日")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (hidden ones too) with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _make_app(tmp_path: Path, token: str = TOKEN, **config):
    from web import admin, create_app

    corpus = tmp_path / "corpus"
    if not corpus.is_dir():
        corpus.mkdir()
        shutil.copy(CORPUS / BASE_DOC, corpus / BASE_DOC)
    settings = Settings(corpus_dirs=(corpus,), index_dir=tmp_path / "index", dense=False, admin_token=token)
    kb = KnowledgeBase(settings)
    if not kb.has_index():
        kb.build()
    app = create_app(settings=settings, kb=kb, test_config={
        "TESTING": True, "KB_ADMIN_PENDING_DIR": str(tmp_path / "pending"), **config})
    if "admin" not in app.blueprints:  # until create_app registers it
        app.register_blueprint(admin.bp)
    return app


@pytest.fixture()
def admin_app(tmp_path):
    return _make_app(tmp_path)


def _csrf(client, path: str = "/admin/upload") -> str:
    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, page[:500]
    return match.group(1)


def _login(client) -> str:
    """Log in through the form; return the session's CSRF token."""
    r = client.post("/admin/login", data={"csrf_token": _csrf(client, "/admin/login"), "token": TOKEN})
    assert r.status_code == 303, r.get_data(as_text=True)
    return _csrf(client)


def _wait_build(client, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get("/admin/build/status.json").get_json()
        if not status["running"]:
            return status
        time.sleep(0.1)
    raise AssertionError("the rebuild did not finish in time")


def _search_doc_ids(client, query: str) -> list[str]:
    r = client.get("/api/search", query_string={"q": query, "k": 5})
    assert r.status_code == 200, r.get_data(as_text=True)
    return [hit["doc_id"] for hit in r.get_json()["results"]]


def _upload(client, csrf: str, files: list[tuple[bytes, str]], **fields):
    data = {"csrf_token": csrf, "files": [(io.BytesIO(raw), name) for raw, name in files], **fields}
    return client.post("/admin/upload", data=data, content_type="multipart/form-data")


# ---------------------------------------------------------------- enabled only with a token


def test_admin_is_404_without_token(tmp_path):
    client = _make_app(tmp_path, token="").test_client()
    for path in ("/admin/", "/admin/login", "/admin/upload", "/admin/documents", "/admin/build",
                 "/admin/build/status.json"):
        assert client.get(path).status_code == 404, path
    for path in ("/admin/login", "/admin/upload", "/admin/build"):
        r = client.post(path, data={"token": ""}, headers={"Authorization": "Bearer "})
        assert r.status_code == 404, path
        assert "没有这个页面" in r.get_data(as_text=True)


# ---------------------------------------------------------------- authentication


def test_login_required_and_wrong_token_refused(admin_app, tmp_path):
    corpus = tmp_path / "corpus"
    before = _snapshot(corpus)
    client = admin_app.test_client()
    r = client.get("/admin/documents")
    assert r.status_code == 302 and r.headers["Location"].startswith("/admin/login")
    r = client.get("/admin/build/status.json")
    assert r.status_code == 401 and "登录" in r.get_json()["error"]["message"]
    for path in ("/admin/upload", "/admin/build", f"/admin/documents/{BASE_ID}/remove"):
        r = client.post(path, data={"confirm": "yes", "files": [(io.BytesIO(GBK_NOTICE.encode("gbk")), "n.txt")]},
                        content_type="multipart/form-data")
        assert r.status_code == 401, path  # refused before the form is even read

    r = client.post("/admin/login", data={"csrf_token": _csrf(client, "/admin/login"), "token": TOKEN + "x"})
    assert r.status_code == 401 and "令牌不正确" in r.get_data(as_text=True)
    assert client.get("/admin/documents").status_code == 302  # still logged out

    for header in (f"Bearer {TOKEN}x", f"Basic {TOKEN}", "Bearer"):
        r = client.get("/admin/documents", headers={"Authorization": header, "Accept": "application/json"})
        assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer"), header
    r = client.get("/admin/documents", headers={"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"})
    assert r.status_code == 200 and r.get_json()["documents"][0]["doc_id"] == BASE_ID

    r = client.post("/admin/login", data={"csrf_token": _csrf(client, "/admin/login"), "token": TOKEN,
                                          "next": "//evil.example/"})
    assert r.status_code == 303 and r.headers["Location"] == "/admin/"  # no open redirect
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert client.get("/admin/documents").status_code == 200

    csrf = _csrf(client)
    assert client.post("/admin/logout", data={"csrf_token": csrf}).status_code == 303
    assert client.get("/admin/documents").status_code == 302
    assert _snapshot(corpus) == before


def test_repeated_wrong_tokens_are_throttled(admin_app):
    client = admin_app.test_client()
    csrf = _csrf(client, "/admin/login")
    codes = [client.post("/admin/login", data={"csrf_token": csrf, "token": f"guess-{i}"}).status_code
             for i in range(12)]
    assert codes[:10] == [401] * 10 and codes[10:] == [429, 429]
    r = client.post("/admin/login", data={"csrf_token": csrf, "token": "another-wrong-guess"})
    assert r.status_code == 429 and "5 分钟" in r.get_data(as_text=True)
    # throttling slows guessing; it never locks out the holder of the right token (issue 15, item 7)
    r = client.post("/admin/login", data={"csrf_token": csrf, "token": TOKEN})
    assert r.status_code == 303


# ---------------------------------------------------------------- CSRF and origin


def test_posts_without_valid_csrf_or_from_other_sites_are_refused(admin_app, tmp_path):
    corpus = tmp_path / "corpus"
    before = _snapshot(corpus)
    client = admin_app.test_client()
    csrf = _login(client)
    other = admin_app.test_client()
    other_csrf = _login(other)
    assert other_csrf != csrf
    raw = GBK_NOTICE.encode("gbk")

    r = client.post("/admin/login", data={"token": TOKEN})
    assert r.status_code == 400
    for bad in ("", "forged", other_csrf):
        r = _upload(client, bad, [(raw, "notice.txt")])
        assert r.status_code == 400 and "表单校验码" in r.get_data(as_text=True), bad
        r = client.post("/admin/build", data={"csrf_token": bad})
        assert r.status_code == 400
        r = client.post(f"/admin/documents/{BASE_ID}/remove", data={"csrf_token": bad, "confirm": "yes"})
        assert r.status_code == 400
    for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"},
                    {"Referer": "https://evil.example/page"}):
        r = client.post(f"/admin/documents/{BASE_ID}/remove", data={"csrf_token": csrf, "confirm": "yes"},
                        headers=headers)
        assert r.status_code == 403 and "跨站请求" in r.get_data(as_text=True), headers
        r = client.post("/admin/upload", data={"csrf_token": csrf, "files": [(io.BytesIO(raw), "n.txt")]},
                        headers=headers, content_type="multipart/form-data")
        assert r.status_code == 403
    assert client.get("/admin/build/status.json").get_json()["state"] == "idle"  # no build was started
    assert _snapshot(corpus) == before
    assert not any((tmp_path / "pending").glob("*"))

    # the same form from this site is accepted
    r = client.post("/admin/upload", data={"csrf_token": csrf, "files": [(io.BytesIO(raw), "n.txt")]},
                    headers={"Origin": "http://localhost"}, content_type="multipart/form-data")
    assert r.status_code == 303


# ---------------------------------------------------------------- the whole flow


def test_upload_preview_commit_rebuild_search_remove(admin_app, tmp_path):
    corpus = tmp_path / "corpus"
    before = _snapshot(corpus)
    client = admin_app.test_client()
    csrf = _login(client)
    assert BASE_ID in _search_doc_ids(client, "个体工商户")
    # 补助 is a policy word, so weak matches come back; the made-up notice is not among them yet
    before_upload = _search_doc_ids(client, "虚构示例星火补助")

    r = _upload(client, csrf, [(GBK_NOTICE.encode("gbk"), "xinghuo-gbk.txt"), (_docx_bytes(), "chenxi.docx")],
                region="虚构示例市", doc_type="通知")
    assert r.status_code == 303, r.get_data(as_text=True)
    preview_url = r.headers["Location"]
    page = client.get(preview_url).get_data(as_text=True)
    # what was extracted, before anything is written
    for text in (GBK_TITLE, "虚示政办发〔2024〕3号", "2024-03-01", "市级（municipal）", "虚构示例市",
                 "虚构示例市晨曦贷款贴息实施细则", "虚构示例市工业和信息化局", "2024-05-06",
                 "decoded as GB18030", "未找到", "效力状态",
                 "（一）虚构示例星火补助面向本市创新型中小企业，每家最高补助50万元。", "第一条 为支持专精特新中小企业融资"):
        assert text in page, text
    assert _snapshot(corpus) == before

    r = client.post(preview_url + "/commit", data={"csrf_token": csrf})
    assert r.status_code == 303 and r.headers["Location"] == "/admin/documents"
    added = sorted(set(_snapshot(corpus)) - set(before))
    assert len(added) == 2
    texts = [(corpus / name).read_text(encoding="utf-8") for name in added]
    assert all("region: 虚构示例市" in t and "doc_type: 通知" in t for t in texts)
    assert any(f"title: {GBK_TITLE}" in t and "doc_no: 虚示政办发〔2024〕3号" in t for t in texts)
    assert client.post(preview_url + "/commit", data={"csrf_token": csrf}).status_code == 404  # once only

    listing = client.get("/admin/documents", headers={"Accept": "application/json"}).get_json()["documents"]
    states = {d["title"]: d["index_state"] for d in listing}
    assert states[GBK_TITLE] == "new" and states["虚构示例市晨曦贷款贴息实施细则"] == "new"
    assert "尚未索引" in client.get("/admin/documents").get_data(as_text=True)

    r = client.post("/admin/build", data={"csrf_token": csrf})
    assert r.status_code == 303 and r.headers["Location"] == "/admin/build"
    status = _wait_build(client)
    assert status["state"] == "done", status
    assert len(status["report"]["changed_documents"]) == 2 and status["report"]["documents"] == 3
    page = client.get("/admin/build").get_data(as_text=True)
    assert 'src="/static/admin.js"' in page and "<script>" not in page
    notice_id = next(d["doc_id"] for d in listing if d["title"] == GBK_TITLE)
    docx_id = next(d["doc_id"] for d in listing if d["title"] != GBK_TITLE and d["doc_id"] != BASE_ID)
    assert _search_doc_ids(client, "虚构示例星火补助")[0] == notice_id  # without restarting anything
    assert notice_id not in before_upload
    assert _search_doc_ids(client, "晨曦贷款贴息比例")[0] == docx_id
    assert "已在索引中" in client.get("/admin/documents").get_data(as_text=True)

    # remove: a confirmation page, then the file moves to .trash (never deleted), then a rebuild drops it
    notice_file = next(corpus / n for n in added if GBK_TITLE in (corpus / n).read_text(encoding="utf-8"))
    notice_bytes = notice_file.read_bytes()
    page = client.get(f"/admin/documents/{notice_id}/remove").get_data(as_text=True)
    assert "确认移除" in page and GBK_TITLE in page
    r = client.post(f"/admin/documents/{notice_id}/remove", data={"csrf_token": csrf})
    assert r.status_code == 400 and notice_file.is_file()  # not confirmed
    r = client.post(f"/admin/documents/{notice_id}/remove", data={"csrf_token": csrf, "confirm": "yes"})
    assert r.status_code == 303
    assert not notice_file.exists()
    trashed = list((corpus / ".trash").iterdir())
    assert len(trashed) == 1 and trashed[0].read_bytes() == notice_bytes
    listing = client.get("/admin/documents", headers={"Accept": "application/json"}).get_json()["documents"]
    assert {d["doc_id"]: d["index_state"] for d in listing}[notice_id] == "removed"
    assert _search_doc_ids(client, "虚构示例星火补助")[0] == notice_id  # still served until the rebuild

    assert client.post("/admin/build", data={"csrf_token": csrf}).status_code == 303
    status = _wait_build(client)
    assert status["state"] == "done" and status["report"]["removed_documents"] == [notice_id]
    assert notice_id not in _search_doc_ids(client, "虚构示例星火补助")
    assert client.get(f"/doc/{notice_id}").status_code == 404
    assert _search_doc_ids(client, "晨曦贷款贴息比例")[0] == docx_id

    r = client.post("/admin/build", data={"csrf_token": csrf})
    assert _wait_build(client)["state"] == "up_to_date"


def test_scripted_use_with_bearer_token_and_cancel(admin_app, tmp_path):
    corpus = tmp_path / "corpus"
    before = _snapshot(corpus)
    client = admin_app.test_client()
    auth = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
    r = client.post("/admin/upload", headers=auth, content_type="multipart/form-data",
                    data={"files": [(io.BytesIO(_docx_bytes()), "chenxi.docx")], "status": "effective"})
    assert r.status_code == 201, r.get_data(as_text=True)
    body = r.get_json()
    item = body["items"][0]
    assert item["meta"]["title"] == "虚构示例市晨曦贷款贴息实施细则" and item["meta"]["status"] == "effective"
    assert "doc_no" in item["missing"] and "第一条" in item["body_head"]
    pending = tmp_path / "pending" / body["pending"]
    assert pending.is_dir()
    r = client.post(f"/admin/pending/{body['pending']}/cancel", headers=auth)
    assert r.status_code == 200 and not pending.exists()
    assert client.get(f"/admin/pending/{body['pending']}", headers=auth).status_code == 404
    assert _snapshot(corpus) == before


# ---------------------------------------------------------------- refusals leave the corpus as it was


def test_wrong_type_and_oversize_uploads_are_refused(tmp_path):
    app = _make_app(tmp_path, KB_ADMIN_MAX_FILE_BYTES=4096)
    corpus = tmp_path / "corpus"
    before = _snapshot(corpus)
    client = app.test_client()
    csrf = _login(client)
    good = GBK_NOTICE.encode("gbk")
    zip_without_word = io.BytesIO()
    import zipfile

    with zipfile.ZipFile(zip_without_word, "w") as package:
        package.writestr("hello.txt", "not a word document")
    cases = [
        ([(b"MZ\x90\x00" + bytes(200), "setup.exe")], "不支持.exe 文件"),
        ([(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100), "old.doc")], "不支持.doc 文件"),
        ([(b"\x89PNG\r\n\x1a\n" + bytes(100), "notice.txt")], "notice.txt：扩展名是 .txt，但内容是 PNG 图片"),
        ([(good, "fake.pdf")], "fake.pdf：内容不是 PDF"),
        ([(good, "fake.docx")], "fake.docx：内容不是 .docx"),
        ([(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100), "renamed.docx")], "旧版 Word（.doc）"),
        ([(zip_without_word.getvalue(), "zip.docx")], "没有 word/document.xml"),
        ([(b"\x00\x01\x02\x03" * 50, "binary.txt")], "binary.txt：含有 NUL 字节"),
        ([(b"", "empty.txt")], "empty.txt：文件是空的"),
        ([(good * (4096 // len(good) + 1), "big.txt")], "big.txt：文件超过每个文件 4 KB 的上限"),
        ([(good, "ok.txt"), (b"\x89PNG\r\n\x1a\n" + bytes(10), "bad.html")], "bad.html：扩展名是 .html"),
        ([(good, "a.txt"), (good, "b.txt")], "会写成同一个文件"),
        ([], "请选择至少一个文件"),
    ]
    for files, message in cases:
        r = _upload(client, csrf, files)
        page = r.get_data(as_text=True)
        assert r.status_code == 400, (message, r.status_code)
        assert message in page, (message, re.findall(r"<li>(.*?)</li>", page))
    r = _upload(client, csrf, [(good, "a.txt"), (good, "b.txt")], title="两个文件不能共用的标题")
    assert r.status_code == 400 and "只描述一个文件" in r.get_data(as_text=True)
    r = _upload(client, csrf, [(good, "a.txt")], level="galactic")
    assert r.status_code == 400 and "level" in r.get_data(as_text=True)
    assert _snapshot(corpus) == before
    assert not any((tmp_path / "pending").glob("*"))  # nothing was kept for a preview either


def test_default_limits_refuse_large_uploads_clearly(tmp_path):
    from web.admin import DEFAULT_MAX_FILE_BYTES

    assert DEFAULT_MAX_FILE_BYTES == 20 * 2**20
    app = _make_app(tmp_path)
    corpus = tmp_path / "corpus"
    before = _snapshot(corpus)
    client = app.test_client()
    csrf = _login(client)
    line = "（一）虚构示例条款，不是真实政策，仅用于测试上传大小上限。\n".encode("gbk")
    big = line * (DEFAULT_MAX_FILE_BYTES // len(line) + 1)
    r = _upload(client, csrf, [(big, "big.txt")])
    assert r.status_code == 400 and "超过每个文件 20 MB 的上限" in r.get_data(as_text=True)
    app.config["MAX_CONTENT_LENGTH"] = 2**20  # the whole request is over Flask's limit: a clear 413
    r = _upload(client, csrf, [(line * 40000, "huge.txt")])
    assert r.status_code == 413 and "请分批上传" in r.get_data(as_text=True)
    assert _snapshot(corpus) == before


def test_conflicting_commit_and_busy_build_are_refused(admin_app, tmp_path):
    corpus = tmp_path / "corpus"
    client = admin_app.test_client()
    csrf = _login(client)
    raw = GBK_NOTICE.encode("gbk")
    r = _upload(client, csrf, [(raw, "notice.txt")])
    assert client.post(r.headers["Location"] + "/commit", data={"csrf_token": csrf}).status_code == 303
    before = _snapshot(corpus)

    changed = GBK_NOTICE.replace("５０万元", "８０万元").encode("gbk")  # same 文号, different text
    r = _upload(client, csrf, [(changed, "notice-v2.txt")])
    preview_url = r.headers["Location"]
    assert "同名但内容不同" in client.get(preview_url).get_data(as_text=True)
    r = client.post(preview_url + "/commit", data={"csrf_token": csrf})
    assert r.status_code == 409 and "没有写入任何内容" in r.get_data(as_text=True)
    assert _snapshot(corpus) == before
    for path in ("/admin/pending/not-an-id", "/admin/pending/" + "0" * 32):
        r = client.get(path)
        assert r.status_code == 404 and "重新上传" in r.get_data(as_text=True)

    # a build already holds the index lock (another `kb build`): refused with the reason, not a 500
    index_dir = tmp_path / "index"
    with open(index_dir / ".build.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        r = client.post("/admin/build", data={"csrf_token": csrf})
        assert r.status_code == 409 and "另一个重建正在运行" in r.get_data(as_text=True)
    assert client.get("/admin/build/status.json").get_json()["state"] == "failed"
    r = client.post("/admin/documents/no-such-doc/remove", data={"csrf_token": csrf, "confirm": "yes"})
    assert r.status_code == 404 and "没有文档" in r.get_data(as_text=True)
    r = client.post(preview_url + "/commit", data={"csrf_token": csrf, "overwrite": "1"})
    assert r.status_code == 303  # replacing needs the explicit choice
    replaced = [p.read_text(encoding="utf-8") for p in corpus.glob("*.md") if p.name != BASE_DOC]
    assert len(replaced) == 1 and "每家最高补助80万元" in replaced[0]  # full-width digits normalised by ingest
