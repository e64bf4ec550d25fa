"""How one pipeline processes its records: the privacy and bot-filtering choices, as one typed
value built once from the job's configuration and handed to every step that needs it (the
Python pass in transform.py pickles it into the Spark tasks; the sink reads its bot filtering)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pagestream_common.jobconfig import JobConfig, Secrets


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

    @classmethod
    def from_config(cls, config: JobConfig, secrets: Secrets) -> ProcessingOptions:
        return cls(
            pii_key=secrets.pii_hash_key.encode(),
            anonymize_ip=config.anonymize_ip,
            hash_email=config.hash_email,
            bot_filtering=config.bot_filtering,
        )
