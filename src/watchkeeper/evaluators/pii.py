"""Personal data in text: e-mail addresses, phone numbers, payment cards, IBANs, IP addresses.

Each kind is found by a simple regular expression that only proposes candidates (bounded
repetitions, no nested quantifiers, start positions restricted by look-behinds, so a
pathological input costs linear time), then checked in Python: a card's digits must pass the
Luhn check and start like a card issuer's, an IBAN must have its country's length and pass the
ISO 7064 mod-97 check, an IP address must parse with :mod:`ipaddress`, a phone number must
look like one (international ``+CC`` with 8-15 digits, or a national number of 10-11 digits
written in groups). Plain digit runs, dates, prices and version strings are not phone numbers.

Where candidates overlap, the more specific kind wins (e-mail, IBAN, card, IPv6, IPv4, phone).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "KINDS",
    "PLACEHOLDERS",
    "PIIFinding",
    "find_pii",
    "iban_valid",
    "luhn_valid",
    "redact",
]

KINDS = ("email", "iban", "card", "ipv6", "ipv4", "phone")  # also the order of precedence
PLACEHOLDERS = {kind: f"[{kind.upper()}]" for kind in KINDS}


@dataclass(frozen=True, order=True)
class PIIFinding:
    """One piece of personal data: its kind and where it is (``text[start:end]``)."""

    start: int
    end: int
    kind: str
    text: str


# The local part starts where a run of its characters starts (the look-behind), so a long run
# without "@" is scanned once, not once per position.
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){1,8}"
)
_CARD = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])(?! \d)")
_WORD_BEFORE = re.compile(r"(\w+)[ -]$")
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?=[ ]?[A-Z0-9])")
_IPV4 = re.compile(r"(?<![\w.:])\d{1,3}(?:\.\d{1,3}){3}(?!\w)(?!\.\d)")
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{0,4})(?![\w:])"
)
_PHONE = re.compile(r"(?<![\w+(.\-])(?:\+|\()?\d[\d ().\-]{5,22}\d(?![\w])")
_PHONE_GROUP = re.compile(r"\d+")
_PHONE_SEP = re.compile(r"[ ().\-]+")

# Total IBAN length per country (SWIFT IBAN registry).
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18,
    "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check of a string of digits."""
    if not digits or not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_valid(iban: str) -> bool:
    """Country length and ISO 7064 mod-97 check of an IBAN (spaces ignored)."""
    compact = iban.replace(" ", "").upper()
    if len(compact) != IBAN_LENGTHS.get(compact[:2], -1) or not compact.isalnum():
        return False
    if not compact[2:4].isdigit():
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


def _emails(text: str) -> Iterable[PIIFinding]:
    for m in _EMAIL.finditer(text):
        value = m.group()
        tld = value.rsplit(".", 1)[1]
        local = value.split("@", 1)[0]
        if len(tld) < 2 or not tld.isalpha() or local.startswith(".") or local.endswith("."):
            continue
        yield PIIFinding(m.start(), m.end(), "email", value)


def _cards(text: str) -> Iterable[PIIFinding]:
    for m in _CARD.finditer(text):
        value = m.group()
        before = _WORD_BEFORE.search(text, max(0, m.start() - 20), m.start())
        if before and before.group(1).isdigit():
            continue  # the tail of a longer run of digit groups
        digits = value.replace(" ", "").replace("-", "")
        # Issuers' prefixes start with 2-6 (Mastercard 2-series, Amex/Diners/JCB 3, Visa 4,
        # Mastercard/Maestro 5, Discover/UnionPay/Maestro 6).
        if 13 <= len(digits) <= 19 and digits[0] in "23456" and luhn_valid(digits):
            yield PIIFinding(m.start(), m.end(), "card", value)


def _ibans(text: str) -> Iterable[PIIFinding]:
    n = len(text)
    for m in _IBAN.finditer(text):
        want = IBAN_LENGTHS.get(m.group()[:2])
        if want is None:
            continue
        # Take the country's number of characters, single spaces allowed between them.
        i, count = m.start(), 0
        end = i
        while i < n and count < want:
            ch = text[i]
            if ch.isascii() and (ch.isdigit() or ch.isupper()):
                count += 1
                i += 1
                end = i
            elif ch == " " and count and i + 1 < n and text[i + 1] != " ":
                i += 1
            else:
                break
        if count != want or (end < n and text[end].isalnum()):
            continue
        value = text[m.start() : end]
        if iban_valid(value):
            yield PIIFinding(m.start(), end, "iban", value)


def _ipv4s(text: str) -> Iterable[PIIFinding]:
    for m in _IPV4.finditer(text):
        try:
            ipaddress.IPv4Address(m.group())
        except ValueError:
            continue
        yield PIIFinding(m.start(), m.end(), "ipv4", m.group())


def _ipv6s(text: str) -> Iterable[PIIFinding]:
    for m in _IPV6.finditer(text):
        value = m.group()
        if value.count(":") < 2 or value == "::":
            continue
        try:
            ipaddress.IPv6Address(value)
        except ValueError:
            continue
        yield PIIFinding(m.start(), m.end(), "ipv6", value)


def _phone_shape(value: str) -> bool:
    digits = "".join(_PHONE_GROUP.findall(value))
    separators = _PHONE_SEP.findall(value.lstrip("+"))
    for sep in separators:
        if len(sep) > 2 or (len(sep) == 2 and "(" not in sep and ")" not in sep):
            return False
    if value.count("(") != value.count(")") or value.count("(") > 1:
        return False
    groups = _PHONE_GROUP.findall(value)
    if value.startswith("+"):
        return 8 <= len(digits) <= 15 and (len(groups) >= 2 or len(digits) >= 10)
    if not separators or not 10 <= len(digits) <= 11:
        return False
    body = groups[1:] if groups[0] == "1" and len(digits) == 11 else groups
    if any(len(g) < 2 for g in body):  # ISBNs and versions end in one-digit groups
        return False
    if body[0] == groups[0] and groups[0].startswith("0"):
        return True  # a trunk prefix: 020 7946 0958, 06 12 34 56 78
    return len("".join(body)) == 10 and [len(g) for g in body][-2:] == [3, 4]  # NANP


def _phones(text: str) -> Iterable[PIIFinding]:
    for m in _PHONE.finditer(text):
        value = m.group()
        if _phone_shape(value):
            yield PIIFinding(m.start(), m.end(), "phone", value)


_FINDERS = {
    "email": _emails,
    "iban": _ibans,
    "card": _cards,
    "ipv6": _ipv6s,
    "ipv4": _ipv4s,
    "phone": _phones,
}


def find_pii(text: str, kinds: Iterable[str] = KINDS) -> list[PIIFinding]:
    """Every piece of personal data of the given kinds in ``text``, in order, not overlapping."""
    wanted = set(kinds)
    unknown = wanted - set(KINDS)
    if unknown:
        raise ValueError(f"unknown PII kinds: {sorted(unknown)}")
    taken: list[PIIFinding] = []
    for kind in KINDS:  # precedence: a span claimed by an earlier kind is not re-used
        if kind not in wanted:
            continue
        for finding in _FINDERS[kind](text):
            if not any(finding.start < t.end and t.start < finding.end for t in taken):
                taken.append(finding)
    return sorted(taken)


def redact(
    text: str, kinds: Iterable[str] = KINDS, placeholders: dict[str, str] | None = None
) -> str:
    """``text`` with each finding replaced by its placeholder (``[EMAIL]``, ``[CARD]``...)."""
    names = {**PLACEHOLDERS, **(placeholders or {})}
    out: list[str] = []
    pos = 0
    for f in find_pii(text, kinds):
        out.append(text[pos : f.start])
        out.append(names[f.kind])
        pos = f.end
    out.append(text[pos:])
    return "".join(out)
