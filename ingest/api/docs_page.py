"""The API's browsable page (`GET /docs`): the OpenAPI document (ingest/api/openapi.py) rendered as HTML
on the server — the operations by tag, each with its parameters, request body and answers, then every
schema with its properties — in one self-contained page: no script, no CDN, no request beyond itself,
so it works offline and under a `default-src 'none'` Content-Security-Policy. Every text from the
document is escaped."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:70rem;padding:1rem 2rem;color:#1d1d1f}
code,.m{font-family:ui-monospace,monospace;font-size:.92em}
details{border:1px solid #d6d6da;border-radius:6px;margin:.4rem 0;padding:.3rem .6rem}
summary{cursor:pointer}
.m{display:inline-block;min-width:4.2em;font-weight:700;color:#fff;border-radius:4px;text-align:center;padding:0 .3em}
.get{background:#2f6fb3}.post{background:#2e8b57}.patch{background:#b8860b}.delete{background:#b22222}
table{border-collapse:collapse;margin:.3rem 0}td,th{border-bottom:1px solid #e3e3e6;padding:.2rem .6rem;
text-align:left;vertical-align:top}
nav a{margin-right:.8rem}
"""
METHODS = ("get", "post", "put", "patch", "delete")


def render(doc: Mapping[str, Any]) -> str:
    """The page of `doc`, an OpenAPI 3.1 document."""
    info = doc.get("info", {})
    by_tag: dict[str, list[tuple[str, str, Mapping[str, Any]]]] = {}
    for path, item in doc.get("paths", {}).items():
        for method in METHODS:
            if method in item:
                op = item[method]
                by_tag.setdefault((op.get("tags") or ["Other"])[0], []).append((method, path, op))
    title = escape(str(info.get("title", "API")))
    out = [f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{title}</title>",
           f"<style>{STYLE}</style></head><body><h1>{title} <small>{escape(str(info.get('version', '')))}</small>"
           f"</h1><p>{escape(str(info.get('description', '')))}</p>",
           '<p>The machine-readable document: <a href="/openapi.json">/openapi.json</a>.</p><nav>',
           *(f'<a href="#tag-{_anchor(tag)}">{escape(tag)}</a>' for tag in by_tag),
           '<a href="#schemas">Schemas</a></nav>']
    for tag, operations in by_tag.items():
        out.append(f'<h2 id="tag-{_anchor(tag)}">{escape(tag)}</h2>')
        out.extend(_operation(method, path, op, doc) for method, path, op in operations)
    out.append('<h2 id="schemas">Schemas</h2>')
    for name, schema in doc.get("components", {}).get("schemas", {}).items():
        out.append(f'<h3 id="schema-{_anchor(name)}">{escape(name)}</h3>{_schema(schema)}')
    out.append("</body></html>")
    return "\n".join(out)


def _anchor(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name)


def _operation(method: str, path: str, op: Mapping[str, Any], doc: Mapping[str, Any]) -> str:
    parts = [f'<details><summary><span class="m {method}">{method.upper()}</span> <code>{escape(path)}</code> '
             f"{escape(str(op.get('summary', '')))}</summary>"]
    if op.get("security") == []:
        parts.append("<p>No token needed.</p>")
    params = [_resolve(p, doc) for p in op.get("parameters", [])]
    if params:
        rows = "".join(f"<tr><td><code>{escape(p['name'])}</code></td><td>{escape(p['in'])}</td>"
                       f"<td>{'required' if p.get('required') else ''}</td><td>{_type(p.get('schema', {}))}</td>"
                       f"<td>{escape(str(p.get('description', '')))}</td></tr>" for p in params)
        parts.append(f"<h4>Parameters</h4><table>{rows}</table>")
    for media, content in op.get("requestBody", {}).get("content", {}).items():
        parts.append(f"<h4>Body <code>{escape(media)}</code></h4>{_schema(content.get('schema', {}))}")
    answers = []
    for status, response in op.get("responses", {}).items():
        r = _resolve(response, doc)
        shown = [_type(c.get("schema", {})) for c in r.get("content", {}).values()]
        answers.append(f"<tr><td>{escape(status)}</td><td>{escape(str(r.get('description', '')))}</td>"
                    f"<td>{' '.join(shown)}</td></tr>")
    parts.append(f"<h4>Answers</h4><table>{''.join(answers)}</table></details>")
    return "".join(parts)


def _resolve(item: Mapping[str, Any], doc: Mapping[str, Any]) -> Mapping[str, Any]:
    """A `$ref` within the document followed (one level: the document's references are not chained)."""
    target = item.get("$ref")
    if not isinstance(target, str) or not target.startswith("#/"):
        return item
    found: Any = doc
    for key in target[2:].split("/"):
        found = found.get(key, {}) if isinstance(found, Mapping) else {}
    return found if isinstance(found, Mapping) else {}


def _schema(schema: Mapping[str, Any]) -> str:
    """A schema as a table of its properties when it is an object, else its type."""
    props = schema.get("properties")
    if schema.get("type") != "object" or not isinstance(props, Mapping) or not props:
        return f"<p>{_type(schema)}</p>"
    required = set(schema.get("required", []))
    rows = "".join(f"<tr><td><code>{escape(name)}</code></td><td>{'required' if name in required else ''}</td>"
                   f"<td>{_type(sub)}</td><td>{escape(str(sub.get('description', '')))}</td></tr>"
                   for name, sub in props.items())
    closed = "" if schema.get("additionalProperties") is not False else "<p>No other properties.</p>"
    return f"<table>{rows}</table>{closed}"


def _type(schema: Mapping[str, Any]) -> str:
    """A short HTML description of a schema's type and constraints; references as links."""
    target = schema.get("$ref")
    if isinstance(target, str):
        name = target.rsplit("/", 1)[-1]
        return f'<a href="#schema-{_anchor(name)}">{escape(name)}</a>'
    for combinator, word in (("anyOf", " or "), ("oneOf", " or "), ("allOf", " and ")):
        if combinator in schema:
            return word.join(_type(s) for s in schema[combinator])
    if "const" in schema:
        return f"<code>{escape(repr(schema['const']))}</code>"
    if "enum" in schema:
        return "one of " + ", ".join(f"<code>{escape('null' if v is None else str(v))}</code>" for v in schema["enum"])
    if "type" not in schema and isinstance(schema.get("properties"), Mapping):  # a constraint within allOf
        return "with " + ", ".join(f"<code>{escape(k)}</code> {_type(v)}" for k, v in schema["properties"].items())
    kind = schema.get("type", "any")
    text = " or ".join(kind) if isinstance(kind, list) else str(kind)
    if kind == "array":
        text = f"array of {_type(schema.get('items', {}))}"
        return text + _limits(schema, ("minItems", "maxItems"))
    if kind == "object" and isinstance(schema.get("properties"), Mapping):
        return "object " + _schema(schema)
    return escape(text) + _limits(schema, ("format", "pattern", "minLength", "maxLength", "minimum", "maximum"))


def _limits(schema: Mapping[str, Any], keys: tuple[str, ...]) -> str:
    found = [f"{key} {escape(str(schema[key]))}" for key in keys if key in schema]
    return f" <small>({'; '.join(found)})</small>" if found else ""
