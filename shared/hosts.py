"""How the app reads the host of a URL it may hand a credential or a notice to.

A URL parser and an HTTP client that disagree on the host let a URL that looks public reach a private
address, so the pieces here refuse what parsers read differently (backslashes, control characters), read
an IPv4 literal in every spelling ``inet_aton`` and browsers accept (``2130706433``, ``0x7f000001``,
``0177.0.0.1``, ``127.1``), see the IPv4 address inside an IPv6 one (mapped, 6to4, Teredo, NAT64), and
name the non-public range an address is in. The rules that use them are in ``shared.endpoints``.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def bad_character(url: str) -> bool:
    """Whitespace, control or format characters (CR/LF, tabs, zero-width), or a backslash (some URL parsers
    read it as '/', others not: the two would disagree on the host)."""
    return any(c.isspace() or c == "\\" or unicodedata.category(c) in ("Cc", "Cf") for c in url)


@dataclass(frozen=True)
class UrlParts:
    scheme: str  # lowercase
    authority: str  # as given (may hold userinfo)
    rest: str  # path, query and fragment, as given


def split_url(url: str) -> UrlParts | None:
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)(.*)$", url, re.DOTALL)
    if not m:
        return None
    return UrlParts(scheme=m.group(1).lower(), authority=m.group(2), rest=m.group(3))


def split_host_port(authority: str) -> tuple[str, str | None]:
    """``host[:port]`` / ``[v6][:port]`` → (host without brackets, port text or None)."""
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            return authority, None
        host, tail = authority[1:end], authority[end + 1 :]
        return "[" + host + "]", (tail[1:] if tail.startswith(":") else (tail or None))
    host, sep, port = authority.rpartition(":")
    return (host, port) if sep else (authority, None)


# --- IP literals in any spelling ---------------------------------------------------------------


def _ipv4_part(text: str) -> int | None:
    """One part of an inet_aton-style IPv4 literal: decimal, 0x hex or 0-prefixed octal."""
    try:
        if text[:2] in ("0x", "0X"):
            return int(text[2:] or "0", 16)
        if len(text) > 1 and text.startswith("0"):
            return int(text, 8)
        return int(text, 10) if text.isdigit() and text.isascii() else None
    except ValueError:
        return None


def _looks_numeric(label: str) -> bool:
    return bool(re.fullmatch(r"[0-9]+|0[xX][0-9a-fA-F]*", label))


def parse_ipv4_any(host: str) -> tuple[ipaddress.IPv4Address | None, bool]:
    """An IPv4 literal in any spelling browsers and ``inet_aton`` accept (``2130706433``, ``0x7f000001``,
    ``0177.0.0.1``, ``127.1``): (address, canonical dotted decimal?). (None, False) if ``host`` is a name;
    ValueError if it ends in a number but is no valid address (such hosts are never names)."""
    labels = host.split(".")
    if labels and labels[-1] == "":
        labels = labels[:-1]
    if not labels or not _looks_numeric(labels[-1]):
        return None, False
    if len(labels) > 4:
        raise ValueError("has more than four numeric parts")
    parts = [_ipv4_part(p) for p in labels]
    if any(p is None for p in parts):
        raise ValueError("is not a valid IPv4 address")
    values = [p for p in parts if p is not None]
    if any(p > 255 for p in values[:-1]) or values[-1] >= 256 ** (5 - len(values)):
        raise ValueError("is not a valid IPv4 address")
    number = 0
    for p in values[:-1]:
        number = number * 256 + p
    number = number * 256 ** (5 - len(values)) + values[-1]
    address = ipaddress.IPv4Address(number)
    return address, host == str(address)


def ip_literal(host: str) -> tuple[IpAddress | None, str | None]:
    """(the address a host literal names, or None; a problem with the spelling, or None)."""
    if host.startswith("["):
        inner = host[1:-1] if host.endswith("]") else host[1:]
        if "%" in inner:
            return None, "must not carry an IPv6 zone id"
        try:
            return ipaddress.IPv6Address(inner), None
        except ValueError:
            return None, "is not a valid IPv6 address"
    try:
        v4, canonical = parse_ipv4_any(host)
    except ValueError as exc:
        return None, f"{exc}"
    if v4 is not None and not canonical:
        return v4, "spells an IP address in a non-standard form (write it as a.b.c.d)"
    return v4, None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo client, NAT64), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in ipaddress.IPv6Network("64:ff9b::/96") or ip in ipaddress.IPv6Network("::/96"):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


_RANGES = (
    ("is_loopback", "a loopback"),
    ("is_link_local", "a link-local"),  # 169.254.0.0/16 holds the instance metadata endpoint
    ("is_unspecified", "an unspecified"),
    ("is_multicast", "a multicast"),
    ("is_private", "a private"),
    ("is_reserved", "a reserved"),
)
LOOPBACK = "a loopback"


def address_kind(ip: IpAddress) -> str | None:
    """Which non-public range ``ip`` is in ("a loopback", "a private", …), or None for a public address."""
    if isinstance(ip, ipaddress.IPv6Address) and not (ip.is_loopback or ip.is_unspecified):
        inner = _embedded_ipv4(ip)
        if inner is not None and address_kind(inner) is not None:
            return address_kind(inner)
    for attr, kind in _RANGES:
        if getattr(ip, attr):
            return kind
    if not ip.is_global:
        return "a non-public"
    return None


def address_problem(ip: IpAddress, *, allow_loopback: bool) -> str | None:
    """Why the app may not send a notice to ``ip``, or None."""
    kind = address_kind(ip)
    if kind is None or (allow_loopback and kind == LOOPBACK):
        return None
    inner = _embedded_ipv4(ip) if isinstance(ip, ipaddress.IPv6Address) else None
    shown = f"{ip} ({inner})" if inner is not None else str(ip)
    return f"{shown} is {kind} address, which only the app's own network can reach"
