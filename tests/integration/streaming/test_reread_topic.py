"""A topic read again from the start under a new checkpoint (a reset, `upgradeMode: stateless`)
into the same schema: nothing is stored twice, and every record is accounted for again."""

from __future__ import annotations

import dataclasses
import time

from pagestream.stack.kafka import Kafka
from pagestream.stack.paths import StackPaths
from pagestream.stack.postgres import Postgres

from .conftest import new_job_run, produce, stop_all
from .dataset import build_dataset, ground_truth

TOTALS = (
    "SELECT sum(consumed), sum(page_views), sum(other_events), sum(duplicates),"
    " sum(dead_lettered), sum(bots) FROM batch_commits WHERE query_id = %s"
)
TABLE_COUNTS = (
    "SELECT (SELECT count(*) FROM fact_page_views), (SELECT count(*) FROM fact_other_events),"
    " (SELECT count(*) FROM bot_events), (SELECT count(*) FROM dead_letters),"
    " (SELECT count(*) FROM duplicate_records), (SELECT count(*) FROM agg_page_views),"
    " (SELECT sum(views) FROM agg_page_views), (SELECT count(*) FROM visitor_numbers),"
    " (SELECT sum(bit_count(bits)) FROM visitor_bitmaps)"
)


def test_rereading_the_topic_under_a_new_checkpoint_stores_nothing_twice(
    kafka: Kafka, postgres: Postgres, stack_paths: StackPaths
) -> None:
    now = int(time.time())
    dataset = build_dataset(seed=11, valid_events=600, now=now)
    truth = ground_truth(dataset, now)
    first = new_job_run(kafka, postgres, stack_paths)
    produce(kafka, first.topic, [(r.key, r.value) for r in dataset.records])
    try:
        first.run_to_completion()
        (first_query,) = first.query("SELECT DISTINCT query_id FROM batch_commits")[0]
        tables_after_first = first.query(TABLE_COUNTS)[0]
        dead = sum(truth.dead_letters.values())
        assert first.query(TOTALS, (first_query,))[0] == (
            truth.consumed,
            len(truth.page_views),
            truth.other_events,
            truth.duplicates,
            dead,
            truth.bots,
        )

        second = dataclasses.replace(
            first, checkpoint=first.checkpoint.with_name(first.checkpoint.name + "-reset")
        )
        second.processes = []
        second.run_to_completion()
        queries = {q for (q,) in first.query("SELECT DISTINCT query_id FROM batch_commits")}
        (second_query,) = queries - {first_query}
        # Every valid event was accepted before: all of them are duplicates now; dead letters
        # are dead letters again (their rows are already there).
        assert first.query(TOTALS, (second_query,))[0] == (
            truth.consumed,
            0,
            0,
            truth.consumed - dead,
            dead,
            0,
        )
        tables_after_second = first.query(TABLE_COUNTS)[0]
        # Facts, bots, dead letters, rollups and visitor bitmaps unchanged; the duplicate records
        # of the first run are not recorded twice, the events seen again are added.
        assert tables_after_second[:4] == tables_after_first[:4]
        assert tables_after_second[5:] == tables_after_first[5:]
        assert tables_after_second[4] == truth.consumed - dead
    finally:
        stop_all(first)
