"""Jinja2 templates for every packet file: one environment, agency overrides first, escaping always on."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from archiver.errors import ExportError

from .redact import LABEL_RE

PACKET_TEMPLATE = "packet.html"
CERTIFICATION_TEMPLATE = "certification.txt.j2"


def letter_template(law: str) -> str:
    """The cover letter's template name for a law ('kora' -> 'cover-letter-kora.html')."""
    return f"cover-letter-{law.lower()}.html"


def _redacted(value: Any) -> Markup:
    # Escape first, then style the labels: a label is plain text the redactor wrote, so wrapping it
    # after escaping can never un-escape anything the record contained.
    text = str(escape("" if value is None else value))
    return Markup(LABEL_RE.sub(lambda m: f'<span class="rl">{m.group(0)}</span>', text))


def _css_string(value: Any) -> Markup:
    # Values go inside a CSS "..." string; hex-escaping everything but plain characters keeps quotes,
    # backslashes and newlines in an agency name from ending the string or the style element.
    out = []
    for ch in str(value):
        if ch.isalnum() or ch in " .,-_()/:":
            out.append(ch)
        else:
            out.append(f"\\{ord(ch):06x}")
    return Markup("".join(out))


def make_env(template_dirs: Sequence[Path] = ()) -> jinja2.Environment:
    """Templates from the agency's directories first, then the packaged ones; undefined names are errors."""
    loaders: list[jinja2.BaseLoader] = []
    dirs = [str(Path(d)) for d in template_dirs if d]
    if dirs:
        loaders.append(jinja2.FileSystemLoader(dirs))
    loaders.append(jinja2.FileSystemLoader(str(files("archiver.templates"))))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=jinja2.select_autoescape(disabled_extensions=("txt", "txt.j2"), default_for_string=True,
                                            default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=False,
        keep_trailing_newline=True,
    )
    env.filters["redacted"] = _redacted
    env.filters["css_string"] = _css_string
    return env


def check_templates(env: jinja2.Environment, names: Sequence[str]) -> None:
    """Load every template the export needs before any rendering, so a broken override fails fast."""
    for name in names:
        try:
            env.get_template(name)
        except jinja2.TemplateNotFound as exc:
            raise ExportError(f"template {exc.name!r} not found (packaged or in the agency's templates)") from None
        except jinja2.TemplateSyntaxError as exc:
            raise ExportError(f"template {exc.filename or exc.name}: line {exc.lineno}: {exc.message}") from None


def render(env: jinja2.Environment, name: str, context: Mapping[str, Any]) -> str:
    """Render one template; any template error becomes an ExportError naming the template and line."""
    try:
        return env.get_template(name).render(**context)
    except jinja2.TemplateSyntaxError as exc:
        raise ExportError(f"template {exc.filename or exc.name}: line {exc.lineno}: {exc.message}") from None
    except jinja2.TemplateError as exc:
        raise ExportError(f"template {name}: {exc}") from None
