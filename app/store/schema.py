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
)
