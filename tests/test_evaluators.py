"""The label-free evaluators (watchkeeper.evaluators) against independent oracles and the
labelled sets in tests/data/evaluators/."""

from __future__ import annotations

import ipaddress
import string
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum import iban as stdnum_iban
from stdnum import luhn as stdnum_luhn

from tests import labelled_sets as labelled
from watchkeeper.evaluators import (
    detect_refusal,
    exact_match,
    find_pii,
    groundedness,
    redact,
    score_toxicity,
    token_f1,
)
from watchkeeper.evaluators.grounded import LexicalScorer, split_sentences
from watchkeeper.evaluators.pii import KINDS, iban_valid, luhn_valid
from watchkeeper.evaluators.reference import best_token_f1, normalize_answer

# ---------------------------------------------------------------- PII: oracles


@given(st.text(alphabet=string.digits, min_size=1, max_size=25))
def test_luhn_matches_stdnum(digits: str) -> None:
    """Our Luhn check agrees with python-stdnum's on any digit string."""
    assert luhn_valid(digits) == stdnum_luhn.is_valid(digits)


@st.composite
def _cards(draw: st.DrawFn) -> str:
    body = draw(st.sampled_from("3456")) + draw(
        st.text(alphabet=string.digits, min_size=11, max_size=17)
    )
    return body + stdnum_luhn.calc_check_digit(body)


@given(_cards(), st.sampled_from(["", " ", "-"]), st.data())
def test_card_numbers_found_exactly_when_luhn_valid(
    card: str, sep: str, data: st.DataObject
) -> None:
    """A Luhn-valid card number (stdnum computes the check digit) is found in a sentence, in
    groups of four with any separator; changing one digit (which Luhn always detects) hides it."""
    grouped = sep.join(card[i : i + 4] for i in range(0, len(card), 4))
    text = f"Please charge {grouped} today."
    found = find_pii(text)
    assert [(f.kind, f.text) for f in found] == [("card", grouped)]
    pos = data.draw(st.integers(1, len(card) - 1))  # keep the issuer digit
    new = data.draw(st.sampled_from([d for d in string.digits if d != card[pos]]))
    corrupted = card[:pos] + new + card[pos + 1 :]
    assert not stdnum_luhn.is_valid(corrupted)
    assert [f for f in find_pii(f"Please charge {corrupted} today.") if f.kind == "card"] == []


# BBAN structures of a few countries whose IBANs stdnum checks by structure and mod 97 only.
_BBANS = {
    "DE": [(string.digits, 18)],
    "AT": [(string.digits, 16)],
    "GB": [(string.ascii_uppercase, 4), (string.digits, 14)],
    "NL": [(string.ascii_uppercase, 4), (string.digits, 10)],
    "PL": [(string.digits, 24)],
    "CH": [(string.digits, 5), (string.digits + string.ascii_uppercase, 12)],
}


@st.composite
def _ibans(draw: st.DrawFn) -> str:
    country = draw(st.sampled_from(sorted(_BBANS)))
    bban = "".join(
        draw(st.text(alphabet=alpha, min_size=n, max_size=n)) for alpha, n in _BBANS[country]
    )
    check = stdnum_iban.calc_check_digits(country + "00" + bban)
    return country + check + bban


@given(_ibans(), st.booleans(), st.data())
def test_ibans_match_stdnum(iban: str, spaced: bool, data: st.DataObject) -> None:
    """IBANs valid for stdnum are found (compact or in groups of four); a one-digit change,
    which mod 97 always detects, makes both stdnum and us reject it."""
    assert stdnum_iban.is_valid(iban) and iban_valid(iban)
    shown = stdnum_iban.format(iban) if spaced else iban
    assert [(f.kind, f.text) for f in find_pii(f"IBAN: {shown}.")] == [("iban", shown)]
    digits = [i for i, ch in enumerate(iban) if ch.isdigit() and i >= 2]
    pos = data.draw(st.sampled_from(digits))
    new = data.draw(st.sampled_from([d for d in string.digits if d != iban[pos]]))
    corrupted = iban[:pos] + new + iban[pos + 1 :]
    assert stdnum_iban.is_valid(corrupted) is False
    assert iban_valid(corrupted) is False
    assert [f for f in find_pii(f"IBAN: {corrupted}.") if f.kind == "iban"] == []


@given(st.ip_addresses())
def test_ip_addresses_found_as_ipaddress_writes_them(address: Any) -> None:
    """Any IPv4 or IPv6 address, written as ipaddress writes it (short and, for v6, long
    form), is found whole (except the bare unspecified address "::") and parses back to the same address."""
    kind = f"ipv{address.version}"
    forms = [str(address)] + ([address.exploded] if address.version == 6 else [])
    forms = [f for f in forms if f != "::"]  # a bare "::" is too common in text to report
    for form in forms:
        found = find_pii(f"from {form} at noon")
        assert [(f.kind, f.text) for f in found] == [(kind, form)]
        assert ipaddress.ip_address(found[0].text) == address


# ---------------------------------------------------------------- PII: labelled set


def test_pii_labelled_set_precision_and_recall_are_one() -> None:
    """Every span of pii.jsonl is found with its kind and nothing else is (hard negatives:
    order numbers, dates, prices, versions, ISBNs, Luhn- and mod-97-failing numbers):
    precision and recall 1.0 per kind on the set."""
    rows = labelled.rows("pii.jsonl")
    assert len(rows) >= 60
    counts = labelled.pii_counts(rows)
    tp = {k: c[0] for k, c in counts.items()}
    fp = {k: c[1] for k, c in counts.items()}
    fn = {k: c[2] for k, c in counts.items()}
    assert fp == dict.fromkeys(KINDS, 0), fp
    assert fn == dict.fromkeys(KINDS, 0), fn
    assert all(tp[k] >= 3 for k in KINDS), tp


def test_redact_replaces_each_finding_and_respects_kinds() -> None:
    """redact() puts a placeholder in place of each finding, only of the kinds asked for."""
    text = "Mail a.b@example.com, call +44 20 7946 0958, card 4111-1111-1111-1111, ip 10.1.2.3"
    assert redact(text) == "Mail [EMAIL], call [PHONE], card [CARD], ip [IPV4]"
    assert redact(text, kinds=["card"]) == text.replace("4111-1111-1111-1111", "[CARD]")
    assert redact(text, kinds=["email"], placeholders={"email": "<e>"}).startswith("Mail <e>,")
    with pytest.raises(ValueError):
        find_pii(text, kinds=["passport"])


def test_redacted_labelled_texts_hold_no_pii() -> None:
    """After redaction, none of the labelled spans survive and nothing is found again."""
    for row in labelled.rows("pii.jsonl"):
        clean = redact(row["text"])
        assert find_pii(clean) == []
        assert not any(span["text"] in clean for span in row["pii"])


@pytest.mark.timeout(60)
def test_pii_on_long_adversarial_inputs_terminates() -> None:
    """Inputs that make naive patterns backtrack (long runs of digits, separators, colons,
    local parts without "@") are scanned; a hang would hit the timeout."""
    for text in (
        "1" * 50_000,
        "1 " * 30_000,
        "1-" * 30_000,
        "1." * 30_000,
        "a" * 50_000 + "@",
        "a:" * 30_000,
        ":" * 50_000,
        "+1 (" * 20_000,
        "GB12 " * 10_000,
    ):
        find_pii(text)
    tail = "x" * 100_000 + " jane@example.com"
    assert [f.text for f in find_pii(tail)] == ["jane@example.com"]


# ---------------------------------------------------------------- refusal and toxicity


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("I'm sorry, but I can't help with that request.", "refusal"),
        ("I can\u2019t assist with creating malware.", "refusal"),
        ("As an AI language model, I don't have personal opinions.", "refusal"),
        ("I am unable to share other customers' details.", "refusal"),
        ("I must decline to answer that.", "refusal"),
        ("That would violate our content policy.", "refusal"),
        ("Let me connect you with an agent who can look into it.", "handoff"),
        ("I'll transfer you to one of our specialists now.", "handoff"),
        ("A human representative will contact you within 24 hours.", "handoff"),
        ("I can't change that, but a member of our support team will follow up.", "handoff"),
        ("I've escalated your case to billing.", "handoff"),
        ("Your order ships tomorrow. Can I help with anything else?", "none"),
        ("I can help with that: the refund is on its way.", "none"),
        ("The agent field in the config sets the user agent string.", "none"),
    ],
)
def test_refusal_and_handoff(text: str, kind: str) -> None:
    """Declines and hand-offs are told apart from ordinary answers, hand-off first."""
    result = detect_refusal(text)
    assert result.kind == kind
    assert (result.phrase is None) == (kind == "none")
    if result.phrase:
        assert result.phrase in text.lower().replace("\u2019", "'")


def test_toxicity_word_list_baseline() -> None:
    """Whole words only (class, Scunthorpe pass), leetspeak and stretched letters normalised,
    score = flagged / words."""
    clean = score_toxicity("The class in Scunthorpe assessed the cockpit.")
    assert clean.score == 0.0 and clean.flagged == ()
    rude = score_toxicity("You are a stuuupid 1d10t, shut up")
    assert rude.flagged == ("stupid", "idiot")
    assert rude.words == 7 and rude.score == pytest.approx(2 / 7)
    assert score_toxicity("F*** off, you M0R0N!!").flagged == ("moron",)
    assert score_toxicity("").score == 0.0
    assert score_toxicity("what a banana", words=["banana"]).flagged == ("banana",)


# ---------------------------------------------------------------- reference answers


@pytest.mark.parametrize(
    ("prediction", "reference", "em", "f1"),
    [
        ("Denver Broncos", "Denver Broncos", 1.0, 1.0),
        ("the Denver Broncos!", "Denver Broncos", 1.0, 1.0),  # article, punctuation
        ("Broncos", "Denver Broncos", 0.0, 2 / 3),  # P 1, R 1/2
        ("Denver Broncos won", "Denver Broncos", 0.0, 0.8),  # P 2/3, R 1
        ("in the year 1776", "1776", 0.0, 0.5),  # P 1/3, R 1
        ("the the the", "a", 1.0, 1.0),  # both normalise to nothing
        ("Paris", "London", 0.0, 0.0),
        ("x b b c", "b b b d", 0.0, 0.5),  # common tokens with multiplicity: 2; P 2/4, R 2/4
    ],
)
def test_exact_match_and_token_f1_squad(
    prediction: str, reference: str, em: float, f1: float
) -> None:
    """SQuAD's EM and F1, hand-computed."""
    assert exact_match(prediction, reference) == em
    assert token_f1(prediction, reference) == pytest.approx(f1)


def test_reference_helpers() -> None:
    """Normalisation as SQuAD's and the best of several references."""
    assert normalize_answer("  The  Quick, brown fox.") == "quick brown fox"
    assert best_token_f1("Broncos", ["Carolina Panthers", "Denver Broncos"]) == pytest.approx(2 / 3)


# ---------------------------------------------------------------- groundedness


def test_groundedness_sentence_level() -> None:
    """Each sentence is judged on its own; one unsupported sentence flags a hallucination."""
    context = "Acme was founded in 1998 by Jane Smith. It employs 1,200 people."
    good = groundedness("Acme was founded by Jane Smith in 1998. It employs 1200 people.", context)
    assert good.score == 1.0 and not good.hallucination and good.unsupported == ()
    bad = groundedness("Acme employs 1,200 people. It was founded in 2005.", context)
    assert bad.score == 0.5 and bad.hallucination
    assert bad.unsupported == ("It was founded in 2005.",)
    lenient = groundedness(
        "Acme employs 1,200 people. It was founded in 2005.", context, min_supported=0.5
    )
    assert not lenient.hallucination
    assert not groundedness("Sure!", context).hallucination
    assert split_sentences("Dr. Smith came. She left.") == ["Dr. Smith came.", "She left."]


def test_groundedness_scorer_is_pluggable() -> None:
    """Any object with bind(context) -> score(sentence) replaces the lexical scorer."""

    class Length:
        def bind(self, context: Any) -> Any:
            return lambda sentence: 1.0 if len(sentence) < 20 else 0.0

    result = groundedness("Short one. This sentence is rather long.", "x", scorer=Length())
    assert [s.supported for s in result.sentences] == [True, False]
    numbers_off = LexicalScorer(numbers_must_match=False)
    assert not groundedness(
        "It has 9 staff.", "It has 8 staff.", threshold=0.5, scorer=numbers_off
    ).hallucination


def test_groundedness_labelled_set_precision_recall() -> None:
    """Hallucination detection on groundedness.jsonl (47 examples, 26 hallucinated) at the
    default threshold 0.75. The figures are what the lexical scorer measures today; they are
    asserted exactly (the evaluator is deterministic) so any change shows up here and in
    BENCHMARKS.md. Its misses are by design: swapped names and a flipped negation use the
    context's own words; free paraphrases are flagged as unsupported."""
    rows = labelled.rows("groundedness.jsonl")
    assert len(rows) >= 40
    tp, fp, fn, tn = labelled.hallucination_counts(rows, threshold=0.75)
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    assert (tp, fp, fn, tn) == (22, 2, 4, 19)  # precision 22/24 = 0.917, recall 22/26 = 0.846
    assert precision >= 0.8 and recall >= 0.8  # the floor a change may not fall below
