"""Answers to stream inputs: written once per input, acknowledged in the same atomic step.

An input may run twice: its worker was slow and another reclaimed it (`store.streams`), or
its worker died after computing. One Lua script writes an answer only while its input is
still pending in the group, and in the same step acknowledges (XACK) and deletes (XDEL) the
input, so whichever run finishes first answers and the other writes nothing. An input
delivered too often becomes a dead letter: an `error` answer, and its fields kept in `:dead`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from redis import Redis

from store import codec, keys, lua
from store.streams import GROUP, Entry

DEAD_MAXLEN = 10_000  # dead letters kept per stream

# KEYS: in, out, dead. ARGV: group, out MAXLEN, dead MAXLEN, then per input: its entry id,
# the number of answer fields, those fields, the number of dead-letter fields, those fields.
# XACK answers 1 only for an input still pending in the group, so it is the test of "never
# answered before" as well as the acknowledgement (one command an input instead of XPENDING
# and XACK: the profile of `digits bench stream` put 6% of a worker's time in this script).
# Returns how many answers were written.
_ANSWER = lua.script(
    """
local acked, i = {}, 4
while i <= #ARGV do
  local in_id = ARGV[i]
  local out_first = i + 2
  local out_last = out_first + tonumber(ARGV[i + 1]) - 1
  local dead_first = out_last + 2
  local dead_last = dead_first + tonumber(ARGV[out_last + 1]) - 1
  if redis.call('XACK', KEYS[1], ARGV[1], in_id) == 1 then
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, out_first, out_last))
    if dead_last >= dead_first then
      redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', unpack(ARGV, dead_first, dead_last))
    end
    acked[#acked + 1] = in_id
  end
  i = dead_last + 1
end
for first = 1, #acked, 1000 do
  redis.call('XDEL', KEYS[1], unpack(acked, first, math.min(first + 999, #acked)))
end
return #acked
"""
)


@dataclass(frozen=True)
class Answer:
    """What to write for one input: answer fields, and dead-letter fields when it is one."""

    entry: Entry
    fields: dict[str, str]
    dead: dict[str, str | bytes] | None = None


def answer_fields(
    entry: Entry, probabilities: NDArray[np.floating], uncertain: bool, model_version: str
) -> dict[str, str]:
    """Return the answer to one input: label, confidence, uncertain, probabilities, version.

    `probabilities` is one image's `(10,)`; it travels as a JSON list, 6 significant digits.
    """
    return _echo(entry) | {
        "label": str(int(probabilities.argmax())),
        "confidence": f"{float(probabilities.max()):.6g}",
        "uncertain": "true" if uncertain else "false",
        "probabilities": json.dumps([float(f"{p:.6g}") for p in probabilities.tolist()]),
        "model_version": model_version,
    }


def error_fields(entry: Entry, message: str) -> dict[str, str]:
    """Return the answer to an input that cannot be labelled: `error` instead of a label."""
    return _echo(entry) | {"error": message}


def dead_letter(entry: Entry) -> Answer:
    """Return the answer for an input delivered too often, and its dead-letter entry."""
    reason = (
        f"no answer after {entry.deliveries - 1} deliveries: each worker that took it "
        "stopped before answering"
    )
    dead: dict[str, str | bytes] = {"in_id": entry.entry_id, "reason": reason}
    dead |= {codec.text(field): value for field, value in entry.fields.items()}
    message = f"{reason}; the input is kept in {keys.stream_dead(entry.stream)}"
    return Answer(entry, error_fields(entry, message), dead)


def write(connection: Redis, name: str, answers: Sequence[Answer], maxlen: int) -> int:
    """Write the answers of stream `name` whose inputs are still pending; acknowledge them.

    Returns how many were written: an input answered before (it ran twice) is skipped.
    """
    if not answers:
        return 0
    args: list[Any] = [GROUP, maxlen, DEAD_MAXLEN]
    for answer in answers:
        dead = answer.dead or {}
        args += [answer.entry.entry_id, 2 * len(answer.fields)]
        args += [item for pair in answer.fields.items() for item in pair]
        args += [2 * len(dead)] + [item for pair in dead.items() for item in pair]
    stream_keys = [keys.stream_in(name), keys.stream_out(name), keys.stream_dead(name)]
    return int(lua.run(connection, _ANSWER, stream_keys, args))


def _echo(entry: Entry) -> dict[str, str]:
    echoed = {"in_id": entry.entry_id}
    client_id = entry.fields.get(b"id")
    if client_id is not None:
        echoed["id"] = client_id.decode("utf-8", "replace")
    return echoed
