"""A markdown report as one self-contained HTML page: tables rendered, every local image embedded.

The page carries its PNGs and GIFs as base64 data URIs, so it can be mailed or archived as one file.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

CSS = """body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}th,td{border:1px solid #ccc;padding:.3em .6em}
th{background:#f2f2f2}code,pre{background:#f6f6f6;font-size:.88em}pre{padding:.8em;overflow-x:auto}
img{max-width:100%}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}"""


def to_html(md: str, root: Path) -> str:
    """One self-contained HTML page: markdown rendered, every local image embedded as a data URI."""
    import markdown

    body = markdown.markdown(md, extensions=["tables", "fenced_code", "md_in_html"])
    kinds = {".png": "image/png", ".gif": "image/gif", ".jpg": "image/jpeg", ".svg": "image/svg+xml"}

    def embed(match: re.Match[str]) -> str:
        path = root / match.group(1)
        if not path.is_file() or path.suffix not in kinds:
            return match.group(0)
        data = base64.b64encode(path.read_bytes()).decode()
        return f'src="data:{kinds[path.suffix]};base64,{data}"'

    body = re.sub(r'src="(?!data:|https?:)([^"]+)"', embed, body)
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>DriveGPT pipeline report</title><style>{CSS}</style></head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )
