"""PairRecords -> rows. Call inside transaction.atomic(): the caller rolls back when the file had errors.

PostgreSQL: COPY into a temporary table as records stream in, then one INSERT ... SELECT that skips content
already in the project (ON CONFLICT DO NOTHING) and collapses duplicates inside the file (first one wins), and
creates the external labels of the new pairs only. Other databases: bulk_create in chunks (correct, not fast).
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from django.db import connection
from django.utils import timezone

from ..models import ImportBatch, Label, Pair, Project
from .records import PairRecord

TMP_TABLE = "arbiter_import_pairs"


@dataclass
class WriteResult:
    records: int = 0
    pairs_created: int = 0
    labels_created: int = 0

    @property
    def duplicates_skipped(self) -> int:
        return self.records - self.pairs_created


def pair_writer(*, project: Project, batch: ImportBatch) -> PostgresPairWriter | OrmPairWriter:
    if connection.vendor == "postgresql":
        return PostgresPairWriter(project=project, batch=batch)
    return OrmPairWriter(project=project, batch=batch)


class PostgresPairWriter:
    _columns = (
        "seq, external_id, prompt, prompt_is_chat, response_a, response_b, model_a, model_b, metadata, "
        "source_preference, content_hash, shuffle_key, labels, gold, gold_explanation"
    )

    def __init__(self, *, project: Project, batch: ImportBatch) -> None:
        self.project, self.batch = project, batch
        self.result = WriteResult()
        self.has_labels = False
        with connection.cursor() as cursor:
            # DROP first: a second import inside the same outer transaction (tests) would find the old table.
            cursor.execute(f"DROP TABLE IF EXISTS {TMP_TABLE}")
            cursor.execute(
                f"CREATE TEMP TABLE {TMP_TABLE} (seq bigint NOT NULL, external_id text NOT NULL, prompt jsonb NOT NULL,"
                " prompt_is_chat boolean NOT NULL, response_a text NOT NULL, response_b text NOT NULL,"
                " model_a text NOT NULL, model_b text NOT NULL, metadata jsonb NOT NULL,"
                " source_preference text NOT NULL, content_hash text NOT NULL, shuffle_key integer NOT NULL,"
                " labels jsonb, gold text NOT NULL, gold_explanation text NOT NULL) ON COMMIT DROP"
            )

    def write(self, records: list[PairRecord]) -> None:
        seq = self.result.records
        raw = connection.connection  # psycopg 3 connection, inside Django's transaction
        with raw.cursor() as cursor, cursor.copy(f"COPY {TMP_TABLE} ({self._columns}) FROM STDIN") as copy:
            write_row = copy.write_row
            for r in records:
                seq += 1
                labels = None
                if r.labels:
                    self.has_labels = True
                    labels = orjson.dumps([{"a": a, "c": c} for a, c in r.labels]).decode()
                write_row(
                    (
                        seq,
                        r.external_id,
                        r.prompt_json.decode(),
                        r.prompt_is_chat,
                        r.response_a,
                        r.response_b,
                        r.model_a,
                        r.model_b,
                        r.metadata_json.decode(),
                        r.source_preference,
                        r.content_hash,
                        r.shuffle_key,
                        labels,
                        r.gold,
                        r.gold_explanation,
                    )
                )
        self.result.records = seq

    def finish(self) -> WriteResult:
        params = {
            "project": self.project.pk,
            "k": self.project.overlap_k,
            "batch": self.batch.pk,
            "now": timezone.now(),
        }
        # ON CONFLICT also collapses duplicates inside the file: the first row of each content_hash (lowest seq,
        # by the ORDER BY) is inserted and the later ones conflict with it. Inserting in hash order, not file order,
        # makes the inserts into the indexes keyed by the hash (pair_content_unique, and pair_claim_idx through
        # shuffle_key) sequential: 1M pairs took 36 s this way and 117 s in file order.
        insert_pairs = f"""
            INSERT INTO annotation_pair (project_id, external_id, prompt, prompt_is_chat, response_a, response_b,
                model_a, model_b, metadata, source_preference, content_hash, shuffle_key, open_slots, label_count,
                import_batch_id, created_at, gold, gold_explanation)
            SELECT %(project)s, external_id, prompt, prompt_is_chat, response_a, response_b, model_a, model_b,
                metadata, source_preference, content_hash, shuffle_key,
                CASE WHEN gold = '' THEN %(k)s ELSE 0 END, 0, %(batch)s, %(now)s, gold, gold_explanation
            FROM {TMP_TABLE} ORDER BY content_hash, seq
            ON CONFLICT (project_id, content_hash) DO NOTHING
            RETURNING id, content_hash"""
        if self.has_labels:
            sql = f"""
                WITH ins AS ({insert_pairs}),
                lab AS (
                    INSERT INTO annotation_label (project_id, pair_id, external_annotator, source, choice,
                        left_is_a, rationale, criteria, created_at)
                    SELECT %(project)s, ins.id, l.a, 'external', l.c, NULL, '', '{{}}'::jsonb, %(now)s
                    FROM ins
                    JOIN (SELECT DISTINCT ON (content_hash) content_hash, labels FROM {TMP_TABLE}
                          ORDER BY content_hash, seq) AS first USING (content_hash)
                    CROSS JOIN LATERAL jsonb_to_recordset(first.labels) AS l(a text, c text)
                    WHERE first.labels IS NOT NULL
                    RETURNING 1)
                SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM lab)"""
        else:
            sql = f"WITH ins AS ({insert_pairs}) SELECT count(*), 0 FROM ins"
        with connection.cursor() as cursor:
            # For this statement only: the row estimates of a fresh temp table are poor, so the planner would spend
            # seconds JIT-compiling, and the sorts/hashes spill to disk with the default work_mem.
            cursor.execute("SET LOCAL jit = off; SET LOCAL work_mem = '64MB'")
            cursor.execute(sql, params)
            self.result.pairs_created, self.result.labels_created = cursor.fetchone()
            cursor.execute(f"SET LOCAL jit TO DEFAULT; SET LOCAL work_mem TO DEFAULT; DROP TABLE {TMP_TABLE}")
        return self.result


class OrmPairWriter:
    """bulk_create in chunks; each chunk first looks up which of its hashes the project already has (from before
    the import or from an earlier chunk), so counts and labels are exact."""

    chunk = 500  # keeps every IN (...) under SQLite's variable limit

    def __init__(self, *, project: Project, batch: ImportBatch) -> None:
        self.project, self.batch = project, batch
        self.result = WriteResult()

    def write(self, records: list[PairRecord]) -> None:
        for start in range(0, len(records), self.chunk):
            self._write_chunk(records[start : start + self.chunk])

    def _write_chunk(self, records: list[PairRecord]) -> None:
        self.result.records += len(records)
        first: dict[str, PairRecord] = {}
        for r in records:
            first.setdefault(r.content_hash, r)
        existing = set(
            Pair.objects.filter(project=self.project, content_hash__in=list(first)).values_list(
                "content_hash", flat=True
            )
        )
        new = [r for h, r in first.items() if h not in existing]
        now = timezone.now()
        pairs = [
            Pair(
                project=self.project,
                external_id=r.external_id,
                prompt=r.prompt,
                prompt_is_chat=r.prompt_is_chat,
                response_a=r.response_a,
                response_b=r.response_b,
                model_a=r.model_a,
                model_b=r.model_b,
                metadata=r.metadata,
                source_preference=r.source_preference,
                content_hash=r.content_hash,
                shuffle_key=r.shuffle_key,
                open_slots=0 if r.gold else self.project.overlap_k,
                gold=r.gold,
                gold_explanation=r.gold_explanation,
                label_count=0,
                import_batch=self.batch,
                created_at=now,
            )
            for r in new
        ]
        Pair.objects.bulk_create(pairs, batch_size=2000, ignore_conflicts=True)
        self.result.pairs_created += len(new)
        labelled = [r for r in new if r.labels]
        if not labelled:
            return
        ids = dict(
            Pair.objects.filter(project=self.project, content_hash__in=[r.content_hash for r in labelled]).values_list(
                "content_hash", "id"
            )
        )
        labels = [
            Label(
                project=self.project,
                pair_id=ids[r.content_hash],
                source=Label.Source.EXTERNAL,
                external_annotator=annotator,
                choice=choice,
                created_at=now,
            )
            for r in labelled
            for annotator, choice in r.labels
        ]
        Label.objects.bulk_create(labels, batch_size=2000)
        self.result.labels_created += len(labels)

    def finish(self) -> WriteResult:
        return self.result
