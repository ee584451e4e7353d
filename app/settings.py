"""All server settings in one place, read from `LEUKOLENS_*` environment variables."""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal, Self

from pydantic import (
    Field,
    IPvAnyNetwork,
    SecretStr,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.core.identities import reviewer_name_problem
from app.core.sample_ids import DEFAULT_SAMPLE_ID_PATTERN, SampleIdPolicy
from app.inference.upload_checks import (
    DEFAULT_MAX_DECODED_BYTES,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_SIDE,
)
from app.records.records_db import MIN_RETENTION_DAYS

DEFAULT_RETENTION_DAYS = 365.0

HttpImplementation = Literal["auto", "httptools", "h11"]
EventLoop = Literal["auto", "uvloop", "asyncio"]
HTTP_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")  # what a header name may be

PACKAGE_DIR = Path(__file__).resolve().parent
# A batch's body holds this many files at the per-file limit by default.
BATCH_BODY_FILES_AT_LIMIT = 4
AUDIT_DATABASE_NAME = "audit.sqlite3"
RECORDS_IN_MEMORY = ":memory:"


def beside_app(name: str) -> Path:
    """model_store/, static/ and templates/ sit beside app/ in a checkout; a wheel carries them
    inside the package (app/<name>), where an installed server finds them."""
    packaged = PACKAGE_DIR / name
    return packaged if packaged.is_dir() else PACKAGE_DIR.parent / name


def bundled_model_store() -> Path:
    return beside_app("model_store")


STATIC_DIR = beside_app("static")
TEMPLATES_DIR = beside_app("templates")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEUKOLENS_", protected_namespaces=())

    model_store: Path = Field(
        default_factory=bundled_model_store,
        description="Folder of exported models (a folder per model, store.json naming the "
        "default); unset: the bundled model_store/.",
    )
    default_model: str | None = Field(
        None,
        description="Model id served when a request names none; else store.json's default "
        "(without either the server refuses to start).",
    )
    force_default_model: bool = Field(
        False,
        description="Serve as the default an adapted model whose card says not recommended "
        "(its gain over its parent on the lab's held-out samples is not above 0); without it "
        "the server refuses to start with such a default.",
    )
    max_upload_bytes: int = Field(20 * 1024 * 1024, ge=1, description="Per image file.")
    max_image_pixels: int = Field(
        DEFAULT_MAX_PIXELS,
        ge=1,
        description="Width x height, from the header; C-NMC cells are 450 x 450 (0.2 MP).",
    )
    max_image_side: int = Field(DEFAULT_MAX_SIDE, ge=1, description="Pixels per side.")
    max_decoded_bytes: int = Field(
        DEFAULT_MAX_DECODED_BYTES,
        ge=1,
        description="Decoded size from the header (pixels x channels x bytes per sample): "
        "bounds 16-bit and many-channel images.",
    )
    processing_budget_seconds: float = Field(
        10.0, gt=0, description="Decoding and preprocessing of one request, waiting included."
    )
    body_timeout_seconds: float = Field(
        60.0, gt=0, description="The whole request body must arrive within it, else 408."
    )
    min_upload_bytes_per_second: float = Field(
        10 * 1024,
        ge=0,
        description="After the upload grace, a body arriving slower than this on average is "
        "answered 408 and its connection closed, long before the body timeout; 0: no minimum.",
    )
    upload_grace_seconds: float = Field(
        5.0, ge=0, description="How long a body may take to get up to the minimum rate."
    )
    max_batch_files: int = Field(64, ge=1)
    max_batch_bytes: int | None = Field(
        None,
        ge=1,
        description="A batch request's whole body; unset: the per-file limit times "
        f"{BATCH_BODY_FILES_AT_LIMIT} (64 C-NMC cells as BMP are about 39 MB), never the "
        "per-file limit times the file count, which would accept 1.3 GB.",
    )
    decoder_processes: int = Field(
        1,
        ge=0,
        description="Child processes that decode JPEG and TIFF, killed and replaced when a file "
        "outlives its budget or its client (those codecs' cost is not bounded by the header); 0 "
        "decodes them in the worker threads, where a decode cannot be stopped.",
    )
    worker_threads: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        description="Threads that decode, preprocess and run inference off the event loop.",
    )
    execution_provider: Literal["cpu", "cuda"] = Field(
        "cpu",
        description="cuda runs the models on onnxruntime's CUDA provider (the gpu extra and an "
        "NVIDIA GPU); without either it falls back to the CPU. /readyz and the model listing "
        "name the provider in use.",
    )
    intra_op_threads: int = Field(
        1, ge=0, description="onnxruntime threads per call; 1 lets the worker pool use the cores."
    )
    int8: bool = Field(
        False,
        description="Serve each model's int8 graph where it ships one (int8.json in its folder, "
        "with its measured speed and accuracy: docs/performance.md); the float32 graph otherwise.",
    )
    max_in_flight: int = Field(
        64, ge=1, description="Prediction requests in progress beyond which new ones get 503."
    )
    explained_slots: int = Field(
        1,
        ge=1,
        description="Requests with explain or TTA computed at once, on threads of their own: "
        "their share of the CPU, whatever their number (app/inference/work_shares.py).",
    )
    heavy_queue_depth: int = Field(
        16,
        ge=0,
        description="Requests of one heavy kind (explain or TTA; JPEG or TIFF, decoded in a "
        "child process) waiting for their share beyond those running; more get 503 with "
        "Retry-After at once. Keep it well under max_in_flight: plain requests keep the rest.",
    )
    batch_max_size: int = Field(
        8, ge=1, description="Micro-batching: images per inference (memory grows with it)."
    )
    batch_max_wait_ms: float = Field(
        5.0, ge=0.0, description="Micro-batching: longest wait for more requests to join."
    )
    data_dir: Path = Field(
        Path("data"),
        description="Where the server keeps its files (the audit database and its journal); "
        "relative paths are taken from the folder the server starts in.",
    )
    audit_log: bool = Field(
        True,
        description="Keep the audit of predictions. Off, the sample records still go to the "
        "database (audit_log_path, or database_url): only records_in_memory keeps them out.",
    )
    audit_log_path: Path = Field(
        None,  # type: ignore[assignment]  # unset: filled in from data_dir below
        description=f"The SQLite audit database; unset: {AUDIT_DATABASE_NAME} in data_dir.",
    )
    audit_journal: bool = Field(
        True,
        description="Append each answered prediction's record (its audit row, and its sample "
        "cell) to a local journal, fsync'd before the answer goes out and written to the "
        "database at start-up: nothing answered is lost to a locked or absent database, a crash "
        "or kill -9.",
    )
    audit_journal_path: Path | None = Field(
        None, description="The journal file; unset: audit_log_path with the suffix .journal."
    )

    audit_busy_timeout_seconds: float = Field(
        5.0,
        ge=0,
        description="SQLite's wait for a lock per attempt: an audit row is retried after it; a "
        "record that joins a sample, a decision or a withdrawal is refused (503).",
    )
    retention_days: float = Field(
        DEFAULT_RETENTION_DAYS,
        ge=MIN_RETENTION_DAYS,
        description="Prediction records (audit rows and sample cells), decisions, withdrawals "
        "and sign-offs older than this are deleted (at start-up and hourly); the database "
        "refuses to delete any sample record younger than 30 days. Unset, the two settings it "
        "replaces are read: LEUKOLENS_RECORDS_RETENTION_DAYS and LEUKOLENS_AUDIT_RETENTION_DAYS "
        "(deprecated; the longer of them, an unset one counting as 365).",
    )
    records_retention_days: float | None = Field(
        None, ge=MIN_RETENTION_DAYS, description="Deprecated: LEUKOLENS_RETENTION_DAYS."
    )
    audit_retention_days: float | None = Field(
        None, gt=0, description="Deprecated: LEUKOLENS_RETENTION_DAYS."
    )
    performance_refresh_seconds: float = Field(
        10.0,
        gt=0,
        description="How often the server looks for new records (one indexed lookup) and, when "
        "there are, counts the local performance gauges (leukolens_local_*) again.",
    )
    records_in_memory: bool = Field(
        False,
        description="Keep samples and decisions in memory only, for a demonstration: they are "
        'lost when the server stops, every record answer says "durable": false and the '
        "page shows it. Never with database_url.",
    )
    sample_id_pattern: str = Field(
        DEFAULT_SAMPLE_ID_PATTERN,
        description="Regex a sample id must match in full (the lab's numbers): the outer "
        "limit; whatever it is, an id holding a date in any spelling beside letters that could "
        "be a name is refused, and one whose letters could be a name without a date is answered "
        "with a warning (app/core/sample_ids.py).",
    )
    fhir_sample_id_system: str = Field(
        "urn:leukolens:sample-id",
        pattern=r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$",
        description="The FHIR identifier system of sample ids (GET /api/v1/samples/{id}/fhir): "
        "the lab information system's namespace for its accession numbers, as a URI.",
    )
    database_url: SecretStr | None = Field(
        None,
        description="SQLAlchemy URL of the records database, e.g. "
        "postgresql+psycopg://user:password@host/leukolens for several replicas; unset, the "
        "audit log is the SQLite file at audit_log_path.",
    )
    api_key: SecretStr | None = Field(
        None, description="When set, every /api request must send it in the X-API-Key header."
    )
    reviewer_header: str | None = Field(
        None,
        description="Header in which the lab's single sign-on proxy names the signed-in user "
        "(e.g. X-Forwarded-User): a decision is then recorded under that name, honoured only "
        "from trusted_proxies; a decision without it is refused 401.",
    )
    trusted_proxies: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description="Addresses (IPs or CIDR networks) of the sign-on proxy, the only peers "
        "whose reviewer_header counts; from any other, a request with it is refused 403.",
    )
    reviewer_keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Reviewer name -> that reviewer's own API key (JSON object): the key in "
        "X-API-Key names who decided; such a key also opens the API like api_key.",
    )
    metrics_require_api_key: bool = Field(
        True,
        description="With an API key set, /metrics asks for it too (it shows traffic and "
        "models, never patient data); false leaves it open to a scraper without the key.",
    )
    hsts_max_age_seconds: int | None = Field(
        None,
        ge=0,
        description="Send Strict-Transport-Security with this max-age; only behind TLS.",
    )
    header_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="Connections that have not sent a full request head in this time are "
        "closed (uvicorn's keep-alive timer, started at connect).",
    )
    http_implementation: HttpImplementation = Field(
        "auto",
        description="uvicorn's HTTP parser: httptools (C) where installed, else h11 (Python).",
    )
    event_loop: EventLoop = Field(
        "auto", description="uvloop where installed, else asyncio's own loop."
    )
    limit_concurrency: int | None = Field(
        256,
        ge=1,
        description="Requests in progress beyond which new ones are answered 503 at once; "
        "/healthz and /readyz are always answered. None: no limit.",
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed to call the API from a browser; none."
    )
    host: str = Field("127.0.0.1", description="Where python -m app listens.")
    port: int = Field(8000, ge=1, le=65535, description="The port python -m app listens on.")

    @field_validator("sample_id_pattern")
    @classmethod
    def _pattern_compiles(cls, pattern: str) -> str:
        SampleIdPolicy(pattern)  # a broken regex stops start-up, not the first request
        return pattern

    @field_validator("reviewer_header")
    @classmethod
    def _header_is_a_token(cls, header: str | None) -> str | None:
        if header is not None and not HTTP_TOKEN.fullmatch(header):
            raise ValueError(f"{header!r} is not an HTTP header name")
        return header

    @property
    def records_location(self) -> Path | str:
        """Where samples and decisions live: PostgreSQL (or any URL) when database_url is
        set, shared by every replica; else the SQLite file at audit_log_path, whether or not
        the audit is on; memory only when records_in_memory says so."""
        if self.records_in_memory:
            return RECORDS_IN_MEMORY
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return self.audit_log_path

    @property
    def journal_path(self) -> Path | None:
        if not (self.audit_log and self.audit_journal):
            return None
        return self.audit_journal_path or self.audit_log_path.with_suffix(".journal")

    @field_validator("audit_log_path", mode="wrap")
    @classmethod
    def _unset_until_the_data_dir_is_known(
        cls, value: object, handler: ValidatorFunctionWrapHandler
    ) -> Path | None:
        return None if value is None else handler(value)

    @model_validator(mode="after")
    def _audit_database_in_the_data_dir(self) -> Self:
        if self.audit_log_path is None:
            self.audit_log_path = self.data_dir / AUDIT_DATABASE_NAME
        return self

    @model_validator(mode="after")
    def _one_reviewer_identity(self) -> Self:
        """Who decided must have one answer: a sign-on header or reviewers' keys, not both;
        a header no proxy may send is a server that takes no decision at all."""
        if self.reviewer_header is not None and self.reviewer_keys:
            raise ValueError("set LEUKOLENS_REVIEWER_HEADER or LEUKOLENS_REVIEWER_KEYS, not both")
        if self.reviewer_header is not None and not self.trusted_proxies:
            raise ValueError(
                "LEUKOLENS_REVIEWER_HEADER needs LEUKOLENS_TRUSTED_PROXIES: the addresses of "
                "the sign-on proxy, the only peers whose header is believed"
            )
        secrets = [key.get_secret_value() for key in self.reviewer_keys.values()]
        for name in self.reviewer_keys:
            problem = reviewer_name_problem(name)
            if problem is not None or name != name.strip():
                raise ValueError(
                    f"LEUKOLENS_REVIEWER_KEYS: {name!r}: "
                    f"{problem or 'surrounding spaces would be recorded'}"
                )
        if any(not secret for secret in secrets) or len(set(secrets)) != len(secrets):
            raise ValueError("every reviewer key must be set and differ from the others")
        if self.api_key is not None and self.api_key.get_secret_value() in secrets:
            raise ValueError("a reviewer key must differ from LEUKOLENS_API_KEY")
        return self

    @property
    def deprecated_settings(self) -> list[str]:
        """The deprecated variables this configuration sets, for a warning at start-up."""
        names = {"records_retention_days", "audit_retention_days"} & self.model_fields_set
        return [f"LEUKOLENS_{name.upper()}" for name in sorted(names)]

    @model_validator(mode="after")
    def _one_retention(self) -> Self:
        """The audit and the sample records were kept by two settings; one record now, one
        retention. Deployments that still set the old ones keep working: the longer wins, an
        unset one counting as its old default (so nothing kept before goes sooner), and a
        sample record younger than 30 days can never go."""
        if "retention_days" in self.model_fields_set or not self.deprecated_settings:
            return self
        old = [
            DEFAULT_RETENTION_DAYS if days is None else days
            for days in (self.records_retention_days, self.audit_retention_days)
        ]
        self.retention_days = float(max(*old, MIN_RETENTION_DAYS))
        return self

    @model_validator(mode="after")
    def _records_in_one_place(self) -> Self:
        if self.records_in_memory and self.database_url is not None:
            raise ValueError(
                "LEUKOLENS_RECORDS_IN_MEMORY=true and LEUKOLENS_DATABASE_URL disagree on where "
                "the records live: set one"
            )
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
