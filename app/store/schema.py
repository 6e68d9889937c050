"""Schema migrations, applied in order; `PRAGMA user_version` records how many have run.

Append new migrations; never edit one that has shipped. Statements are split on `;`, so no
semicolons inside string literals.
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: models, versions, aliases, tags and the revision counter.
    """
    CREATE TABLE revision (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        value INTEGER NOT NULL
    );
    INSERT INTO revision (id, value) VALUES (1, 0);

    CREATE TABLE models (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        description TEXT NOT NULL DEFAULT '',
        next_version INTEGER NOT NULL DEFAULT 1,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );

    CREATE TABLE model_tags (
        model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (model_id, key)
    );
    CREATE INDEX model_tags_by_pair ON model_tags (key, value);

    CREATE TABLE versions (
        id INTEGER PRIMARY KEY,
        model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
        version INTEGER NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'ready', 'failed', 'corrupt')),
        status_message TEXT NOT NULL DEFAULT '',
        format TEXT NOT NULL,
        format_detail TEXT NOT NULL DEFAULT '',
        sha256 TEXT,
        size INTEGER,
        signature TEXT,
        metrics TEXT NOT NULL DEFAULT '{}',
        params TEXT NOT NULL DEFAULT '{}',
        description TEXT NOT NULL DEFAULT '',
        source TEXT NOT NULL DEFAULT 'upload',
        imported_globals TEXT NOT NULL DEFAULT '[]',
        environment TEXT NOT NULL DEFAULT '{}',
        warnings TEXT NOT NULL DEFAULT '[]',
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        UNIQUE (model_id, version)
    );
    CREATE INDEX versions_by_sha ON versions (sha256);
    CREATE INDEX versions_by_status ON versions (status);

    CREATE TABLE version_tags (
        version_id INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (version_id, key)
    );

    CREATE TABLE aliases (
        model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
        alias TEXT NOT NULL,
        version_id INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
        updated_at REAL NOT NULL,
        PRIMARY KEY (model_id, alias)
    );
    CREATE INDEX aliases_by_version ON aliases (version_id)
    """,
    # 2: datasets, durable training/compile jobs with their logs, and ONNX twins of versions.
    # Dataset files and twin files live in the blob store beside model files, named by sha256.
    """
    CREATE TABLE datasets (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL DEFAULT '',
        size INTEGER NOT NULL,
        row_count INTEGER NOT NULL,
        columns TEXT NOT NULL,
        created_at REAL NOT NULL
    );

    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('train', 'compile')),
        status TEXT NOT NULL
            CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
        spec TEXT NOT NULL,
        progress REAL NOT NULL DEFAULT 0,
        step TEXT NOT NULL DEFAULT '',
        metrics TEXT NOT NULL DEFAULT '{}',
        model TEXT,
        version INTEGER,
        error TEXT NOT NULL DEFAULT '',
        attempts INTEGER NOT NULL DEFAULT 0,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        worker_pid INTEGER,
        created_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL
    );
    CREATE INDEX jobs_by_status ON jobs (status, created_at);

    CREATE TABLE job_log (
        job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        at REAL NOT NULL,
        line TEXT NOT NULL,
        PRIMARY KEY (job_id, seq)
    );

    ALTER TABLE versions ADD COLUMN dataset_id TEXT;
    ALTER TABLE versions ADD COLUMN twin_status TEXT NOT NULL DEFAULT 'none';
    ALTER TABLE versions ADD COLUMN twin_sha256 TEXT;
    ALTER TABLE versions ADD COLUMN twin_report TEXT NOT NULL DEFAULT '{}';
    CREATE INDEX versions_by_twin ON versions (twin_sha256)
    """,
    # 3: the form a version is served from when that is not the uploaded file itself: a pickle is
    # opened once, in the sandbox, and converted to skops (app/formats/sandbox.py); the original
    # stays the version's file, for download only.
    """
    ALTER TABLE versions ADD COLUMN served_sha256 TEXT;
    ALTER TABLE versions ADD COLUMN served_format TEXT;
    ALTER TABLE versions ADD COLUMN served_size INTEGER;
    CREATE INDEX versions_by_served ON versions (served_sha256)
    """,
    # 4: where an imported version came from (app/fleet): a JSON object {kind, publisher_key,
    # instance, model, version, upstream}; NULL for versions made on this box.
    """
    ALTER TABLE versions ADD COLUMN origin TEXT
    """,
    # 5: evaluation reports (app/training/evaluation.py), stored with the version, and the
    # "evaluate" job kind that computes one for an uploaded version. SQLite cannot change a CHECK,
    # so the jobs table is rebuilt; its log is copied first to a table that names the new one, as
    # dropping the old jobs table would cascade into the log (foreign keys stay on in here).
    """
    ALTER TABLE versions ADD COLUMN evaluation TEXT NOT NULL DEFAULT '{}';

    CREATE TABLE jobs_new (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('train', 'compile', 'evaluate')),
        status TEXT NOT NULL
            CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
        spec TEXT NOT NULL,
        progress REAL NOT NULL DEFAULT 0,
        step TEXT NOT NULL DEFAULT '',
        metrics TEXT NOT NULL DEFAULT '{}',
        model TEXT,
        version INTEGER,
        error TEXT NOT NULL DEFAULT '',
        attempts INTEGER NOT NULL DEFAULT 0,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        worker_pid INTEGER,
        created_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL
    );
    INSERT INTO jobs_new SELECT * FROM jobs;
    CREATE TABLE job_log_new (
        job_id TEXT NOT NULL REFERENCES jobs_new(id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        at REAL NOT NULL,
        line TEXT NOT NULL,
        PRIMARY KEY (job_id, seq)
    );
    INSERT INTO job_log_new SELECT * FROM job_log;
    DROP TABLE job_log;
    DROP TABLE jobs;
    ALTER TABLE jobs_new RENAME TO jobs;
    ALTER TABLE job_log_new RENAME TO job_log;
    CREATE INDEX jobs_by_status ON jobs (status, created_at)
    """,
    # 6: mirrors (app/fleet/mirror.py): what an edge box follows on an upstream, and where each
    # stands (the loop's state survives restarts; the registry's /metrics reads the counters).
    """
    CREATE TABLE mirrors (
        id TEXT PRIMARY KEY,
        upstream TEXT NOT NULL,
        models TEXT NOT NULL,
        every_s REAL NOT NULL,
        trust INTEGER NOT NULL DEFAULT 0,
        token TEXT,
        created_at REAL NOT NULL,
        state TEXT NOT NULL DEFAULT 'new'
            CHECK (state IN ('new', 'syncing', 'ok', 'error')),
        etag TEXT,
        last_attempt REAL,
        last_success REAL,
        last_error TEXT NOT NULL DEFAULT '',
        last_error_at REAL,
        applied TEXT NOT NULL DEFAULT '[]',
        failures INTEGER NOT NULL DEFAULT 0,
        failures_total INTEGER NOT NULL DEFAULT 0,
        bytes_pulled INTEGER NOT NULL DEFAULT 0,
        versions_applied INTEGER NOT NULL DEFAULT 0,
        sync_requested INTEGER NOT NULL DEFAULT 0
    )
    """,
    # 7: the load cache (app/formats/load_cache.py): a pickle the registry's pool writes of a
    # version it loaded from its served file, so servers load in milliseconds instead of seconds;
    # its blob digest, and its recipe {globals, environment} as JSON. Derived data: NULL means
    # servers load the served file, as before.
    """
    ALTER TABLE versions ADD COLUMN load_cache_sha256 TEXT;
    ALTER TABLE versions ADD COLUMN load_cache_recipe TEXT;
    CREATE INDEX versions_by_load_cache ON versions (load_cache_sha256)
    """,
)
