"""The GB/T 28181 dialect of SDP used in INVITE offers and answers.

Beyond RFC 4566 it adds `y=` (the 10-digit SSRC, first digit 0 live / 1 history) and `f=` (media
description, often empty), `u=`/`t=` for playback and download, and for TCP media the RFC 4145
`a=setup:` / `a=connection:` attributes. Field devices write it loosely (no trailing CRLF, empty
`f=`, vendor `a=` lines such as username/password), so the parser keeps what it does not know.
"""

from __future__ import annotations

from dataclasses import dataclass, field

_DEFAULT_PAYLOADS = {96: "PS/90000"}


@dataclass
class Sdp:
    session: str = "Play"
    origin_user: str = ""
    address: str = ""
    port: int = 0
    transport: str = "udp"
    setup: str | None = None
    ssrc: str | None = None
    media_format: str | None = None
    uri: str | None = None
    start: int = 0
    end: int = 0
    payloads: dict[int, str] = field(default_factory=lambda: dict(_DEFAULT_PAYLOADS))
    direction: str = "recvonly"
    stream_number: int | None = None
    download_speed: int | None = None
    media: str = "video"
    connection: str | None = None  # a=connection:new|existing (TCP)
    attributes: list[tuple[str, str]] = field(default_factory=list)  # other a= lines, in order

    @property
    def payload_types(self) -> list[int]:
        return list(self.payloads)

    def attribute(self, name: str) -> str | None:
        for k, v in self.attributes:
            if k == name:
                return v
        return None

    def to_bytes(self) -> bytes:
        """Serialise with CRLF line ends, `y=`/`f=` last as devices expect."""
        proto = "TCP/RTP/AVP" if self.transport == "tcp" else "RTP/AVP"
        lines = [
            "v=0",
            f"o={self.origin_user or '-'} 0 0 IN IP4 {self.address}",
            f"s={self.session}",
        ]
        if self.uri is not None:
            lines.append(f"u={self.uri}")
        lines += [
            f"c=IN IP4 {self.address}",
            f"t={self.start} {self.end}",
            f"m={self.media} {self.port} {proto} {' '.join(str(p) for p in self.payloads)}",
            f"a={self.direction}",
        ]
        lines += [f"a=rtpmap:{pt} {name}" for pt, name in self.payloads.items()]
        if self.transport == "tcp":
            if self.setup:
                lines.append(f"a=setup:{self.setup}")
            lines.append(f"a=connection:{self.connection or 'new'}")
        if self.stream_number is not None:
            lines.append(f"a=streamnumber:{self.stream_number}")
        if self.download_speed is not None:
            lines.append(f"a=downloadspeed:{self.download_speed}")
        for k, v in self.attributes:
            lines.append(f"a={k}:{v}" if v != "" else f"a={k}")
        if self.ssrc is not None:
            lines.append(f"y={self.ssrc}")
        if self.media_format is not None:
            lines.append(f"f={self.media_format}")
        return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def _int(value: str, what: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise ValueError(f"SDP {what} is not a number: {value!r}") from None


def parse_sdp(body: bytes) -> Sdp:
    """Parse an SDP body. Tolerant of missing trailing CRLF, empty `f=`, unknown `a=` lines.

    Raises ValueError when the body is not SDP at all (a line not of the form `x=...`, no `v=`
    and no `m=` line, or numbers that are not numbers).
    """
    if isinstance(body, str):
        text = body
    else:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text = body.decode("gb18030", errors="replace")
    sdp = Sdp(payloads={}, direction="sendrecv")
    seen_v = seen_m = False
    in_media = False
    chosen = False  # first video m= (or first m= at all) is the one described
    rtpmaps: dict[int, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if len(line) < 2 or line[1] != "=" or not line[0].isalpha():
            raise ValueError(f"not an SDP line: {line[:40]!r}")
        key, value = line[0], line[2:].strip()
        if key == "v":
            seen_v = True
        elif key == "o":
            parts = value.split()
            sdp.origin_user = parts[0] if parts else ""
            if len(parts) >= 6 and not sdp.address:
                sdp.address = parts[5]
        elif key == "s":
            sdp.session = value
        elif key == "u":
            sdp.uri = value
        elif key == "c":
            parts = value.split()
            if len(parts) >= 3 and (not chosen or in_media):
                sdp.address = parts[2].split("/")[0]
        elif key == "t":
            parts = value.split()
            if len(parts) >= 2:
                sdp.start = _int(parts[0], "t= start")
                sdp.end = _int(parts[1], "t= end")
        elif key == "m":
            seen_m = True
            parts = value.split()
            if len(parts) < 3:
                raise ValueError(f"bad m= line: {value!r}")
            if chosen and sdp.media == "video":
                in_media = False  # later m= sections (audio) are ignored
                continue
            sdp.media = parts[0]
            sdp.port = _int(parts[1].split("/")[0], "m= port")
            sdp.transport = "tcp" if "TCP" in parts[2].upper() else "udp"
            sdp.payloads = {}
            for pt_text in parts[3:]:
                if pt_text.isdigit():
                    sdp.payloads[int(pt_text)] = ""
            chosen = True
            in_media = True
        elif key == "a":
            name, _, val = value.partition(":")
            name = name.strip()
            val = val.strip()
            lname = name.lower()
            if lname in ("recvonly", "sendonly", "sendrecv", "inactive"):
                sdp.direction = lname
            elif lname == "rtpmap":
                pt_s, _, enc = val.partition(" ")
                if pt_s.strip().isdigit():
                    rtpmaps[int(pt_s)] = enc.strip()
            elif lname == "setup":
                sdp.setup = val.lower() or None
            elif lname == "connection":
                sdp.connection = val.lower() or None
            elif lname == "streamnumber":
                sdp.stream_number = _int(val, "a=streamnumber")
            elif lname == "downloadspeed":
                sdp.download_speed = _int(val, "a=downloadspeed")
            else:
                sdp.attributes.append((name, val))
        elif key == "y":
            sdp.ssrc = value
        elif key == "f":
            sdp.media_format = value
        # b=, i=, e=, p=, k=, z=, r= are accepted and ignored
    if not seen_v and not seen_m:
        raise ValueError("not SDP: no v= and no m= line")
    for ptn in list(sdp.payloads):
        sdp.payloads[ptn] = rtpmaps.get(ptn, "")
    for ptn, enc in rtpmaps.items():
        sdp.payloads.setdefault(ptn, enc)
    return sdp


def make_ssrc(domain: str, history: bool, serial: int) -> str:
    """SSRC for `y=`: "0" live / "1" history + domain digits 4..8 + 4-digit serial."""
    mid = (domain[3:8] if len(domain) >= 8 else domain[3:].ljust(5, "0"))[:5]
    if not mid.isdigit():
        mid = "00000"
    return f"{'1' if history else '0'}{mid}{serial % 10000:04d}"


def play_offer(
    *,
    origin_user: str,
    address: str,
    port: int,
    ssrc: str,
    transport: str = "udp",
    setup: str | None = None,
    session: str = "Play",
    uri: str | None = None,
    start: int = 0,
    end: int = 0,
    stream_number: int | None = None,
    download_speed: int | None = None,
    payloads: dict[int, str] | None = None,
) -> Sdp:
    """An INVITE offer as the platform sends it (receiver side: recvonly).

    transport: "udp", "tcp-passive" (platform listens: a=setup:passive) or "tcp-active" (platform
    connects: a=setup:active), or "tcp" with an explicit `setup`.
    """
    tr = "udp"
    if transport.startswith("tcp"):
        tr = "tcp"
        if setup is None:
            setup = "active" if transport == "tcp-active" else "passive"
    if session in ("Playback", "Download") and uri is None:
        uri = f"{origin_user}:0"
    return Sdp(
        session=session,
        origin_user=origin_user,
        address=address,
        port=port,
        transport=tr,
        setup=setup if tr == "tcp" else None,
        ssrc=ssrc,
        media_format="",
        uri=uri,
        start=start,
        end=end,
        payloads=dict(payloads) if payloads else {96: "PS/90000", 98: "H264/90000", 97: "MPEG4/90000"},
        direction="recvonly",
        stream_number=stream_number,
        download_speed=download_speed,
    )
