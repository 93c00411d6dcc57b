"""LLM prices per provider and model, versioned by date, and the cost of a call.

The table ships with list-price defaults (``prices.yaml`` beside this module, read when
:meth:`PriceTable.load` is called, never at import) and takes rows from the settings file's
``prices:`` section. A price change adds a row with a later ``effective_from``: the cost of a
call is computed with the row in force on the call's (UTC) date, so past cost never changes.

Token convention (OpenAI's usage and the OpenTelemetry GenAI ``gen_ai.usage.input_tokens``):
``input_tokens`` counts *every* prompt token, cached or not; ``cached_input_tokens`` is the part
of them read from the provider's cache. So the cost is::

    (input_tokens - cached_input_tokens) * input
    + cached_input_tokens * cached_input
    + output_tokens * output            (all per million tokens)

Anthropic reports cache reads beside ``input_tokens`` (not inside it): add them to
``input_tokens`` before calling. Reasoning tokens are part of ``output_tokens`` (as OpenAI
reports them). Costs are computed exactly (integer arithmetic over the rates' common
denominator) and rounded once to a float.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from functools import cached_property
from importlib import resources
from typing import Any

import yaml

__all__ = [
    "FIELDS",
    "Price",
    "PriceConfigError",
    "PriceTable",
    "normalize_model",
    "provider_family",
]

FIELDS = ("provider", "model", "input", "output", "cached_input", "effective_from")
REQUIRED = ("provider", "model", "input", "output", "effective_from")
PER_TOKENS = 1_000_000

# gen_ai.provider.name / the older gen_ai.system values, OpenInference llm.provider values
# and common spellings → the family whose list prices apply.
PROVIDER_ALIASES: dict[str, str] = {
    "openai": "openai",
    "azure.ai.openai": "openai",
    "az.ai.openai": "openai",
    "azure_openai": "openai",
    "azure-openai": "openai",
    "azure": "openai",
    "anthropic": "anthropic",
    "claude": "anthropic",
    "google": "google",
    "gemini": "google",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "vertex_ai": "google",
    "vertexai": "google",
    "google_genai": "google",
    "mistral": "mistral",
    "mistral_ai": "mistral",
    "mistralai": "mistral",
}
# Hosts that serve several makers' models: the maker is read from the model id.
MULTI_VENDOR = {"aws.bedrock", "bedrock", "azure.ai.inference", "openrouter", "litellm"}

# Bedrock ids: [region.]vendor.model[-vN:M], e.g. us.anthropic.claude-3-5-sonnet-20241022-v2:0
_BEDROCK_ID = re.compile(r"^(?:(?:us|eu|apac|us-gov|global)\.)?(anthropic|mistral|openai)\.(.+)$")
_DATE_SUFFIXES = (
    re.compile(r"@.*$"),  # Vertex AI: claude-3-5-sonnet@20240620
    re.compile(r"-v\d+(?::\d+)?$"),  # Bedrock: -v1:0
    re.compile(r"-latest$"),
    re.compile(r"-\d{4}-\d{2}-\d{2}$"),  # OpenAI: -2024-08-06
    re.compile(r"-\d{8}$"),  # Anthropic: -20241022
    re.compile(r"-\d{4}$"),  # OpenAI -0125, Mistral -2411
    re.compile(r"-\d{3}$"),  # Gemini -001, -002
)
_NAME_FAMILIES = (
    (re.compile(r"^(gpt-|chatgpt-|o\d(?:-|$))"), "openai"),
    (re.compile(r"^claude"), "anthropic"),
    (re.compile(r"^gemini"), "google"),
    (re.compile(r"^(mistral|open-mistral|codestral|ministral|pixtral|magistral)"), "mistral"),
)
_BOUNDARY = "-.:@_"  # a prefix match must end at one of these (gpt-4 is no prefix of gpt-4o)
_CACHE_SIZE = 4096  # distinct (provider, model) names and (model, day) pairs remembered
_UNSEEN: Any = object()


class PriceConfigError(ValueError):
    """Invalid price rows; every problem names its row and field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems

    def lines(self) -> list[str]:
        return list(self.problems)


@dataclass(frozen=True)
class Price:
    """One price period of one model, in USD per million tokens."""

    provider: str  # the family: openai, anthropic, google, mistral, or as written
    model: str
    input: Decimal
    output: Decimal
    cached_input: Decimal
    effective_from: date
    source: str = "defaults"  # "defaults" or "settings"

    def cost(self, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0) -> float:
        """USD for one call; ``cached_input_tokens`` is part of ``input_tokens``."""
        for name, value in (
            ("input_tokens", input_tokens),
            ("output_tokens", output_tokens),
            ("cached_input_tokens", cached_input_tokens),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        if cached_input_tokens > input_tokens:
            raise ValueError(
                f"cached_input_tokens ({cached_input_tokens}) is part of input_tokens"
                f" ({input_tokens}) and cannot exceed it"
            )
        a, b, c, denominator = self._scaled
        total = (
            a * (input_tokens - cached_input_tokens) + b * cached_input_tokens + c * output_tokens
        )
        return total / denominator  # int / int: the exact quotient rounded once

    @cached_property
    def _scaled(self) -> tuple[int, int, int, int]:
        """The three rates as integers over one common denominator (per token): integer
        arithmetic is exact, and Python's int / int is correctly rounded, so the cost equals
        ``float(Fraction)`` of the exact sum without building fractions per call."""
        rates = [Fraction(r) for r in (self.input, self.cached_input, self.output)]
        common = math.lcm(*(r.denominator for r in rates))
        a, b, c = (r.numerator * (common // r.denominator) for r in rates)
        return a, b, c, common * PER_TOKENS


def provider_family(provider: str | None) -> str | None:
    """The price family of a provider name (``azure.ai.openai`` → ``openai``); ``None`` for
    none, for hosts of several makers (``aws.bedrock``) and unknown names stay as written."""
    if not provider:
        return None
    key = provider.strip().lower()
    if key in MULTI_VENDOR:
        return None
    return PROVIDER_ALIASES.get(key, key)


def _strip_prefix(model: str) -> tuple[str, str | None]:
    """Lower-case, without ``openai/``-style and Bedrock ``us.anthropic.`` prefixes; the vendor
    the prefix named, if any."""
    name = model.strip().lower()
    vendor = None
    if "/" in name:
        head, name = name.rsplit("/", 1)
        vendor = PROVIDER_ALIASES.get(head.split("/")[-1])
    bedrock = _BEDROCK_ID.match(name)
    if bedrock:
        vendor, name = bedrock.group(1), bedrock.group(2)
    return name, vendor


def normalize_model(model: str) -> str:
    """``OpenAI/GPT-4o-2024-08-06`` → ``gpt-4o``: lower-case, no provider prefix, no date or
    version suffix."""
    name, _ = _strip_prefix(model)
    changed = True
    while changed:
        changed = False
        for pattern in _DATE_SUFFIXES:
            stripped = pattern.sub("", name)
            if stripped != name and stripped:
                name, changed = stripped, True
    return name


def _family_from_name(name: str) -> str | None:
    for pattern, family in _NAME_FAMILIES:
        if pattern.match(name):
            return family
    return None


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() and number >= 0 else None


def _parse_row(row: Any, where: str, source: str, problems: list[str]) -> Price | None:
    if not isinstance(row, Mapping):
        problems.append(f"{where}: must be a mapping of {', '.join(FIELDS)}")
        return None
    label = f"{where} ({row.get('provider')} {row.get('model')})"
    before = len(problems)
    for key in row:
        if key not in FIELDS:
            problems.append(f"{label}: {key}: unknown field; known: {', '.join(FIELDS)}")
    for key in REQUIRED:
        if row.get(key) is None:
            problems.append(f"{label}: {key}: required")
    for key in ("provider", "model"):
        value = row.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            problems.append(f"{label}: {key}: must be a non-empty string, got {value!r}")
    numbers: dict[str, Decimal] = {}
    for key in ("input", "output", "cached_input"):
        if row.get(key) is None:
            continue
        number = _decimal(row[key])
        if number is None:
            problems.append(
                f"{label}: {key}: must be a number >= 0 (USD per million tokens), got {row[key]!r}"
            )
        else:
            numbers[key] = number
    if "input" in numbers and numbers.get("cached_input", numbers["input"]) > numbers["input"]:
        problems.append(f"{label}: cached_input: must not exceed input ({numbers['input']})")
    when = row.get("effective_from")
    if isinstance(when, str):
        with contextlib.suppress(ValueError):
            when = date.fromisoformat(when)
    if when is not None and (isinstance(when, datetime) or not isinstance(when, date)):
        problems.append(f"{label}: effective_from: must be a date YYYY-MM-DD, got {when!r}")
    if len(problems) > before:
        return None
    assert isinstance(when, date)
    name, vendor = _strip_prefix(str(row["model"]))
    family = provider_family(str(row["provider"])) or vendor or _family_from_name(name)
    return Price(
        provider=family or str(row["provider"]).strip().lower(),
        model=name,
        input=numbers["input"],
        output=numbers["output"],
        cached_input=numbers.get("cached_input", numbers["input"]),
        effective_from=when,
        source=source,
    )


def parse_rows(rows: Any, source: str = "settings", name: str = "prices") -> list[Price]:
    """Validated rows; :class:`PriceConfigError` lists every problem as ``prices[I] (provider
    model): field: reason``."""
    if rows is None:
        return []
    if not isinstance(rows, list):
        raise PriceConfigError([f"{name}: must be a list of rows ({', '.join(FIELDS)})"])
    problems: list[str] = []
    parsed: list[Price] = []
    seen: dict[tuple[str, str, date], int] = {}
    for i, row in enumerate(rows):
        price = _parse_row(row, f"{name}[{i}]", source, problems)
        if price is None:
            continue
        key = (price.provider, price.model, price.effective_from)
        if key in seen:
            problems.append(
                f"{name}[{i}] ({price.provider} {price.model}): effective_from: "
                f"{price.effective_from} repeats {name}[{seen[key]}]"
            )
        seen[key] = i
        parsed.append(price)
    if problems:
        raise PriceConfigError(problems)
    return parsed


def default_rows() -> list[Price]:
    """The shipped list-price defaults (``prices.yaml``)."""
    text = resources.files("watchkeeper.llm").joinpath("prices.yaml").read_text("utf-8")
    doc = yaml.safe_load(text)
    return parse_rows(doc["prices"], source="defaults", name="prices.yaml prices")


class PriceTable:
    """Prices by (family, model), each a date-ordered history."""

    def __init__(self, rows: Iterable[Price]) -> None:
        self._rows: dict[tuple[str, str], list[Price]] = {}
        # (provider, model) -> resolve()'s answer; (key, day) -> price(): a table is not
        # changed after it is built, so answers are cached (bounded; cleared when full).
        self._resolved: dict[tuple[str | None, str], Any] = {}
        self._in_force: dict[tuple[tuple[str, str], date], Any] = {}
        for row in rows:
            self._rows.setdefault((row.provider, row.model), []).append(row)
        for history in self._rows.values():
            history.sort(key=lambda p: p.effective_from)

    @classmethod
    def load(cls, overrides: Any = None, *, defaults: bool = True) -> PriceTable:
        """The shipped defaults with the settings' ``prices:`` rows over them. A (provider,
        model) that the overrides name takes its whole history from them (defaults for it are
        dropped), so a user's price is never shadowed by a later default row."""
        mine = parse_rows(overrides)
        owned = {(p.provider, p.model) for p in mine}
        base = [p for p in default_rows() if (p.provider, p.model) not in owned] if defaults else []
        return cls(base + mine)

    def rows(self) -> list[Price]:
        """Every row, by provider, model and date."""
        return [p for key in sorted(self._rows) for p in self._rows[key]]

    def resolve(self, provider: str | None, model: str) -> tuple[str, str] | None:
        """The table key a call's (provider, model) prices as: exact, then normalized
        (lower-case, no provider prefix, no date suffix), then the longest prefix ending at a
        ``-``; under the provider's family first, then the family the model's name implies."""
        if not model or not model.strip():
            return None
        stripped, vendor = _strip_prefix(model)
        normal = normalize_model(model)
        families: list[str] = []
        for family in (provider_family(provider), vendor, _family_from_name(normal)):
            if family and family not in families:
                families.append(family)
        for family in families:
            for name in (model, model.strip().lower(), stripped, normal):
                if (family, name) in self._rows:
                    return family, name
            best: str | None = None
            for fam, name in self._rows:
                if fam != family or len(name) >= len(stripped):
                    continue
                at_boundary = stripped.startswith(name) and stripped[len(name)] in _BOUNDARY
                if at_boundary and (best is None or len(name) > len(best)):
                    best = name
            if best is not None:
                return family, best
        return None

    def price(self, provider: str | None, model: str, at: datetime) -> Price | None:
        """The row in force for this model on ``at``'s UTC date (naive means UTC); ``None``
        for an unknown model or a date before its first row."""
        day = (at if at.tzinfo is None else at.astimezone(timezone.utc)).date()
        return self.price_on(provider, model, day)

    def price_on(self, provider: str | None, model: str, day: date) -> Price | None:
        """The row in force for this model on a (UTC) day; cached, so pricing many calls
        of a few models costs one dictionary look-up each."""
        names = (provider, model)
        key = self._resolved.get(names, _UNSEEN)  # one look-up: safe if another thread clears
        if key is _UNSEEN:
            if len(self._resolved) >= _CACHE_SIZE:
                self._resolved.clear()
            key = self._resolved[names] = self.resolve(provider, model)
        if key is None:
            return None
        when = (key, day)
        cached = self._in_force.get(when, _UNSEEN)
        if cached is not _UNSEEN:
            return cached  # type: ignore[no-any-return]
        found = None
        for row in self._rows[key]:
            if row.effective_from <= day:
                found = row
        if len(self._in_force) >= _CACHE_SIZE:
            self._in_force.clear()
        self._in_force[when] = found
        return found

    def cost(
        self,
        provider: str | None,
        model: str,
        at: datetime,
        input_tokens: int,
        output_tokens: int,
        cached_input_tokens: int = 0,
    ) -> float | None:
        """USD for one call, ``None`` when the model has no price on that date.
        ``cached_input_tokens`` is part of ``input_tokens`` (see the module's docstring)."""
        price = self.price(provider, model, at)
        if price is None:
            return None
        return price.cost(input_tokens, output_tokens, cached_input_tokens)
