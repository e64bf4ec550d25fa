"""How one pipeline processes its records: the privacy and bot-filtering choices, as one typed
value built once from the job's configuration and handed to every step that needs it (the
Python pass in transform.py pickles it into the Spark tasks; the sink reads its bot filtering)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pagestream_common.contract import MIN_EVENT_EPOCH
from pagestream_common.jobconfig import PII_HASH_KEY_REQUIRED, JobConfig, JobConfigError, Secrets


@dataclass(frozen=True)
class ProcessingOptions:
    # Key of the e-mail hash and the visitor id's daily salt. A secret: kept out of repr so it
    # never reaches a log line or a Spark error message.
    pii_key: bytes = field(repr=False)
    # False stores no IP at all (not even the anonymised one).
    anonymize_ip: bool = True
    # False stores no e-mail hash.
    hash_email: bool = True
    # True sends events from bot user agents to bot_events instead of the facts.
    bot_filtering: bool = True
    # Whole UTC days of events kept (0: forever): older valid events are dead-lettered as
    # past_retention instead of landing on a day retention drops.
    retention_days: int = 0

    def oldest_kept_epoch(self, now: int) -> int:
        """Start of the oldest UTC day an event may be on when processed at ``now``."""
        if not self.retention_days:
            return MIN_EVENT_EPOCH
        return max(MIN_EVENT_EPOCH, (now // 86_400 - self.retention_days) * 86_400)

    def __post_init__(self) -> None:
        # Secrets refuses an empty key already; this keeps any other way of building the
        # options from salting visitor ids with a known one.
        if not self.pii_key.strip():
            raise JobConfigError(PII_HASH_KEY_REQUIRED)

    @classmethod
    def from_config(cls, config: JobConfig, secrets: Secrets) -> ProcessingOptions:
        return cls(
            pii_key=secrets.pii_hash_key.encode(),
            anonymize_ip=config.anonymize_ip,
            hash_email=config.hash_email,
            bot_filtering=config.bot_filtering,
            retention_days=config.retention_days,
        )
