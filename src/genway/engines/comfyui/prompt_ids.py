"""The prompt ids Genway shows ComfyUI clients and sends upstream: derived from the job.

A prompt id is a UUID whose first 20 hex digits are a random nonce kept in the job's input and
whose last 12 are the job id. Looking one up is a primary-key read plus a nonce comparison, with
no extra table; an id cannot be guessed from a job id, and two Genway installations sharing a
ComfyUI backend never produce the same id (a backend's history is keyed by it).
"""

from __future__ import annotations

import re
import uuid

MAX_JOB_ID = 16**12 - 1
_NONCE = re.compile(r"^[0-9a-f]{20}$")
_PROMPT_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
NONCE_PATTERN = _NONCE.pattern


def new_nonce() -> str:
    # The first 20 hex digits of a random UUID keep its version and variant digits.
    return uuid.uuid4().hex[:20]


def prompt_id_for(nonce: str, job_id: int) -> str:
    """The prompt id of a job. Raises ValueError for a malformed nonce or job id."""
    if not _NONCE.match(nonce) or not 0 < job_id <= MAX_JOB_ID:
        raise ValueError("malformed prompt nonce or job id")
    return str(uuid.UUID(hex=f"{nonce}{job_id:012x}"))


def parse_prompt_id(prompt_id: str) -> tuple[str, int] | None:
    """(nonce, job id) of a prompt id Genway issued; None for anything else."""
    text = prompt_id.strip().lower()
    if not _PROMPT_ID.match(text):
        return None
    digits = text.replace("-", "")
    job_id = int(digits[20:], 16)
    return (digits[:20], job_id) if job_id > 0 else None
