"""The pagestream traffic simulator: realistic shop tracker events into Kafka.

Library use, e.g. from a test that needs traffic and its ground truth::

    from pagestream_simulator import FaultConfig, GeneratorConfig, ProducerSettings, RunConfig, run

    result = run(RunConfig(
        producer=ProducerSettings(bootstrap_servers="127.0.0.1:9092", topic="events"),
        generator=GeneratorConfig(seed=7, start_time=1_793_577_600),
        faults=FaultConfig(duplicate_rate=0.01, malformed_rate=0.01),
        count=10_000,
    ))
    result.ground_truth["job_outcomes"]  # what the streaming job must record

The pieces: :mod:`.generator` (pure, seeded events), :mod:`.faults` (injection and tally),
:mod:`.producer` (Kafka), :mod:`.replay`, :mod:`.runner` (one run), :mod:`.cli`.
"""

from pagestream_simulator.faults import FaultConfig
from pagestream_simulator.generator import EventGenerator, GeneratorConfig
from pagestream_simulator.producer import ProducerSettings
from pagestream_simulator.replay import ReplayConfig
from pagestream_simulator.runner import RunConfig, RunResult, run

__all__ = [
    "EventGenerator",
    "FaultConfig",
    "GeneratorConfig",
    "ProducerSettings",
    "ReplayConfig",
    "RunConfig",
    "RunResult",
    "run",
]
