"""The LLM price table: exact costs against a rational oracle, dated rows, overrides, model-name
matching, validation that names row and field, and the settings file's ``prices:`` section."""

from __future__ import annotations

import socket
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from watchkeeper.cli.main import main
from watchkeeper.llm import PriceConfigError, PriceTable
from watchkeeper.llm.prices import FIELDS, default_rows, normalize_model, provider_family
from watchkeeper.server import ConfigError, ServerConfig, create_app

NOW = datetime(2025, 9, 1, 12, tzinfo=timezone.utc)
LATER = datetime(2030, 1, 1, tzinfo=timezone.utc)  # every shipped model has a price by then
DEFAULTS = PriceTable.load()


def oracle(per_million: tuple[str, str, str], tokens: tuple[int, int, int]) -> float:
    """USD by hand: uncached input, cached input and output at their prices, per million."""
    inp, out, cached = (Fraction(p) for p in per_million)
    input_tokens, output_tokens, cached_tokens = tokens
    usd = (input_tokens - cached_tokens) * inp + cached_tokens * cached + output_tokens * out
    return float(usd / 1_000_000)


# --- exact costs of shipped rows ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "model", "prices", "tokens"),
    [
        ("openai", "gpt-4o", ("2.50", "10.00", "1.25"), (1234, 567, 0)),
        ("openai", "gpt-4o", ("2.50", "10.00", "1.25"), (10_000, 2_000, 4_096)),
        ("openai", "gpt-4o-mini", ("0.15", "0.60", "0.075"), (3, 7, 1)),
        ("openai", "gpt-4.1-nano", ("0.10", "0.40", "0.025"), (999_999, 1, 333_333)),
        ("anthropic", "claude-3-5-haiku", ("0.80", "4.00", "0.08"), (2048, 512, 1024)),
        ("google", "gemini-1.5-flash-8b", ("0.0375", "0.15", "0.01"), (17, 19, 5)),
        ("mistral", "mistral-large", ("2.00", "6.00", "2.00"), (100, 100, 50)),
    ],
)
def test_cost_of_a_default_row_is_exact(
    provider: str, model: str, prices: tuple[str, str, str], tokens: tuple[int, int, int]
) -> None:
    """The cost equals the hand computation in exact fractions, rounded once to a float."""
    assert DEFAULTS.cost(provider, model, NOW, *tokens) == oracle(prices, tokens)


def test_cached_price_defaults_to_the_input_price() -> None:
    """A row without cached_input bills cached tokens as ordinary input (Mistral lists none)."""
    price = DEFAULTS.price("mistral", "codestral", NOW)
    assert price is not None and price.cached_input == price.input == Decimal("0.30")


def test_every_default_row_is_valid_and_dated() -> None:
    """The shipped file parses, and each model has at most one row per date."""
    rows = default_rows()
    assert len(rows) > 40
    assert {p.provider for p in rows} == {"openai", "anthropic", "google", "mistral"}
    assert len({(p.provider, p.model, p.effective_from) for p in rows}) == len(rows)


# --- dated rows ---------------------------------------------------------------------------------


def test_cost_before_a_price_change_uses_the_old_row() -> None:
    """o3's June 2025 cut does not rewrite the cost of May's calls; the change day is new."""
    may = datetime(2025, 5, 20, tzinfo=timezone.utc)
    june = datetime(2025, 6, 10, tzinfo=timezone.utc)
    tokens = (1000, 1000, 0)
    assert DEFAULTS.cost("openai", "o3", may, *tokens) == oracle(("10", "40", "2.5"), tokens)
    assert DEFAULTS.cost("openai", "o3", june, *tokens) == oracle(("2", "8", "0.5"), tokens)
    assert DEFAULTS.cost("openai", "o3", june - timedelta(seconds=1), *tokens) == oracle(
        ("10", "40", "2.5"), tokens
    )


def test_the_day_is_the_utc_day() -> None:
    """A call at 23:30 on 9 June in New York is on 10 June in UTC: the new row applies."""
    new_york = timezone(timedelta(hours=-4))
    at = datetime(2025, 6, 9, 23, 30, tzinfo=new_york)
    price = DEFAULTS.price("openai", "o3", at)
    assert price is not None and price.effective_from == date(2025, 6, 10)
    naive = DEFAULTS.price("openai", "o3", datetime(2025, 6, 9, 23, 30))
    assert naive is not None and naive.effective_from == date(2025, 4, 16)


def test_before_the_first_row_there_is_no_price() -> None:
    """A call dated before a model's first price has no cost rather than a guessed one."""
    assert DEFAULTS.cost("openai", "gpt-4.1", datetime(2025, 1, 1), 10, 10) is None


# --- overrides ----------------------------------------------------------------------------------


def test_overrides_win_over_defaults_and_add_models() -> None:
    """A model the settings name takes its whole history from them, even against a later
    default row; a new model is added; other models keep their defaults."""
    table = PriceTable.load(
        [
            {
                "provider": "openai",
                "model": "gpt-4o",
                "input": 1,
                "output": 2,
                "effective_from": "2020-01-01",
            },
            {
                "provider": "ollama",
                "model": "llama3",
                "input": 0,
                "output": 0,
                "effective_from": date(2024, 1, 1),
            },
        ]
    )
    assert table.cost("openai", "gpt-4o-2024-11-20", NOW, 1_000_000, 1_000_000) == 3.0
    assert table.cost("ollama", "llama3", NOW, 500, 500) == 0.0
    assert table.cost("openai", "gpt-4o-mini", NOW, 1000, 0) == DEFAULTS.cost(
        "openai", "gpt-4o-mini", NOW, 1000, 0
    )
    assert table.cost("openai", "gpt-4o", datetime(2019, 12, 31), 1, 1) is None
    override = table.price("azure.ai.openai", "gpt-4o", NOW)
    assert override is not None and override.source == "settings"


def test_override_rows_keep_their_own_history() -> None:
    """Two dated override rows: each period is billed at its own price."""
    rows = [
        {
            "provider": "openai",
            "model": "my-ft",
            "input": 4,
            "output": 8,
            "effective_from": "2025-01-01",
        },
        {
            "provider": "openai",
            "model": "my-ft",
            "input": 2,
            "output": 4,
            "effective_from": "2025-03-01",
        },
    ]
    table = PriceTable.load(rows)
    assert table.cost("openai", "my-ft", datetime(2025, 2, 1), 10**6, 0) == 4.0
    assert table.cost("openai", "my-ft", datetime(2025, 3, 1), 10**6, 0) == 2.0


# --- matching -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "model", "expected"),
    [
        ("openai", "gpt-4o", ("openai", "gpt-4o")),
        ("openai", "gpt-4o-2024-05-13", ("openai", "gpt-4o-2024-05-13")),  # own snapshot row
        ("openai", "gpt-4o-2024-11-20", ("openai", "gpt-4o")),
        ("openai", "gpt-4o-mini-2024-07-18", ("openai", "gpt-4o-mini")),
        ("openai", "openai/GPT-4o-mini", ("openai", "gpt-4o-mini")),
        ("openai", "gpt-3.5-turbo-0125", ("openai", "gpt-3.5-turbo")),
        ("openai", "o3-2025-04-16", ("openai", "o3")),
        ("openai", "gpt-4o-audio-preview", ("openai", "gpt-4o")),  # longest prefix
        ("openai", "gpt-4.1-mini-2025-04-14", ("openai", "gpt-4.1-mini")),
        ("azure.ai.openai", "gpt-4.1", ("openai", "gpt-4.1")),
        ("az.ai.openai", "gpt-4o", ("openai", "gpt-4o")),
        ("anthropic", "claude-3-5-sonnet-20241022", ("anthropic", "claude-3-5-sonnet")),
        ("anthropic", "claude-sonnet-4-20250514", ("anthropic", "claude-sonnet-4")),
        ("anthropic", "claude-3-5-haiku-latest", ("anthropic", "claude-3-5-haiku")),
        ("gcp.vertex_ai", "claude-3-5-sonnet-v2@20241022", ("anthropic", "claude-3-5-sonnet")),
        (
            "aws.bedrock",
            "us.anthropic.claude-3-7-sonnet-20250219-v1:0",
            ("anthropic", "claude-3-7-sonnet"),
        ),
        ("aws.bedrock", "mistral.mistral-large-2407-v1:0", ("mistral", "mistral-large")),
        ("gcp.gemini", "models/gemini-1.5-flash-002", ("google", "gemini-1.5-flash")),
        ("gcp.vertex_ai", "gemini-2.0-flash-001", ("google", "gemini-2.0-flash")),
        ("google", "gemini-2.5-flash-lite", ("google", "gemini-2.5-flash-lite")),
        ("google", "gemini-2.5-flash-preview-05-20", ("google", "gemini-2.5-flash")),
        ("mistral_ai", "mistral-large-latest", ("mistral", "mistral-large")),
        ("mistral_ai", "mistral-small-2503", ("mistral", "mistral-small")),
        (None, "gpt-4o", ("openai", "gpt-4o")),  # no provider: the name says who
        ("", "claude-opus-4-1-20250805", ("anthropic", "claude-opus-4-1")),
    ],
)
def test_model_names_resolve(provider: str | None, model: str, expected: tuple[str, str]) -> None:
    """Exact, then normalized (case, provider prefix, date suffix), then longest prefix."""
    assert DEFAULTS.resolve(provider, model) == expected


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "llama-3-70b"),
        ("ollama", "gpt-oss"),  # an unknown provider and a name no family claims
        ("openai", "gpt-4ox"),  # a prefix must end at a separator: not gpt-4
        ("openai", ""),
        ("anthropic", "claude"),
    ],
)
def test_unknown_models_have_no_price(provider: str, model: str) -> None:
    """Nothing is guessed for a model the table does not know."""
    assert DEFAULTS.price(provider, model, NOW) is None
    assert DEFAULTS.cost(provider, model, NOW, 100, 100) is None


def test_normalization_and_aliases() -> None:
    """The helpers behind matching, shown on their own."""
    assert normalize_model("OpenAI/GPT-4o-2024-08-06") == "gpt-4o"
    assert normalize_model("claude-3-5-sonnet@20240620") == "claude-3-5-sonnet"
    assert provider_family("gcp.gemini") == provider_family("google") == "google"
    assert provider_family("azure.ai.openai") == "openai"
    assert provider_family("aws.bedrock") is None  # the maker comes from the model id
    assert provider_family("Groq") == "groq"


# --- validation ---------------------------------------------------------------------------------

GOOD: dict[str, Any] = {
    "provider": "openai",
    "model": "m",
    "input": 1,
    "output": 2,
    "effective_from": "2025-01-01",
}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"input": -1}, "input"),
        ({"output": "cheap"}, "output"),
        ({"input": True}, "input"),
        ({"cached_input": 5}, "cached_input"),  # more than input
        ({"effective_from": "yesterday"}, "effective_from"),
        ({"effective_from": datetime(2025, 1, 1)}, "effective_from"),
        ({"effective_from": None}, "effective_from"),
        ({"model": ""}, "model"),
        ({"provider": 3}, "provider"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_invalid_rows_name_row_and_field(change: dict[str, Any], field: str) -> None:
    """The error names the row by index and model, and the field at fault."""
    bad = {**GOOD, **change}
    with pytest.raises(PriceConfigError) as info:
        PriceTable.load([GOOD | {"model": "fine"}, bad])
    assert len(info.value.lines()) == 1
    line = info.value.lines()[0]
    assert line.startswith("prices[1] ")
    assert f": {field}: " in line


def test_every_problem_is_reported_and_duplicates_are_named() -> None:
    """Several bad rows: one line each; a repeated (provider, model, date) names the first."""
    rows = [GOOD, {**GOOD, "input": "x"}, "not a row", dict(GOOD)]
    with pytest.raises(PriceConfigError) as info:
        PriceTable.load(rows)
    text = str(info.value)
    assert "prices[1] (openai m): input:" in text
    assert "prices[2]: must be a mapping" in text
    assert "prices[3] (openai m): effective_from: 2025-01-01 repeats prices[0]" in text
    with pytest.raises(PriceConfigError, match="must be a list"):
        PriceTable.load({"provider": "openai"})


def test_bad_token_counts_are_refused() -> None:
    """Negative counts, and cached tokens beyond the input they are part of, are errors."""
    price = DEFAULTS.price("openai", "gpt-4o", NOW)
    assert price is not None
    with pytest.raises(ValueError, match="output_tokens"):
        price.cost(1, -1)
    with pytest.raises(ValueError, match="cannot exceed"):
        price.cost(10, 0, 11)


# --- properties ---------------------------------------------------------------------------------

MODELS = sorted({(p.provider, p.model) for p in default_rows()})
counts = st.integers(min_value=0, max_value=10**9)


@given(
    st.sampled_from(MODELS), counts, counts, counts, counts, st.integers(min_value=0, max_value=50)
)
def test_cost_is_linear_and_non_negative(
    key: tuple[str, str], a: int, b: int, c: int, d: int, k: int
) -> None:
    """cost(x + y) = cost(x) + cost(y) and cost(k·x) = k·cost(x), exactly in fractions; ≥ 0."""
    price = DEFAULTS.price(*key, LATER)
    assert price is not None
    x, y = (a + c, b, c), (c + d, a, d)
    both = (x[0] + y[0], x[1] + y[1], x[2] + y[2])
    assert price.cost(*x) >= 0
    assert price.cost(*both) == pytest.approx(price.cost(*x) + price.cost(*y), rel=1e-12)
    assert price.cost(k * x[0], k * x[1], k * x[2]) == pytest.approx(k * price.cost(*x), rel=1e-12)
    assert price.cost(0, 0, 0) == 0


@given(st.sampled_from(MODELS), counts, counts, st.data())
def test_cached_tokens_never_cost_more(
    key: tuple[str, str], input_tokens: int, output_tokens: int, data: st.DataObject
) -> None:
    """Reading more of the same prompt from the cache never raises the cost."""
    price = DEFAULTS.price(*key, LATER)
    assert price is not None
    cached = data.draw(st.integers(min_value=0, max_value=input_tokens))
    assert price.cost(input_tokens, output_tokens, cached) <= price.cost(
        input_tokens, output_tokens, 0
    )


rates = st.decimals(min_value=0, max_value=200, places=6, allow_nan=False, allow_infinity=False)


@given(rates, rates, rates, counts, counts, st.data())
def test_cost_equals_the_rounded_exact_fraction(
    inp: Decimal, out: Decimal, cached: Decimal, input_tokens: int, output_tokens: int,
    data: st.DataObject,
) -> None:  # fmt: skip
    """Any rates (to a millionth of a dollar) and counts: the cost is the exact rational
    cost rounded once to a float (the oracle), bit for bit."""
    cached = min(cached, inp)
    price = PriceTable.load([{"provider": "acme", "model": "m", "input": str(inp),
                              "output": str(out), "cached_input": str(cached),
                              "effective_from": "2020-01-01"}], defaults=False).price(
        "acme", "m", NOW)  # fmt: skip
    assert price is not None
    cached_tokens = data.draw(st.integers(min_value=0, max_value=input_tokens))
    tokens = (input_tokens, output_tokens, cached_tokens)
    assert price.cost(*tokens) == oracle((str(inp), str(out), str(cached)), tokens)


def test_cached_look_ups_answer_as_uncached_ones() -> None:
    """price() is cached per (provider, model) and (model, day): the cached answers are the
    same rows as a fresh table's, for every default model, day and unknown name."""
    days = [datetime(2023, 1, 1, tzinfo=timezone.utc), NOW, LATER]
    names = [*MODELS, ("openai", "no-such-model"), (None, "gpt-4o-2024-08-06")]
    for _ in range(2):  # the second pass answers from the caches
        for provider, model in names:
            for day in days:
                fresh = PriceTable(DEFAULTS.rows())  # nothing cached yet
                assert DEFAULTS.price(provider, model, day) == fresh.price(provider, model, day)


# --- the settings file --------------------------------------------------------------------------


def _settings(tmp_path: Path, prices: Any) -> Path:
    path = tmp_path / "wk.yaml"
    path.write_text(yaml.safe_dump({"prices": prices}))
    return path


def test_server_loads_the_prices_section(tmp_path: Path) -> None:
    """A prices: section reaches app.state.prices over the shipped defaults."""
    path = _settings(tmp_path, [{**GOOD, "model": "gpt-4o", "input": 3, "output": 9}])
    app = create_app(ServerConfig(data_dir=tmp_path / "d", config_file=path))
    table: PriceTable = app.state.prices
    assert table.cost("openai", "gpt-4o", NOW, 10**6, 10**6) == 12.0
    assert table.cost("anthropic", "claude-3-opus", NOW, 10**6, 0) == 15.0


def test_an_invalid_prices_section_stops_the_server(tmp_path: Path) -> None:
    """`watchkeeper serve` refuses the file, naming the row and field, without a traceback."""
    path = _settings(tmp_path, [GOOD, {**GOOD, "model": "gpt-4o", "output": -2}])
    with pytest.raises(ConfigError, match=r"prices\[1\] \(openai gpt-4o\): output:"):
        create_app(ServerConfig(data_dir=tmp_path / "d", config_file=path))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = ["serve", "--data-dir", str(tmp_path / "d"), "--port", str(port), "--config", str(path)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert "prices[1] (openai gpt-4o): output:" in result.output
    assert "Traceback" not in result.output


def test_monitors_check_validates_prices(tmp_path: Path) -> None:
    """`watchkeeper monitors check` reports a bad price row like any other section."""
    good = _settings(tmp_path, [GOOD])
    assert CliRunner().invoke(main, ["monitors", "check", str(good)]).exit_code == 0
    bad = _settings(tmp_path, [{**GOOD, "input": "free"}])
    result = CliRunner().invoke(main, ["monitors", "check", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}: prices[0] (openai m): input:" in result.output


def test_docs_list_every_default_row_and_field() -> None:
    """docs/llm.md shows each shipped row (model and date) and names each field of a row."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "llm.md").read_text()
    missing = [
        f"{p.provider} {p.model} {p.effective_from}"
        for p in default_rows()
        if f"| {p.provider} | `{p.model}` |" not in text or f"| {p.effective_from} |" not in text
    ]
    assert not missing, f"undocumented price rows: {missing}"
    assert all(f"`{field}`" in text for field in FIELDS)
