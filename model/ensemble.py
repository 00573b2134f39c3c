"""An ensemble: several networks whose logits are averaged, stored in one weights file.

Averaging logits (a geometric mean of the members' probabilities) and then one temperature
fitted on the validation split keeps a single calibrated model with the same interface as
one network. The file is an ordinary weights file: the metadata's `architecture` is
`{"name": "ensemble", "members": [...]}` with each member's own metadata, and member i's
arrays are stored under `m<i>.<layer index>.<name>`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from model.layers import Array
from model.network import Classifier, Network, from_metadata

NAME = "ensemble"


class Ensemble(Classifier):
    """Networks of one input format whose logits are averaged with equal weights."""

    def __init__(self, members: Sequence[Network], metadata: dict[str, Any] | None = None) -> None:
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = list(members)
        described = [member.metadata for member in self.members]
        self.metadata = dict(metadata or {})
        self.metadata["architecture"] = {"name": NAME, "members": described}
        self.version: str | None = None

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> Ensemble:
        """Rebuild an ensemble (arrays still zero) from the metadata of its weights file."""
        members = [from_metadata(member) for member in metadata["architecture"]["members"]]
        return cls(members, metadata)

    def logits(self, pixels: ArrayLike) -> NDArray[np.float32]:
        """Return the members' mean logits `(n, 10)` float32 for raw pixels `(n, 784)`."""
        total = self.members[0].logits(pixels)
        for member in self.members[1:]:
            total += member.logits(pixels)
        total /= np.float32(len(self.members))
        return total

    def normalise(self, pixels: ArrayLike) -> Array:
        """Map raw pixels to the first member's inputs (checks every member can take them)."""
        inputs = [member.normalise(pixels) for member in self.members]
        return inputs[0]

    def state(self) -> dict[str, Array]:
        """Return every member's parameters and buffers, keyed `m<i>.<layer>.<name>`."""
        return {
            f"m{index}.{name}": array
            for index, member in enumerate(self.members)
            for name, array in member.state().items()
        }

    def load_state(self, arrays: dict[str, Array]) -> None:
        """Copy arrays shaped like `state()` into the members."""
        for index, member in enumerate(self.members):
            prefix = f"m{index}."
            member.load_state(
                {key.removeprefix(prefix): a for key, a in arrays.items() if key.startswith(prefix)}
            )
