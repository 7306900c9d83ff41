"""Tests for kb.ingest: raw txt/html/docx/pdf/md files made here, converted to corpus documents.

Every policy-like text below is MADE UP for these tests (marked 虚构示例 in the text
itself): the organs, 文号 and dates name no real document.
"""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from kb.corpus import parse_front_matter
from kb.ingest import IngestError, IngestResult, ingest_bytes, ingest_file, write_to_corpus
from kb.ingest.command import add
from kb.ingest.meta import find_metadata, find_title, guess_level, normalize_doc_no, parse_date
from kb.ingest.pdf import join_lines, strip_running_lines
from kb.ingest.text import decode_bytes

# 虚构示例 — a made-up notice in the usual layout: red header, 文号, two-line title,
# recipients, clauses, signature block, date. Not a real policy.
NOTICE_LINES = [
    "虚构示例市人民政府办公室文件",
    "虚示政办发〔2023〕7号",
    "虚构示例市人民政府办公室关于印发",
    "虚构示例市中小企业培育行动计划的通知",
    "各县（区）人民政府，市各委办局：",
    "现将《虚构示例市中小企业培育行动计划》印发给你们，请认真贯彻执行。（本文件为虚构示例，仅用于软件测试。）",
    "一、总体要求",
    "（一）到２０２５年，培育创新型中小企业１００家。",
    "第三条　虚构示例条款，不是真实政策。",
    "虚构示例市人民政府办公室",
    "2023年1月20日",
    "（此件公开发布）",
]
NOTICE = "\n".join(NOTICE_LINES) + "\n"
NOTICE_TITLE = "虚构示例市人民政府办公室关于印发虚构示例市中小企业培育行动计划的通知"


def _check_notice(result: IngestResult) -> None:
    meta = result.meta
    assert meta["title"] == NOTICE_TITLE
    assert meta["doc_no"] == "虚示政办发〔2023〕7号"
    assert meta["published"] == "2023-01-20"
    assert meta["issuer"] == "虚构示例市人民政府办公室"
    assert meta["level"] == "municipal"
    assert "status" in result.missing and "title" not in result.missing
    assert "一、总体要求" in result.body.splitlines()
    assert "（一）到2025年，培育创新型中小企业100家。" in result.body  # digits half-width, （） kept
    assert "第三条　虚构示例条款" in result.body  # a single U+3000 between words is kept
    assert NOTICE_TITLE not in result.body
    parsed, body = parse_front_matter(result.doc_text)
    assert parsed["title"] == NOTICE_TITLE and body.strip() == result.body.strip()


# ---------------------------------------------------------------- plain text

def test_gbk_text_file(tmp_path: Path) -> None:
    raw = NOTICE.encode("gbk")
    path = tmp_path / "notice-gbk.txt"
    path.write_bytes(raw)
    result = ingest_file(path)
    _check_notice(result)
    assert any("GB18030" in w for w in result.warnings)
    assert result.meta["source_sha256"] == hashlib.sha256(raw).hexdigest()
    assert result.meta["source_file"] == "notice-gbk.txt"
    assert result.source == path


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-be", "utf-8"])
def test_unicode_text_files(tmp_path: Path, encoding: str) -> None:
    raw = NOTICE.replace("\n", "\r\n").encode(encoding)
    if encoding == "utf-16-be":
        raw = b"\xfe\xff" + raw
    path = tmp_path / f"notice-{encoding}.txt"
    path.write_bytes(raw)
    result = ingest_file(path)
    _check_notice(result)
    assert "\r" not in result.doc_text and "\ufeff" not in result.doc_text


def test_short_gbk_text_is_not_misread(tmp_path: Path) -> None:
    path = tmp_path / "short.txt"
    path.write_bytes("虚构示例通知\n第一条　测试内容。".encode("gbk"))
    result = ingest_file(path)
    assert result.meta["title"] == "虚构示例通知"
    assert "第一条　测试内容。" in result.body
    # charset-normalizer calls these few GBK bytes UTF-16 and Korean; they must still read as Chinese.
    for text in ("附件1：\n《虚构示例", "虚构示例"):
        decoded = decode_bytes(text.encode("gbk"), "tiny.txt")
        assert decoded.text == text and decoded.encoding == "GB18030"
        assert any("check the text" in w for w in decoded.warnings)


def test_layout_spaces_and_blank_lines(tmp_path: Path) -> None:
    text = "虚构示例办法\n\n\n\n　　第一条　　为测试，制定本办法。   \n\n\n第二条 Ａｂｃ１２３：测试。\n"
    result = ingest_bytes(text.encode("utf-8"), "layout.txt")
    assert result.body == "第一条　为测试，制定本办法。\n\n第二条 Abc123：测试。\n"


def test_empty_file_refused(tmp_path: Path) -> None:
    for name, data in (("empty.txt", b""), ("blank.txt", b"  \r\n\n")):
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(IngestError, match=f"{name}: the file is empty"):
            ingest_file(path)


def test_binary_file_refused(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_bytes(b"PK\x03\x04\x00\x00binary\x00payload")
    with pytest.raises(IngestError, match="NUL bytes"):
        ingest_file(path)


def test_undecodable_file_refused(tmp_path: Path) -> None:
    noise = bytes(b for b in random.Random(7).randbytes(4000) if b)  # no NUL, not text
    with pytest.raises(IngestError, match=r"noise\.txt: .*(encoding|control)"):
        ingest_bytes(noise, "noise.txt")
    western = "naïve café, résumé — costs 5 €".encode("cp1252")
    with pytest.raises(IngestError, match=r"western\.txt: .*(encoding|control)"):
        ingest_bytes(western, "western.txt")


@pytest.mark.parametrize("encoding", ["utf-8", "gbk"])
def test_a_few_broken_bytes_are_replaced_and_reported(encoding: str) -> None:
    raw = (NOTICE * 30).encode(encoding)
    damaged = raw[:1001] + b"\xff" + raw[1001:]
    result = ingest_bytes(damaged, "damaged.txt")
    assert result.meta["title"] == NOTICE_TITLE
    assert any("invalid" in w and "replaced" in w for w in result.warnings)


def test_control_characters_refused() -> None:
    junk = ("虚构示例" + "\x01\x02\x03\x04\x05\x06" * 20).encode("utf-8")
    with pytest.raises(IngestError, match="control or replacement characters"):
        ingest_bytes(junk, "junk.txt")


def test_size_limit_checked_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "huge.pdf"
    with path.open("wb") as handle:  # sparse: 60 MB on paper, nothing on disk
        handle.truncate(60 * 2**20)

    def no_reading(*args, **kwargs):
        raise AssertionError("the file was opened although it is over the limit")

    monkeypatch.setattr(Path, "open", no_reading)
    monkeypatch.setattr(Path, "read_bytes", no_reading)
    with pytest.raises(IngestError, match=r"huge\.pdf: .*over the limit of 50 MB"):
        ingest_file(path)
    monkeypatch.undo()
    with pytest.raises(IngestError, match="over the limit of 100 bytes"):
        ingest_bytes(b"x" * 101, "small.txt", max_bytes=100)


def test_unsupported_type_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.doc"
    path.write_bytes(b"\xd0\xcf\x11\xe0")
    with pytest.raises(IngestError, match=r"old\.doc: \.doc files are not supported \(save it as \.docx first\); "
                                          r"supported: \.txt, \.html, \.htm, \.docx, \.pdf, \.md"):
        ingest_file(path)
    with pytest.raises(IngestError, match="file not found"):
        ingest_file(tmp_path / "nothing.txt")


def test_no_title_found_is_refused_not_invented() -> None:
    text = ("这是一段很长的正文，没有标题行，所以不能从中找到标题，"
            "这里只是虚构示例的测试文字而已，没有别的意思，也不是政策。\n")
    with pytest.raises(IngestError, match="no title found.*--title"):
        ingest_bytes(text.encode("utf-8"), "untitled.txt")
    result = ingest_bytes(text.encode("utf-8"), "untitled.txt", {"title": "虚构示例说明"})
    assert result.meta["title"] == "虚构示例说明" and result.body.startswith("这是一段很长的正文")


# ---------------------------------------------------------------- metadata

def test_metadata_from_signature_block() -> None:
    # 虚构示例: a made-up joint draft measure with a two-organ signature and Chinese-numeral date.
    lines = [
        "附件1",
        "虚构示例专项资金管理办法",
        "（征求意见稿）",
        "",
        "第一章　总则",
        "第一条　为规范虚构示例专项资金管理，制定本办法。根据《某某通知》（虚示财发〔2020〕3号）执行。",
        "第二条　本办法自2023年5月1日起施行。",
        "",
        "虚构示例省工业和信息化厅",
        "虚构示例省财政厅",
        "二〇二三年三月五日",
        "虚构示例省工业和信息化厅办公室　2023年3月7日印发",
    ]
    split = find_title(lines)
    assert split is not None and split.title == "虚构示例专项资金管理办法（征求意见稿）"
    assert (split.start, split.end) == (1, 3)
    result = ingest_bytes("\n".join(lines).encode("utf-8"), "draft.txt")
    meta = result.meta
    assert meta["title"] == "虚构示例专项资金管理办法（征求意见稿）"
    assert meta["status"] == "draft"
    assert meta["issuer"] == "虚构示例省工业和信息化厅、虚构示例省财政厅"
    assert meta["level"] == "provincial"
    assert meta["published"] == "2023-03-05"
    assert "doc_no" not in meta  # the 文号 cited in the text is another document's
    assert result.missing == ("doc_no",)
    assert result.body.startswith("附件1\n\n第一章　总则")


def test_metadata_fallbacks() -> None:
    # 虚构示例: an interpretation without a signature; only the 印发 line gives a date.
    lines = ["《虚构示例行动计划》政策解读", "一、背景", "虚构示例的解读文字。",
             "虚构示例市工业和信息化局办公室 2023年3月7日印发"]
    found = find_metadata(lines)
    assert found.published == "2023-03-07" and found.issuer == ""
    assert any("印发" in note for note in found.notes)
    result = ingest_bytes("\n".join(lines).encode("utf-8"), "jiedu.txt")
    assert result.meta["status"] == "interpretation"
    assert set(result.missing) == {"doc_no", "issuer", "level"}


@pytest.mark.parametrize("text, expected", [
    ("虚示政办发〔2023〕1号", "虚示政办发〔2023〕1号"),
    ("虚示政办发[2023]1号", "虚示政办发〔2023〕1号"),
    ("虚示政办发【2023】12号", "虚示政办发〔2023〕12号"),
    ("（虚示发［2021］ 3 号）", "虚示发〔2021〕3号"),
    ("no number here", ""),
])
def test_doc_no_variants(text: str, expected: str) -> None:
    assert normalize_doc_no(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("2023年1月20日", "2023-01-20"),
    ("二〇二三年一月二十日", "2023-01-20"),
    ("二○二二年十二月三十一日", "2022-12-31"),
    ("2023年2月30日", ""),
    ("发布日期：2023-01-29", "2023-01-29"),
])
def test_dates(text: str, expected: str) -> None:
    assert parse_date(text) == expected


@pytest.mark.parametrize("issuer, level", [
    ("国务院办公厅", "national"),
    ("工业和信息化部", "national"),
    ("江苏省人民政府办公厅", "provincial"),
    ("虚构示例省市场监督管理局", "provincial"),
    ("北京市人民政府", "provincial"),
    ("虚构示例市工业和信息化局", "municipal"),
    ("虚构示例市海州区人民政府", "county"),
    ("虚构示例县人民政府", "county"),
    ("虚构示例经济技术开发区管理委员会", ""),
    ("虚构示例省财政厅、虚构示例市财政局", ""),
    ("办公室", ""),
])
def test_level_guess(issuer: str, level: str) -> None:
    assert guess_level(issuer) == level


def test_overrides_validated_and_applied() -> None:
    data = NOTICE.encode("utf-8")
    result = ingest_bytes(data, "notice.txt", {"level": "provincial", "region": "虚构示例市", "status": "effective",
                                               "valid_from": "2023-02", "doc_type": "通知", "issuer": None})
    assert result.meta["level"] == "provincial" and result.meta["region"] == "虚构示例市"
    assert result.meta["issuer"] == "虚构示例市人民政府办公室"
    assert "status" not in result.missing and result.missing == ()
    for bad, message in (({"level": "city"}, "level 'city' is not one of national"),
                         ({"status": "active"}, "status 'active' is not one of"),
                         ({"published": "2023-13-01"}, "published '2023-13-01' is not a date"),
                         ({"published": "2023/1/2"}, "not a date written YYYY"),
                         ({"valid_from": "2024", "valid_until": "2023"}, "before valid_from"),
                         ({"colour": "red"}, "unknown metadata field 'colour'")):
        with pytest.raises(IngestError, match=f"notice.txt: .*{message}"):
            ingest_bytes(data, "notice.txt", bad)


# ---------------------------------------------------------------- docx

def _make_docx(path: Path) -> None:
    import docx

    document = docx.Document()
    document.add_paragraph("虚构示例市中小企业培育行动计划", style="Title")
    document.add_paragraph("（本文件为虚构示例，仅用于软件测试。）")
    document.add_heading("一、总体要求", level=1)
    document.add_paragraph("到２０２５年，培育一批创新型中小企业，具体目标如下：")
    table = document.add_table(rows=3, cols=2)
    for r, (a, b) in enumerate((("指标", "目标"), ("创新型中小企业", "100家"), ("专精特新企业", "30|家"))):
        table.cell(r, 0).text = a
        table.cell(r, 1).text = b
    document.add_heading("二、主要任务", level=1)
    document.add_heading("（一）数字化转型", level=2)
    document.add_paragraph("推动企业上云用数。", style="List Number")
    document.add_paragraph("2. 开展诊断服务。", style="List Number")
    document.add_paragraph("虚构示例市工业和信息化局")
    document.add_paragraph("2023年4月1日")
    document.save(str(path))


def test_docx(tmp_path: Path) -> None:
    path = tmp_path / "plan.docx"
    _make_docx(path)
    result = ingest_file(path)
    assert result.meta["title"] == "虚构示例市中小企业培育行动计划"
    assert result.meta["issuer"] == "虚构示例市工业和信息化局"
    assert result.meta["published"] == "2023-04-01"
    assert result.meta["level"] == "municipal"
    lines = [line for line in result.body.splitlines() if line]
    assert lines[1:9] == [
        "# 一、总体要求",
        "到2025年，培育一批创新型中小企业，具体目标如下：",
        "| 指标 | 目标 |",
        "| --- | --- |",
        "| 创新型中小企业 | 100家 |",
        "| 专精特新企业 | 30\\|家 |",
        "# 二、主要任务",
        "## （一）数字化转型",
    ]
    assert "推动企业上云用数。" in lines and "2. 开展诊断服务。" in lines
    assert any("automatic numbering" in w and w.startswith("1 ") for w in result.warnings)


def test_broken_docx_refused(tmp_path: Path) -> None:
    path = tmp_path / "broken.docx"
    path.write_bytes(b"this is not a zip package")
    with pytest.raises(IngestError, match=r"broken\.docx: not a \.docx"):
        ingest_file(path)


# ---------------------------------------------------------------- html

# 虚构示例: a page as a government site would save it, with its furniture around the article.
PAGE = """<!DOCTYPE html>
<html><head>
<meta http-equiv="Content-Type" content="text/html; charset=gb2312">
<title>{title}_政策文件_虚构示例市人民政府</title>
<script>var menu = "首页 上一篇 打印";</script>
<style>.nav {{ color: red }}</style>
</head><body>
<div class="header"><h1>虚构示例市人民政府</h1>
<ul class="nav"><li><a href="/">首页</a></li><li><a href="/zwgk">政务公开</a></li></ul></div>
<div class="position">当前位置：首页 &gt; 政务公开 &gt; 政策文件</div>
<table class="xxgk"><tr><td>发文机关：</td><td>虚构示例市人民政府办公室</td>
<td>发文字号：</td><td>虚示政办发[2023]7号</td></tr>
<tr><td>成文日期：</td><td>2023年01月20日</td><td>发布日期：</td><td>2023-01-29</td></tr></table>
<div class="article">
<h1 class="article-title">{title}</h1>
<div class="bdsharebuttonbox">分享到：微信 微博</div>
<div id="zoom" class="TRS_Editor">
<p>各县（区）人民政府，市各委办局：</p>
<p>&nbsp;&nbsp;现将《虚构示例市中小企业培育行动计划》印发给你们，
请认真贯彻执行。（本页面为虚构示例，仅用于软件测试。）</p>
<p><strong>一、总体要求</strong></p>
<p>　　（一）到２０２５年，培育一批创新型中小企业。</p>
<table border="1"><tr><th>指标</th><th>目标</th></tr>
<tr><td>创新型中小企业</td><td>100家</td></tr><tr><td colspan="2">合计另行统计</td></tr></table>
<p>二、保障措施<br>各部门要加强协同，抓好落实。</p>
<p style="text-align:right">虚构示例市人民政府办公室</p>
<p style="text-align:right">2023年1月20日</p>
</div>
<div class="prev-next"><p>上一篇：关于某事的通知</p><p>下一篇：关于另一事的通知</p></div>
<div class="print"><a href="javascript:window.print()">【打印本页】</a>
<a href="javascript:window.close()">【关闭窗口】</a></div>
</div>
<div class="footer">版权所有：虚构示例市人民政府 网站标识码：0000000000</div>
</body></html>
"""


def test_saved_gbk_html_page(tmp_path: Path) -> None:
    path = tmp_path / "page.htm"
    path.write_bytes(PAGE.format(title=NOTICE_TITLE).encode("gbk"))
    result = ingest_file(path)
    meta = result.meta
    assert meta["title"] == NOTICE_TITLE
    assert meta["doc_no"] == "虚示政办发〔2023〕7号"
    assert meta["issuer"] == "虚构示例市人民政府办公室"
    assert meta["published"] == "2023-01-20"
    assert meta["level"] == "municipal"
    body = result.body
    for noise in ("首页", "当前位置", "分享", "上一篇", "下一篇", "打印", "关闭", "版权所有", "var menu", "color",
                  "政务公开", NOTICE_TITLE):
        assert noise not in body, noise
    lines = [line for line in body.splitlines() if line]
    assert lines[0] == "各县（区）人民政府，市各委办局："
    assert lines[1] == ("现将《虚构示例市中小企业培育行动计划》印发给你们，请认真贯彻执行。"
                        "（本页面为虚构示例，仅用于软件测试。）")
    assert lines[2:9] == [
        "一、总体要求",
        "（一）到2025年，培育一批创新型中小企业。",
        "| 指标 | 目标 |",
        "| --- | --- |",
        "| 创新型中小企业 | 100家 |",
        "| 合计另行统计 |  |",
        "二、保障措施",
    ]
    assert lines[-2:] == ["虚构示例市人民政府办公室", "2023年1月20日"]


def test_html_without_known_container(tmp_path: Path) -> None:
    # 虚构示例: a UTF-8 page with no charset declaration and unknown class names.
    page = ("<html><head><title>虚构示例公告</title></head><body>"
            "<div class='wrap'><div class='menu'><a href='/'>首页</a> <a href='/x'>新闻中心</a></div>"
            "<div class='box'><p>第一段虚构示例文字，用于测试正文识别。</p><p>第二段虚构示例文字，同样用于测试。</p>"
            "<p>第三段虚构示例文字。</p></div>"
            "<div class='bottom'>联系我们 | 网站地图</div></div></body></html>")
    result = ingest_bytes(page.encode("utf-8"), "plain.html")
    assert result.meta["title"] == "虚构示例公告"
    assert result.body.splitlines()[0] == "第一段虚构示例文字，用于测试正文识别。"
    assert "首页" not in result.body and "网站地图" not in result.body
    assert any("no known article container" in w for w in result.warnings)


# ---------------------------------------------------------------- pdf

RUNNING_HEADER = "虚构示例市人民政府公报（虚构示例，仅供测试）"
# 虚构示例: two long made-up paragraphs, wrapped at a fixed width as a PDF would.
PARA_1 = ("为加快培育创新能力强、专注细分市场的中小企业，推动产业链供应链提质增效，"
          "结合本市实际情况和发展需要，制定本行动计划（本文件为虚构示例，仅用于软件测试，不是真实政策）。")
PARA_2 = ("坚持政府引导和企业主体相结合，强化政策供给和精准服务，支持企业坚定信心聚焦主业精耕细作，"
          "推动企业加快技术创新和管理创新，提升全要素生产率，实现质量效益双提升的虚构示例目标。")


def _wrap(text: str, width: int = 28) -> list[str]:
    lines = [text[i:i + width] for i in range(0, len(text), width)]
    assert not any(line[-1] in "。！？：；" for line in lines[:-1]), "fixture must wrap inside sentences"
    return lines


def _make_pdf(path: Path, pages: list[list[str]], *, header: str | None = RUNNING_HEADER,
              numbers: bool = True) -> None:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    pdf = canvas.Canvas(str(path), pagesize=A4)
    for number, lines in enumerate(pages, 1):
        if header:
            pdf.setFont("STSong-Light", 9)
            pdf.drawCentredString(297, 810, header)
        pdf.setFont("STSong-Light", 14)
        y = 770
        for line in lines:
            pdf.drawString(60, y, line)
            y -= 24
        if numbers:
            pdf.setFont("STSong-Light", 9)
            pdf.drawCentredString(297, 30, f"- {number} -")
        pdf.showPage()
    pdf.save()


def test_pdf_with_text_layer(tmp_path: Path) -> None:
    wrapped_2 = _wrap(PARA_2)
    page_1 = ["虚示政办发〔2023〕7号", "虚构示例市人民政府办公室关于印发", "虚构示例市中小企业培育行动计划的通知",
              "各县（区）人民政府，市各委办局：", *_wrap(PARA_1), "一、总体要求", *wrapped_2[:2]]
    page_2 = [*wrapped_2[2:], "（一）到２０２５年，培育创新型中小企业１００家。",
              "虚构示例市人民政府办公室", "２０２３年１月２０日"]
    path = tmp_path / "notice.pdf"
    _make_pdf(path, [page_1, page_2])

    from pypdf import PdfReader  # the fixture really carries Chinese text
    assert "培育行动计划" in (PdfReader(str(path)).pages[0].extract_text() or "")

    result = ingest_file(path)
    meta = result.meta
    assert meta["title"] == NOTICE_TITLE
    assert meta["doc_no"] == "虚示政办发〔2023〕7号"
    assert meta["published"] == "2023-01-20"
    assert meta["issuer"] == "虚构示例市人民政府办公室"
    lines = [line for line in result.body.splitlines() if line]
    assert lines == [
        "虚示政办发〔2023〕7号",
        "各县（区）人民政府，市各委办局：",
        PARA_1,  # wrapped lines joined without spaces
        "一、总体要求",
        PARA_2,  # joined across the page break
        "（一）到2025年，培育创新型中小企业100家。",
        "虚构示例市人民政府办公室",
        "2023年1月20日",
    ]
    assert "公报" not in result.body and "- 1 -" not in result.body
    assert any("running header" in w for w in result.warnings)


def test_pdf_join_rules() -> None:
    lines = ["第一条　这是一行很长很长很长很长的虚构示例条款文字，它在这里", "换行了，应当接上。", "第二条　另一条。",
             "1. 编号项目", "（2）另一编号项", "结尾没有标点的长长长长长长长长长长长长长长长长长长长长长行",
             "继续。"]
    assert join_lines(lines) == [
        "第一条　这是一行很长很长很长很长的虚构示例条款文字，它在这里换行了，应当接上。",
        "第二条　另一条。",
        "1. 编号项目",
        "（2）另一编号项",
        "结尾没有标点的长长长长长长长长长长长长长长长长长长长长长行继续。",
    ]


def test_running_lines_and_page_number_styles() -> None:
    pages = [
        ["虚构示例期刊 2023年第3期", "正文第一页。", "第 1 页 共 3 页"],
        ["2", "虚构示例期刊 2023年第3期", "正文第二页。", "第 2 页 共 3 页"],
        ["虚构示例期刊 2023年第3期", "正文第三页。", "— 3 —"],
    ]
    cleaned, removed = strip_running_lines(pages)
    assert cleaned == [["正文第一页。"], ["正文第二页。"], ["正文第三页。"]]
    assert removed == 7


def test_scanned_pdf_refused(tmp_path: Path) -> None:
    from reportlab.pdfgen import canvas

    path = tmp_path / "scan.pdf"
    pdf = canvas.Canvas(str(path))
    pdf.rect(50, 50, 400, 600, fill=1)  # a picture of a page, no text
    pdf.showPage()
    pdf.drawString(100, 700, "   ")  # whitespace only
    pdf.showPage()
    pdf.save()
    with pytest.raises(IngestError, match=r"scan\.pdf: .*no text layer.*scanned.*OCR is not available"):
        ingest_file(path)


def test_not_a_pdf_refused(tmp_path: Path) -> None:
    path = tmp_path / "fake.pdf"
    path.write_text("hello", encoding="utf-8")
    with pytest.raises(IngestError, match=r"fake\.pdf: not a PDF"):
        ingest_file(path)


# ---------------------------------------------------------------- md and writing

def test_markdown_copied_or_refused(tmp_path: Path) -> None:
    text = "---\ntitle: 虚构示例文件\nissuer: 虚构示例局\nlevel: county\n---\n\n第一条　虚构示例。\n"
    path = tmp_path / "Ready Doc.md"
    path.write_text(text, encoding="utf-8")
    result = ingest_file(path)
    assert result.doc_text == text
    assert result.suggested_name == "ready-doc"
    assert set(result.missing) == {"doc_no", "published", "status"}
    changed = ingest_file(path, {"status": "effective"})
    assert "status: effective" in changed.doc_text and "第一条　虚构示例。" in changed.body
    plain = tmp_path / "plain.md"  # Markdown without front matter is read as text, not refused
    plain.write_text("虚构示例通知\n\n一、虚构示例内容，仅用于测试。\n", encoding="utf-8")
    assert ingest_file(plain).meta["title"] == "虚构示例通知"
    for bad, message in (("---\nissuer: x\n---\nbody\n", "no 'title'"),
                         ("---\ntitle: t\nlevel: city\n---\nbody\n", "level 'city'")):
        path.write_text(bad, encoding="utf-8")
        with pytest.raises(IngestError, match=message):
            ingest_file(path)


def test_write_to_corpus(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    result = ingest_bytes(NOTICE.encode("utf-8"), "notice.txt")
    target = write_to_corpus(result, corpus)
    assert target.parent == corpus and target.suffix == ".md"
    assert target.name == f"{result.suggested_name}.md" and target.name.isascii()
    assert target.read_text(encoding="utf-8") == result.doc_text
    assert write_to_corpus(result, corpus) == target  # identical: nothing to do
    other = ingest_bytes(NOTICE.encode("utf-8"), "notice.txt", {"status": "effective"})
    with pytest.raises(IngestError, match="already exists with different content"):
        write_to_corpus(other, corpus)
    assert target.read_text(encoding="utf-8") == result.doc_text
    write_to_corpus(other, corpus, overwrite=True)
    assert "status: effective" in target.read_text(encoding="utf-8")
    assert sorted(os.listdir(corpus)) == [".trash", target.name]  # no temporary files left behind
    (kept,) = (corpus / ".trash").iterdir()  # the replaced text is kept, as `remove` keeps it
    assert kept.read_text(encoding="utf-8") == result.doc_text


# ---------------------------------------------------------------- command

def test_add_command(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    gbk = tmp_path / "a.txt"
    gbk.write_bytes(NOTICE.encode("gbk"))
    docx_path = tmp_path / "b.docx"
    _make_docx(docx_path)
    runner = CliRunner()

    result = runner.invoke(add, [str(gbk), str(docx_path), "--corpus", str(corpus), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert not corpus.exists()
    assert "dry run" in result.stdout

    result = runner.invoke(add, [str(gbk), str(docx_path), "--corpus", str(corpus), "--status", "effective"])
    assert result.exit_code == 0, result.output
    assert len(list(corpus.glob("*.md"))) == 2
    assert "doc_no: 虚示政办发〔2023〕7号" in result.stdout
    assert "not found: doc_no" in result.stdout  # the docx has no 文号
    assert "kb build" in result.stdout

    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    fresh = tmp_path / "fresh"
    result = runner.invoke(add, [str(gbk), str(empty), "--corpus", str(fresh)])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [f"kb: error: {empty}: the file is empty (nothing was written)"]
    assert "Traceback" not in result.output
    assert not fresh.exists()

    result = runner.invoke(add, [str(gbk), str(docx_path), "--title", "x", "--corpus", str(fresh)])
    assert result.exit_code == 2 and "--title" in result.stderr

    result = runner.invoke(add, [str(gbk), "--published", "20230120", "--corpus", str(fresh)])
    assert result.exit_code == 2 and "published '20230120' is not a date" in result.stderr
