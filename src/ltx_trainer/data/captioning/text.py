"""Caption text: the instruction prompts, the two styles, speech quoting, trigger words and LLM cleanup."""

from __future__ import annotations

import re

from ltx_trainer.data.captioning.base import CAPTION_STYLES, SECTIONS, CaptionStyle, MediaKind

_SUBJECT = {"video": "video clip", "image": "image", "audio": "audio clip"}


def caption_prompt(
    style: CaptionStyle = "dense", kind: MediaKind = "video", has_audio: bool = True, transcript: str | None = None
) -> str:
    """The instruction given to a VLM for one media file.

    Args:
        style: ``"dense"`` (one paragraph) or ``"sections"`` (``[VISUAL]/[SPEECH]/[SOUNDS]/[TEXT]``).
        kind: What the model is shown.
        has_audio: Whether the model also hears the soundtrack (Omni models, audio-capable servers).
        transcript: Speech already transcribed by Whisper, to be quoted verbatim.
    """
    if style not in CAPTION_STYLES:
        raise ValueError(f"unknown caption style {style!r}; use one of {', '.join(CAPTION_STYLES)}")
    subject = _SUBJECT[kind]
    knows_speech = has_audio or bool(transcript)
    visuals = (
        "the subjects and their appearance, the actions and how they move, the setting, the camera angle and camera "
        "movement, the lighting, colours and visual style, and any visible on-screen text"
    )
    sounds = "music (genre, instruments, tempo, mood), ambient noise and sound effects"
    if knows_speech:
        speech_rule = 'Quote every spoken word exactly in double quotes, saying who speaks, e.g. A man says, "Hello."'
    else:
        speech_rule = "" if kind == "image" else "You cannot hear the audio; describe only what is seen."
    if style == "dense":
        if kind == "audio":
            describe = f"Describe the sounds: {sounds}, and the voices."
        else:
            describe = f"Describe {visuals}" + (f"; then describe the sounds: {sounds}." if has_audio else ".")
        parts = [
            f"Describe this {subject} in one dense paragraph of plain prose, written as a caption for training a "
            "text-to-video model.",
            describe,
            *([speech_rule] if speech_rule else []),
            "Describe only what is seen and heard, in the present tense. Do not start with 'The video shows' or any "
            "preamble, and do not use lists, headings or markdown.",
        ]
    else:
        parts = [
            f"Describe this {subject} for training a text-to-video model, using exactly these four labelled "
            "sections on one line each:",
            "[VISUAL]: none (audio only)" if kind == "audio" else f"[VISUAL]: {visuals}",
            "[SPEECH]: the exact words spoken, in double quotes, with who speaks; 'none' if nobody speaks"
            if knows_speech
            else "[SPEECH]: none (you cannot hear the audio)",
            f"[SOUNDS]: {sounds}; 'none' if silent" if has_audio else "[SOUNDS]: none (you cannot hear the audio)",
            "[TEXT]: any text visible on screen, verbatim; 'none' if there is none",
            "Write nothing before or after the four sections and do not use markdown.",
        ]
    if transcript:
        parts.append(f'A speech recogniser transcribed the dialogue as: "{transcript}". Quote it as spoken.')
    return "\n".join(parts)


_SECTION_RE = re.compile(r"\[\s*(VISUAL|SPEECH|SOUNDS|TEXT)\s*\]\s*:?\s*", re.IGNORECASE)


def parse_sections(text: str) -> dict[str, str]:
    """The ``[VISUAL]/[SPEECH]/[SOUNDS]/[TEXT]`` sections of a caption (missing ones are absent from the dict)."""
    pieces = _SECTION_RE.split(text)
    sections: dict[str, str] = {}
    for label, body in zip(pieces[1::2], pieces[2::2], strict=True):
        body = re.sub(r"\s+", " ", body).strip()
        sections[label.upper()] = f"{sections[label.upper()]} {body}".strip() if label.upper() in sections else body
    return sections


def format_sections(sections: dict[str, str]) -> str:
    """``[VISUAL]: … [SPEECH]: … [SOUNDS]: … [TEXT]: …`` in that order; empty or missing sections read ``none``."""
    return " ".join(f"[{label}]: {sections.get(label, '').strip() or 'none'}" for label in SECTIONS)


def _normalise_quotes(text: str) -> str:
    return re.sub(r"[^\w]+", " ", text.lower()).strip()


def add_speech(caption: str, transcript: str | None, style: CaptionStyle = "dense") -> str:
    """Add the quoted ``transcript`` to ``caption`` unless the caption already quotes it.

    Dense captions get `` The speaker says: "…"`` appended; sectioned ones get it as their ``[SPEECH]`` section when
    that section is missing or ``none``.
    """
    transcript = (transcript or "").strip().strip('"').strip()
    if not transcript or _normalise_quotes(transcript) in _normalise_quotes(caption):
        return caption
    if style == "sections":
        sections = parse_sections(caption)
        if sections and sections.get("SPEECH", "none").lower().strip(". ") not in ("", "none"):
            return caption
        if not sections:
            sections = {"VISUAL": caption.strip()}
        sections["SPEECH"] = f'"{transcript}"'
        return format_sections(sections)
    caption = caption.rstrip()
    separator = " " if not caption or caption[-1] in ".!?\"'" else ". "
    return f'{caption}{separator}The speaker says: "{transcript}"'.strip()


def apply_trigger(caption: str, trigger: str | None) -> str:
    """Prepend the LoRA trigger word (once) to a caption."""
    if not trigger:
        return caption
    trigger = trigger.strip()
    if caption == trigger or caption.startswith((f"{trigger} ", f"{trigger},")):
        return caption
    return f"{trigger} {caption}".strip()


# Openers that chat models put before the caption itself ("Sure! Here's a description of the video:").
_PREAMBLE_RES = [
    re.compile(p, re.IGNORECASE)
    for p in (
        r"^(?:sure(?: thing)?|certainly|of course|absolutely|okay|ok|alright)\s*[!.,:]\s*",
        r"^here(?:'s| is| are)\b[^\n:.]{0,100}?(?:description|caption|summary|breakdown)[^\n:.]{0,60}[:.]\s*",
        r"^here(?:'s| is| are)\b[^\n:.]{0,60}:\s*",
        r"^(?:video |dense |final |detailed )?(?:caption|description|summary)\s*:\s*",
    )
]
# "The video shows ..." / "In this video, ..." sentence openers.
_SUBJECT_WORDS = r"(?:video|clip|footage|image|picture|photo|frame|frames|scene|audio|audio clip|recording|sequence)"
_OPENER_RES = [
    re.compile(p, re.IGNORECASE)
    for p in (
        rf"^(?:in|within|throughout) (?:this|the) {_SUBJECT_WORDS}(?: clip)?\s*,?\s*",
        rf"^(?:this|the) {_SUBJECT_WORDS}(?: clip)? (?:shows|depicts|features|captures|presents|displays|showcases|"
        r"portrays|contains|begins with|opens with|starts with)\s*:?\s*",
        rf"^(?:this|the) {_SUBJECT_WORDS} (?:is of|is a (?:video|clip|recording) of)\s+",
        rf"^(?:we see|we can see|you can see|it shows|in the {_SUBJECT_WORDS},? we see)\s+",
    )
]
# Offers after the caption ("Let me know if you need anything else!"), only as a sentence of their own.
_CLOSER_RE = re.compile(
    r"(?<=[.!?\"”])\s*(?:let me know|i hope this|hope this helps|feel free to|is there anything else|"
    r"if you (?:need|want|would like) (?:any|more|anything|further|me|a different))[^\n]*$",
    re.IGNORECASE,
)
_QUOTE_PAIRS = {'"': '"', "'": "'", "“": "”", "‘": "’", "«": "»", "`": "`"}


_LABEL_LINE_RE = re.compile(
    r"^(?:(?:video|image|audio|dense|final|detailed)\s+)?(?:caption|description|summary)\s*:?$", re.IGNORECASE
)


def _strip_markdown(text: str) -> str:
    text = re.sub(r"```[a-zA-Z0-9_-]*\n?", "", text)  # code fences
    lines = []
    for line in text.splitlines():
        heading = re.match(r"^\s{0,3}#{1,6}\s+(.*)$", line)
        if heading:
            line = heading.group(1)
            if _LABEL_LINE_RE.match(line.strip(" *_")):
                continue  # "## Description": a title, not caption text
        bullet = re.match(r"^\s*(?:[-*+•]|\d+[.)])\s+(.*)$", line)
        if bullet:  # list items become sentences
            line = bullet.group(1).strip()
            if line and line[-1] not in ".!?:;\"'”":
                line += "."
            line = line[:1].upper() + line[1:]
        lines.append(line)
    text = "\n".join(lines)
    text = re.sub(r"(\*\*|__)(.+?)\1", r"\2", text, flags=re.DOTALL)  # bold
    text = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"\1", text)  # italic
    text = re.sub(r"(?<!\w)_(?!\s)(.+?)(?<!\s)_(?!\w)", r"\1", text)
    text = re.sub(r"`([^`]*)`", r"\1", text)
    return text.replace("**", "")


def _unquote(text: str) -> str:
    while len(text) >= 2 and _QUOTE_PAIRS.get(text[0]) == text[-1]:
        inner = text[1:-1]
        if text[0] in inner or (text[-1] != text[0] and text[-1] in inner):
            break  # "a" and "b" — quotes inside, not one wrapped string
        text = inner.strip()
    return text


def clean_caption(text: str) -> str:
    """Strip what chat models wrap around a caption and normalise whitespace.

    Removes ``<think>…</think>`` reasoning, markdown (headings, bold, bullets, code fences), openers such as
    "Sure! Here's a description of the video:", "The video shows" or "In this video,", closing offers such as
    "Let me know if …", and quotes around the whole caption; then collapses all whitespace to single spaces and
    capitalises the first letter. Section labels (``[VISUAL]:`` …) are kept.
    """
    text = re.sub(r"<think>.*?</think>", " ", text, flags=re.DOTALL | re.IGNORECASE)
    text = re.sub(r"^.*?</think>", " ", text, flags=re.DOTALL | re.IGNORECASE)  # reasoning whose opening tag was cut
    text = _strip_markdown(text)
    text = re.sub(r"\s+", " ", text).strip()
    for _ in range(4):  # openers come stacked: 'Sure! Here is the caption: "The video shows ..."'
        before = text
        text = _unquote(text)
        for pattern in _PREAMBLE_RES:
            text = pattern.sub("", text, count=1).strip()
        text = _unquote(text)
        for pattern in _OPENER_RES:
            text = pattern.sub("", text, count=1).strip()
        if text == before:
            break
    text = _CLOSER_RE.sub("", text).strip()
    text = _unquote(text)
    text = re.sub(r"\s+([,.;:!?])", r"\1", text)
    text = re.sub(r"\s+", " ", text).strip()
    if text and text[0].islower():
        text = text[0].upper() + text[1:]
    return text
