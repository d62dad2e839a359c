"""Text made storable at the boundary: Postgres TEXT holds neither NUL nor a lone surrogate.

A provider's answer (and, until producer-side validation refuses them, a producer's content)
may carry both; storing them raises ``DataError`` or ``UnicodeEncodeError`` and would leave
the job unfinishable. They are replaced with U+FFFD, and the caller says so in the job's detail.

Where it applies, so that nothing stored or returned in a JobResult escapes it:
- a provider's text, once, as the client reads it (``Completion.content``, with the count in
  ``Completion.replaced``; workers/llm/openrouter.py): every attempt row, answer, summary and
  cached answer is made from it;
- text decoded out of a provider's text (a batched analysis's JSON answers may escape a NUL
  as ``\u0000``; workers/pipeline/batch.py);
- a producer's content at admission (workers/pipeline/admission.py).
"""

from __future__ import annotations

import re

REPLACEMENT = "\ufffd"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> tuple[str, int]:
    """``text`` with every NUL and lone surrogate replaced, and how many were replaced.

    Python ``str`` holds surrogates only unpaired (a pair would be one code point), so every
    code point in U+D800..U+DFFF is a lone surrogate.
    """
    cleaned, count = _UNSTORABLE.subn(REPLACEMENT, text)
    return cleaned, count


def replacement_note(what: str, count: int) -> str:
    return f"{what} contained {count} character(s) that cannot be stored (NUL or lone surrogate), replaced with U+FFFD"
