"""The shapes of the API's JSON answers, each declared once (what clients send: `api.inputs`).

Views build their answers as these TypedDicts, `api.openapi` turns them into /openapi.json
through pydantic, and the tests validate every view's real answer against them. A TypedDict
is a plain dict at run time, so answering through one costs nothing on the hot path, while
mypy checks every key a view writes; pydantic reads the same classes to describe them (JSON
Schema 2020-12, as OpenAPI 3.1 embeds it) and to validate answers in the tests. An answer is
closed (`additionalProperties: false`): a field that a view returns and its shape does not
declare fails the tests and schemathesis's check of the live service.

Request bodies of pixels are not validated through pydantic: `api.payload` reads them in one
pass (orjson, then NumPy) and says which image and value is wrong. `ImagesBody` describes
what it accepts. Limits that are settings carry `x-setting`, filled in from the app's config.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import ConfigDict, Field, GetCoreSchemaHandler, with_config
from pydantic_core import CoreSchema
from typing_extensions import TypeAliasType, TypedDict

from formats.mnist import N_PIXELS, SIDE

MAX_COUNT = 1_000_000_000  # the largest count, maxlen or number of entries a route takes
CLOSED = ConfigDict(extra="forbid")
JOB_ID = "0194d1f7a3c25e1b7f0c4d9e8a6b2c31"  # the examples' ids and version
MODEL_VERSION = "3f9a1c0d5e7b2a46"


def closed(*examples: dict[str, Any]) -> ConfigDict:
    """A closed shape, shown in the document with `examples` (checked against it in the tests)."""
    return ConfigDict(extra="forbid", json_schema_extra={"examples": list(examples)})


def setting(**keywords: str) -> Any:
    """Mark schema keywords whose value is a setting: `maxItems="DIGITS_MAX_IMAGES"`."""
    return Field(json_schema_extra={"x-setting": dict(keywords)})


class ArrayOf:
    """A NumPy array that orjson writes as the JSON list `shape`: checked and described so."""

    def __init__(self, shape: Any) -> None:
        self.shape = shape

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        """Validate and describe the value as the list it becomes in JSON."""
        return handler.generate_schema(self.shape)


def _hex(digits: int) -> Any:
    return Field(pattern=f"^[0-9a-f]{{{digits}}}$")


Id = Annotated[str, _hex(32), Field(description="a job or batch id: 32 hex digits")]
Version = Annotated[str, _hex(16), Field(description="a model version: its weights' hash")]
Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
Url = Annotated[str, Field(description="a path on this service")]
Count = Annotated[int, Field(ge=1, le=MAX_COUNT)]
Pixel = Annotated[int, Field(ge=0, le=255)]
Image = Annotated[
    list[Pixel],
    Field(
        min_length=N_PIXELS,
        max_length=N_PIXELS,
        description="784 pixels 0-255, row by row, light ink on black",
    ),
]
Label = Annotated[int, Field(ge=0, le=9)]
Share = Annotated[float, Field(ge=0, le=1)]
Ten = Annotated[list[float], Field(min_length=10, max_length=10)]
Labels = Annotated[Any, ArrayOf(list[Label]), Field(description="per image: the digit")]
Probabilities = Annotated[
    Any, ArrayOf(list[Ten]), Field(description="per image: the probability of each digit")
]
Confidences = Annotated[
    Any, ArrayOf(list[Share]), Field(description="per image: the calibrated top probability")
]
Flags = Annotated[
    Any,
    ArrayOf(list[bool]),
    Field(description="per image: not sure, or not one digit; send it to a person"),
]
Row = Annotated[list[Pixel], Field(min_length=SIDE, max_length=SIDE)]
Seen = Annotated[
    Any,
    ArrayOf(Annotated[list[Row], Field(min_length=SIDE, max_length=SIDE)]),
    Field(description="the 28x28 picture the model saw, rows of 0-255, ink bright"),
]
Box = Annotated[
    list[Annotated[int, Field(ge=0)]],
    Field(
        min_length=4,
        max_length=4,
        description="where the digit was found: [left, top, right, bottom] in the uploaded "
        "picture's pixels (right and bottom exclusive; EXIF orientation applied)",
    ),
]


@with_config(CLOSED)
class ErrorDetail(TypedDict):
    code: Annotated[str, Field(description="what went wrong, for programs")]
    message: Annotated[str, Field(description="what was wrong, where, and what to do")]


@with_config(CLOSED)
class Health(TypedDict):
    status: Literal["ok"]


@with_config(CLOSED)
class Checks(TypedDict):
    redis: bool
    model_version: Version | None
    workers: Annotated[int, Field(ge=0)]
    maxmemory_policy: str | None


@with_config(
    closed(
        {"error": {"code": "invalid_pixels", "message": "images[3] has 783 values, expected 784"}}
    )
)
class Error(TypedDict):
    """Every error: 4xx and 5xx alike."""

    error: ErrorDetail
    checks: NotRequired[Checks]


@with_config(CLOSED)
class Ready(TypedDict):
    status: Literal["ready"]
    checks: Checks


@with_config(ConfigDict(extra="allow"))
class Document(TypedDict):
    openapi: str
    paths: dict[str, Any]


@with_config(closed({"job_id": JOB_ID, "status": "queued", "status_url": f"/v1/jobs/{JOB_ID}"}))
class JobAccepted(TypedDict):
    job_id: Id
    status: Literal["queued"]
    status_url: Url


@with_config(
    closed(
        {
            "job_id": JOB_ID,
            "status": "finished",
            "labels": [7],
            "probabilities": [[0.0, 0.0, 0.001, 0.002, 0.0, 0.0, 0.0, 0.995, 0.0, 0.002]],
            "confidence": [0.995],
            "uncertain": [False],
            "model_version": MODEL_VERSION,
        }
    )
)
class JobFinished(TypedDict):
    job_id: Id
    status: Literal["finished"]
    labels: Labels
    probabilities: Probabilities
    confidence: Confidences
    uncertain: Flags
    model_version: Version


@with_config(CLOSED)
class JobQueued(TypedDict):
    job_id: Id
    status: Literal["queued"]
    message: Annotated[str, Field(description="whether a worker is alive to take it")]


@with_config(CLOSED)
class JobStarted(TypedDict):
    job_id: Id
    status: Literal["started"]


@with_config(CLOSED)
class JobFailed(TypedDict):
    job_id: Id
    status: Literal["failed"]
    error: str


JobStatus = TypeAliasType(
    "JobStatus",
    Annotated[JobQueued | JobStarted | JobFinished | JobFailed, Field(discriminator="status")],
)


@with_config(CLOSED)
class PictureAccepted(JobAccepted):
    pixels: Seen
    box: Box


@with_config(CLOSED)
class PictureFinished(JobFinished):
    pixels: Seen
    box: Box


@with_config(CLOSED)
class BatchAccepted(TypedDict):
    batch_id: Id
    status: Literal["queued"]
    rows: Annotated[int, Field(ge=1)]
    skipped_rows: Annotated[int, Field(ge=0, description="all-empty rows, not labelled")]
    chunks: Annotated[int, Field(ge=1)]
    has_labels: bool
    status_url: Url
    submission_url: Url


BatchStatus = Literal["queued", "running", "finished", "failed"]


@with_config(CLOSED)
class Batch(TypedDict):
    batch_id: Id
    status: BatchStatus
    rows: Annotated[int, Field(ge=1)]
    rows_done: Annotated[int, Field(ge=0)]
    uncertain_rows: Annotated[int, Field(ge=0, description="rows done so far flagged uncertain")]
    chunks: Annotated[int, Field(ge=1)]
    model_version: Version | None
    model_versions: list[Version]
    created_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None
    submission_url: Url
    results_url: Url
    accuracy: NotRequired[Annotated[Share | None, Field(description="labelled CSVs only")]]
    error: NotRequired[str]
    message: NotRequired[Annotated[str, Field(description="while queued: why it waits")]]


@with_config(CLOSED)
class Refusal(TypedDict):
    """Why a worker would not load a model (it kept its own)."""

    error: str
    at: Timestamp


@with_config(CLOSED)
class Model(TypedDict):
    version: Version
    metadata: dict[str, Any]
    published_at: Timestamp
    size: Annotated[int, Field(ge=0)]
    current: bool
    refused: Refusal | None


@with_config(CLOSED)
class Models(TypedDict):
    current: Version | None
    models: list[Model]


@with_config(CLOSED)
class Activated(TypedDict):
    current: Version
    previous: Version | None


@with_config(CLOSED)
class Stream(TypedDict):
    name: str
    inputs: Annotated[int, Field(ge=0, description="inputs not yet answered")]
    answers: Annotated[int, Field(ge=0, description="answers kept")]
    dead: Annotated[int, Field(ge=0, description="dead letters kept")]
    last_answer_id: str
    in_url: Url
    out_url: Url


@with_config(CLOSED)
class StreamAdded(TypedDict):
    """The first and last entry ids added, and how many."""

    stream: str
    first_id: str
    last_id: str
    count: Annotated[int, Field(ge=1)]
