"""The arbiter's prompt and the forgiving parser for its reply.

Members' answers are shown to the arbiter under neutral labels (``A``, ``B``,
...), never under model names. Models that support JSON schemas are asked for a
JSON object (:data:`ARBITER_SCHEMA`); others for tagged text, one tag per key of
:data:`ARBITER_KEYS`.

:func:`parse_arbiter_reply` never raises and runs in linear time. Where a reply
can be read several ways, it decides as follows:

- Sources, in order of precedence for each key: a JSON object holding arbiter
  keys (the whole reply, a code fence, or an object inside text), then tags,
  then ``Key: value`` lines (only when the reply has neither JSON nor tags).
- ``<thinking>``/``<think>`` blocks are dropped, as is everything before a
  ``</think>`` that was never opened; an opening tag that is never closed is
  ignored and the text after it kept. ``<answer label=...>``, ``<question>`` and
  ``<previous_synthesis>`` blocks are dropped too: they belong to the prompt,
  so a model that echoes its prompt does not produce a decision.
- A key that appears several times: the last occurrence wins (a warning says
  so); JSON's duplicate keys behave the same way.
- Confidence: ``0.85``, ``85%``, ``0.85/1``, ``17/20``, ``85 out of 100``,
  ``0,85``; a bare number above 1 and up to 100 is read on a 0-100 scale. Any
  other value (NaN, infinity, negative, above 100, words such as "high") is
  not a confidence, and the reply gets an error rather than an invented number.
  Unicode digits (Arabic-Indic, fullwidth, ...) are read as their ASCII digits.
  When a value holds several numbers, the first one is read.
- ``needs_iteration`` is read from its first word (yes/no/true/false/1/0); when
  it is missing or unreadable it stays out of the decision.
- Ranking: the known labels in the order they appear, duplicates and unknown
  labels dropped. Labels are matched as whole, case-sensitive words.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

ARBITER_KEYS = (
    "synthesis",
    "confidence",
    "analysis",
    "dissent",
    "needs_iteration",
    "refinement_areas",
    "ranking",
)

ARBITER_SCHEMA: dict = {
    "type": "object",
    "properties": {
        "synthesis": {
            "type": "string",
            "description": "The best combined answer to the question.",
        },
        "confidence": {
            "type": "number",
            "minimum": 0,
            "maximum": 1,
            "description": "How sure the arbiter is that the synthesis is right.",
        },
        "analysis": {
            "type": "string",
            "description": "The answers' strengths and weaknesses.",
        },
        "dissent": {
            "type": "string",
            "description": "Where the answers disagree, and which view lost.",
        },
        "needs_iteration": {
            "type": "boolean",
            "description": "Whether another round would improve the synthesis.",
        },
        "refinement_areas": {
            "type": "array",
            "items": {"type": "string"},
            "description": "What another round should improve.",
        },
        "ranking": {
            "type": "array",
            "items": {"type": "string"},
            "description": "The answer labels, best first.",
        },
    },
    "required": list(ARBITER_KEYS),
}

# Blocks that belong to the prompt or to the model's private reasoning.
_CONTEXT_TAG_NAMES = ("think", "thinking", "answer", "question", "previous_synthesis")
_NEUTRALISED_TAG_NAMES = _CONTEXT_TAG_NAMES + ARBITER_KEYS

_NEUTRALISE_PATTERN = re.compile(
    r"<(?=\s*/?\s*(?:"
    + "|".join(name.replace("_", "[_-]") for name in _NEUTRALISED_TAG_NAMES)
    + r")\b)",
    re.IGNORECASE,
)
_SECTION_PATTERN = re.compile(
    r"\s*(?:[-*\u2022]\s+)?(?:#{1,6}\s*)?(?:\*\*|__)?\s*\"?"
    r"(synthesis|confidence|analysis|dissent|needs[ _-]?iteration"
    r"|refinement[ _-]?areas|ranking)"
    r"(?:[ _-](?:level|score))?\"?\s*(?:\*\*|__)?"
    r"\s*(?:[:=\uff1a]\s*(?:\*\*|__)?|$)(.*)",
    re.IGNORECASE,
)
_NUMBER_PATTERN = re.compile(
    r"(?P<sign>[-\u2212])?"
    r"(?P<number>[0-9]+(?:[.,][0-9]+)?(?:e[-+]?[0-9]+)?|[.][0-9]+)"
    r"\s*(?P<percent>%)?"
    r"(?:\s*(?:/|out\s+of)\s*(?P<denominator>[0-9]+(?:[.][0-9]+)?))?",
    re.IGNORECASE,
)
_WORD_PATTERN = re.compile(r"\w+")
_BULLET_PATTERN = re.compile(r"^\s*(?:[-*+\u2022]|\d{1,3}[.)])\s*")
_NONE_WORDS = {"", "none", "n/a", "na", "nothing", "-"}
_TRUE_WORDS = {"yes", "y", "true", "1"}
_FALSE_WORDS = {"no", "n", "false", "0"}
# How much of a value is read where only its start matters.
_SHORT_VALUE = 300
# How many '{' are tried as the start of a JSON object inside text.
_JSON_START_ATTEMPTS = 8
# How many code fences are looked into for JSON.
_FENCES_READ = 100


def answer_labels(count: int) -> list[str]:
    """Neutral labels for ``count`` answers: A..Z, then AA, AB, ..."""
    labels = []
    for number in range(1, count + 1):
        label = ""
        while number:
            number, remainder = divmod(number - 1, 26)
            label = chr(ord("A") + remainder) + label
        labels.append(label)
    return labels


def build_member_prompt(
    prompt: str,
    *,
    iteration: int,
    previous_synthesis: str | None = None,
    refinement_areas: Sequence[str] = (),
) -> str:
    """The prompt a member answers: the user's prompt, plus feedback after round 1."""
    if iteration <= 1 or (not previous_synthesis and not refinement_areas):
        return prompt

    parts = [prompt, ""]
    if previous_synthesis:
        parts += [
            "A previous round of answers to this was combined into:",
            "<previous_synthesis>",
            neutralise_tags(previous_synthesis),
            "</previous_synthesis>",
            "",
        ]
    if refinement_areas:
        parts.append("It needs improving in these areas:")
        parts += [f"- {area}" for area in refinement_areas]
        parts.append("")
    parts.append(
        "Write an improved, complete answer to the original request above"
        + (", addressing these points." if refinement_areas else ".")
    )
    return "\n".join(parts)


def build_arbiter_prompt(
    prompt: str,
    answers: Sequence[tuple[str, str]],
    *,
    iteration: int,
    structured: bool,
    previous_synthesis: str | None = None,
    refinement_areas: Sequence[str] = (),
) -> str:
    """The arbiter's prompt: the question, the labelled answers and the reply format.

    :param answers: ``(label, text)`` pairs; the text is untrusted and its tags
        are neutralised so it cannot add labels or fake a decision.
    :param structured: ask for a JSON object rather than tagged text.
    """
    labels = ", ".join(label for label, _ in answers)
    parts = [
        "You are the arbiter of a consortium of language models. Several models"
        f" answered the question below. Their answers are labelled {labels};"
        " you are not told which model wrote which.",
        "",
        "<question>",
        neutralise_tags(prompt),
        "</question>",
        "",
    ]
    if iteration > 1 and previous_synthesis:
        parts += [
            f"This is round {iteration}. The previous round's synthesis was:",
            "<previous_synthesis>",
            neutralise_tags(previous_synthesis),
            "</previous_synthesis>",
            "",
        ]
    if iteration > 1 and refinement_areas:
        parts.append("The members were asked to improve:")
        parts += [f"- {neutralise_tags(area)}" for area in refinement_areas]
        parts.append("")
    for label, text in answers:
        parts += [f'<answer label="{label}">', neutralise_tags(text), "</answer>", ""]
    parts += [
        "Judge the answers on correctness, completeness and clarity. Write the"
        " best answer you can from them, say how confident you are in it, and"
        " rank the answers.",
        "",
    ]
    parts += _json_instructions() if structured else _tag_instructions()
    return "\n".join(parts)


def _json_instructions() -> list[str]:
    # No example values: a model that echoes this back must not parse.
    return [
        "Reply with a single JSON object and nothing else, with these keys:",
        '- "synthesis": your best combined answer, written for the person who asked',
        '- "confidence": how sure you are that the synthesis is right, as a'
        " decimal between zero and one",
        '- "analysis": a short comparison of the answers\' strengths and weaknesses',
        '- "dissent": where the answers disagree and which view lost, or an'
        " empty string",
        '- "needs_iteration": whether another round would improve the synthesis,'
        " as a JSON boolean",
        '- "refinement_areas": a list of what another round should improve',
        '- "ranking": a list of the labels of all answers, best first',
    ]


def _tag_instructions() -> list[str]:
    # Placeholders only: a model that echoes this back must not parse.
    return [
        "Reply with exactly these tags, in this order:",
        "<synthesis>your best combined answer, written for the person who asked"
        "</synthesis>",
        "<confidence>how sure you are that the synthesis is right, as a decimal"
        " between zero and one</confidence>",
        "<analysis>a short comparison of the answers' strengths and weaknesses"
        "</analysis>",
        "<dissent>where the answers disagree and which view lost, or none</dissent>",
        "<needs_iteration>whether another round would improve the synthesis:"
        " true or false</needs_iteration>",
        "<refinement_areas>what another round should improve, one item per line"
        "</refinement_areas>",
        "<ranking>the labels of all answers, best first, separated by commas</ranking>",
    ]


def neutralise_tags(text: str) -> str:
    """Escape the ``<`` of the tags our format uses, so text cannot forge one."""
    return _NEUTRALISE_PATTERN.sub("&lt;", text)


@dataclass
class ParsedReply:
    """What could be read from an arbiter's reply.

    :param decision: the keys of :data:`ARBITER_KEYS` that were found.
    :param error: one sentence when the decision is unusable (no synthesis or no
        valid confidence), otherwise ``None``.
    :param warnings: what was repaired on the way.
    """

    decision: dict = field(default_factory=dict)
    error: str | None = None
    warnings: list[str] = field(default_factory=list)


def parse_arbiter_reply(reply: str, labels: Sequence[str]) -> ParsedReply:
    """Read an arbiter's reply, forgivingly; never raises."""
    try:
        return _parse(reply, labels)
    except Exception as error:  # a parser bug must not end a run
        return ParsedReply(error=f"The arbiter's reply could not be parsed ({error}).")


def _parse(reply: str, labels: Sequence[str]) -> ParsedReply:
    parsed = ParsedReply()
    if not isinstance(reply, str):
        reply = "" if reply is None else str(reply)
    if not reply.strip():
        parsed.error = "The arbiter's reply was empty."
        return parsed

    text = _drop_context_blocks(reply, parsed.warnings)
    raw_values = _json_values(text, parsed.warnings)
    tag_values = _tag_values(text, parsed.warnings)
    for key, value in tag_values.items():
        raw_values.setdefault(key, value)
    if not raw_values:
        raw_values = _section_values(text, parsed.warnings)

    problems = _fill_decision(parsed, raw_values, labels)
    if problems:
        parsed.error = (
            "The arbiter's reply is not a usable decision: " + "; ".join(problems) + "."
        )
    return parsed


def _fill_decision(
    parsed: ParsedReply, raw_values: dict[str, Any], labels: Sequence[str]
) -> list[str]:
    decision, warnings = parsed.decision, parsed.warnings
    problems = []

    synthesis = _as_text(raw_values.get("synthesis"), "synthesis", warnings)
    if synthesis:
        decision["synthesis"] = synthesis
    else:
        problems.append("it has no synthesis")

    if "confidence" in raw_values:
        confidence, problem = _read_confidence(raw_values["confidence"], warnings)
        if problem:
            problems.append(problem)
        else:
            decision["confidence"] = confidence
    else:
        problems.append("it has no confidence")

    for key in ("analysis", "dissent"):
        if key in raw_values:
            decision[key] = _as_text(raw_values[key], key, warnings) or None

    if "needs_iteration" in raw_values:
        needs_iteration = _read_boolean(raw_values["needs_iteration"])
        if needs_iteration is None:
            warnings.append(
                "needs_iteration "
                f"{_preview(raw_values['needs_iteration'])} is not yes or no; ignored"
            )
        else:
            decision["needs_iteration"] = needs_iteration

    if "refinement_areas" in raw_values:
        decision["refinement_areas"] = _read_list(raw_values["refinement_areas"])

    if "ranking" in raw_values:
        decision["ranking"] = _read_ranking(raw_values["ranking"], labels, warnings)
    return problems


# Blocks ------------------------------------------------------------------------


class _Tag(NamedTuple):
    start: int
    end: int
    name: str
    closing: bool
    self_closing: bool
    attributes: str


def _tag_pattern(names: Sequence[str]) -> re.Pattern:
    # The name cannot backtrack and attributes are bounded, so each "<" costs at
    # most a few hundred steps.
    alternatives = "|".join(name.replace("_", "[_-]") for name in names)
    return re.compile(
        rf"<\s*(/?)\s*({alternatives})(?![\w-])((?:\s[^<>]{{0,300}})?)\s*(/?)>",
        re.IGNORECASE,
    )


_CONTEXT_TAG_PATTERN = _tag_pattern(_CONTEXT_TAG_NAMES)
_ARBITER_TAG_PATTERN = _tag_pattern(ARBITER_KEYS)


def _tags(text: str, pattern: re.Pattern) -> list[_Tag]:
    tags = []
    for match in pattern.finditer(text):
        closing, name, attributes, slash = match.groups()
        name = name.lower().replace("-", "_")
        tags.append(
            _Tag(
                match.start(), match.end(), name, bool(closing), bool(slash), attributes
            )
        )
    return tags


def _family(name: str) -> str:
    return "think" if name.startswith("think") else name


def _drop_context_blocks(text: str, warnings: list[str]) -> str:
    """Remove thinking blocks and blocks copied from the prompt."""
    tags = [
        tag
        for tag in _tags(text, _CONTEXT_TAG_PATTERN)
        if tag.name != "answer" or tag.closing or "label" in tag.attributes.lower()
    ]
    removed: list[tuple[int, int]] = []
    open_tag: _Tag | None = None
    depth = 0
    unopened_think = False
    for tag in tags:
        if open_tag is None:
            if not tag.closing and not tag.self_closing:
                open_tag, depth = tag, 1
            elif tag.closing and _family(tag.name) == "think":
                # A reasoning model whose opening tag was part of its template.
                removed = [(0, tag.end)]
                unopened_think = True
            continue
        if _family(tag.name) != _family(open_tag.name) or tag.self_closing:
            continue
        depth += -1 if tag.closing else 1
        if depth == 0:
            removed.append((open_tag.start, tag.end))
            open_tag = None
    if unopened_think:
        warnings.append("text before an unopened </think> was dropped")
    if open_tag is not None:
        warnings.append(f"an unclosed <{open_tag.name}> tag was ignored")

    pieces, position = [], 0
    for start, end in removed:
        if start >= position:
            pieces.append(text[position:start])
        position = max(position, end)
    pieces.append(text[position:])
    return "".join(pieces)


# JSON --------------------------------------------------------------------------


def _json_values(text: str, warnings: list[str]) -> dict[str, Any]:
    """The arbiter keys of the first JSON object in ``text`` that has any."""
    for candidate, repaired in _json_candidates(text):
        values = _arbiter_fields(candidate)
        if values:
            if repaired:
                warnings.append("the JSON reply was cut off and has been closed")
            return values
    return {}


def _json_candidates(text: str):
    decoder = json.JSONDecoder()
    stripped = text.strip()
    for source in [stripped, *_fenced_blocks(text)]:
        try:
            yield json.loads(source), False
        except (ValueError, RecursionError):
            pass

    start, attempts = stripped.find("{"), 0
    while start != -1 and attempts < _JSON_START_ATTEMPTS:
        attempts += 1
        try:
            yield decoder.raw_decode(stripped, start)[0], False
        except (ValueError, RecursionError):
            if attempts == 1:
                yield from _closed_json(stripped[start:], decoder)
        start = stripped.find("{", start + 1)


def _closed_json(fragment: str, decoder: json.JSONDecoder):
    """Try to finish a JSON object that was cut off."""
    for ending in ('"}', "}", '"]}', "]}"):
        try:
            yield decoder.raw_decode(fragment.rstrip().rstrip(",") + ending)[0], True
            return
        except (ValueError, RecursionError):
            pass


def _fenced_blocks(text: str) -> list[str]:
    """The bodies of the first code fences that look like JSON objects."""
    blocks, position = [], 0
    for _ in range(_FENCES_READ):
        start = text.find("```", position)
        end = text.find("```", start + 3) if start != -1 else -1
        if end == -1:
            break
        body = text[start + 3 : end]
        first_line, newline, rest = body.partition("\n")
        if newline and re.fullmatch(r"\s*[\w+-]*\s*", first_line):
            body = rest
        if body.lstrip().startswith("{"):
            blocks.append(body)
        position = end + 3
        if len(blocks) == _JSON_START_ATTEMPTS:
            break
    return blocks


def _arbiter_fields(candidate: Any) -> dict[str, Any]:
    if not isinstance(candidate, dict):
        return {}
    values = {}
    for key, value in candidate.items():
        name = str(key).strip().lower().replace("-", "_").replace(" ", "_")
        if name in ARBITER_KEYS:
            values[name] = value
    if not values and len(candidate) == 1:
        # One wrapper level, as in {"decision": {...}}.
        return _arbiter_fields(next(iter(candidate.values())))
    return values


# Tags --------------------------------------------------------------------------


def _tag_values(text: str, warnings: list[str]) -> dict[str, str]:
    """The text inside each arbiter tag; the last top-level occurrence wins."""
    tags = _tags(text, _ARBITER_TAG_PATTERN)
    values: dict[str, str] = {}
    for key in ARBITER_KEYS:
        regions = _tag_regions(text, tags, key, warnings)
        if len(regions) > 1:
            warnings.append(f"{len(regions)} {key} values; the last was used")
        if regions:
            values[key] = _unwrap(text[regions[-1][0] : regions[-1][1]], key)
    return values


def _tag_regions(
    text: str, tags: list[_Tag], key: str, warnings: list[str]
) -> list[tuple[int, int]]:
    """The (start, end) of each top-level value of ``key``."""
    regions = []
    start = depth = unopened = 0
    previous_end = 0  # end of the latest top-level arbiter tag of any key
    for tag in tags:
        if tag.name != key:
            if depth == 0:
                previous_end = tag.end
            continue
        if depth == 0 and tag.self_closing:
            regions.append((tag.end, tag.end))
        elif depth == 0 and tag.closing:
            unopened += 1
            regions.append((previous_end, tag.start))
        elif depth == 0:
            start, depth = tag.end, 1
        elif tag.closing:
            depth -= 1
            if depth == 0:
                regions.append((start, tag.start))
        elif not tag.self_closing:
            depth += 1
        previous_end = tag.end
    if unopened:
        warnings.append(f"</{key}> had no opening tag")

    if depth:
        # A missing closing tag: the value runs to the next key's tag or the end.
        end = next(
            (
                tag.start
                for tag in tags
                if tag.start >= start and not tag.closing and tag.name != key
            ),
            len(text),
        )
        warnings.append(f"<{key}> had no closing tag")
        regions.append((start, end))
    return regions


def _unwrap(value: str, key: str) -> str:
    """Strip a tag that wraps its own copy, as in ``<ranking><ranking>A</ranking>``."""
    value = value.strip()
    opening, closing = f"<{key}>", f"</{key}>"
    while value.lower().startswith(opening) and value.lower().endswith(closing):
        value = value[len(opening) : -len(closing)].strip()
    return value


# Labelled lines ----------------------------------------------------------------


def _section_values(text: str, warnings: list[str]) -> dict[str, str]:
    """Values from ``Confidence: 0.8`` lines and ``## Synthesis`` headings."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        match = _SECTION_PATTERN.match(line) if len(line) < 20_000 else None
        if match:
            key = re.sub(r"[ _-]+", "_", match.group(1).lower())
            key = {"needsiteration": "needs_iteration"}.get(key, key)
            key = {"refinementareas": "refinement_areas"}.get(key, key)
            current = sections[key] = [match.group(2)]
        elif current is not None:
            current.append(line)
    if sections:
        warnings.append("the reply had no tags; labelled lines were read instead")
    return {
        key: "\n".join(lines).strip().strip(",").strip().strip('"').strip()
        for key, lines in sections.items()
    }


# Values ------------------------------------------------------------------------


def _preview(value: Any, length: int = 40) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = " ".join(text.split())
    return repr(text if len(text) <= length else text[: length - 3] + "...")


def _as_text(value: Any, key: str, warnings: list[str]) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip()
    warnings.append(f"{key} was not text; its JSON is kept")
    return json.dumps(value, ensure_ascii=False, default=str)


def _ascii_digits(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\u066b", ".").replace("\u066a", "%").replace("\u066c", ",")
    return "".join(
        str(unicodedata.decimal(character))
        if not character.isascii() and unicodedata.decimal(character, None) is not None
        else character
        for character in text
    )


def _read_confidence(value: Any, warnings: list[str]) -> tuple[float | None, str]:
    """A confidence in [0, 1], or ``None`` and a phrase saying what is wrong."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None, f"its confidence {_preview(value)} is not a number"
    if isinstance(value, str):
        return _read_confidence_text(value, warnings)
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    return _scale_confidence(number, str(value), warnings)


def _read_confidence_text(value: str, warnings: list[str]) -> tuple[float | None, str]:
    text = _ascii_digits(value.strip()[:_SHORT_VALUE])
    match = _NUMBER_PATTERN.search(text)
    if not match:
        return None, f"its confidence {_preview(value)} is not a number"
    if _NUMBER_PATTERN.search(text, match.end()):
        warnings.append(f"confidence {_preview(value)} holds several numbers")

    number = float(match.group("number").replace(",", "."))
    if match.group("sign"):
        number = -number
    if match.group("denominator"):
        denominator = float(match.group("denominator"))
        if denominator <= 0 or not 0 <= number <= denominator:
            return None, f"its confidence {_preview(value)} is not a fraction of 1"
        return number / denominator, ""
    if match.group("percent"):
        if not 0 <= number <= 100:
            return None, f"its confidence {_preview(value)} is not a percentage"
        return number / 100, ""
    return _scale_confidence(number, match.group(0).strip(), warnings)


def _scale_confidence(
    number: float, shown: str, warnings: list[str]
) -> tuple[float | None, str]:
    if not math.isfinite(number) or number < 0 or number > 100:
        return None, f"its confidence {_preview(shown)} is not between 0 and 1"
    # Limitation: a bare number above 1 is read as a percentage, so "8" meant on
    # a 0-10 scale becomes 0.08; only "8/10" says which scale was meant.
    if number > 1:
        warnings.append(f"confidence {shown} read as {number / 100:g}")
        return number / 100, ""
    return number, ""


def _read_boolean(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if not isinstance(value, str):
        return None
    words = _WORD_PATTERN.findall(value[:_SHORT_VALUE].lower())
    if not words:
        return None
    if words[0] in _TRUE_WORDS:
        return True
    if words[0] in _FALSE_WORDS:
        return False
    return None


def _json_list(value: Any) -> Any:
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            return json.loads(value.strip())
        except (ValueError, RecursionError):
            pass
    return value


def _read_list(value: Any) -> list[str]:
    """Items of a JSON list, a bulleted list, or a comma-separated line."""
    value = _json_list(value)
    if isinstance(value, list):
        items = [item if isinstance(item, str) else json.dumps(item) for item in value]
    elif isinstance(value, str):
        lines = [line for line in value.splitlines() if line.strip()]
        if len(lines) == 1 and not _BULLET_PATTERN.match(lines[0]):
            separator = ";" if ";" in lines[0] else ","
            lines = lines[0].split(separator)
        items = [_BULLET_PATTERN.sub("", line, count=1) for line in lines]
    else:
        items = [] if value is None else [json.dumps(value, default=str)]
    cleaned = [item.strip() for item in items]
    return [item for item in cleaned if item.lower().rstrip(".") not in _NONE_WORDS]


def _read_ranking(value: Any, labels: Sequence[str], warnings: list[str]) -> list[str]:
    # Limitation: labels are matched as whole words, so with nine or more answers
    # the label "I" also matches the pronoun in "I rank B first".
    value = _json_list(value)
    if isinstance(value, list):
        text = "\n".join(str(item) for item in value)
    elif isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, default=str)

    known, ranking, unknown = set(labels), [], 0
    for word in _WORD_PATTERN.findall(text):
        if word in known:
            if word not in ranking:
                ranking.append(word)
        elif word.isupper() and len(word) <= 3:
            unknown += 1
    if unknown:
        warnings.append(f"{unknown} unknown label(s) dropped from the ranking")
    return ranking
