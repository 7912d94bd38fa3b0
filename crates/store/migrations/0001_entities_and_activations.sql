-- The PostgreSQL store's schema: the same entities and documents as the
-- embedded store's file, one table per kind. Documents are the JSON bytes
-- the embedded store keeps; names sort byte-wise (COLLATE "C"), as the
-- embedded store's keys do, so that listings come in the same order.

CREATE TABLE namespaces (
    name TEXT COLLATE "C" PRIMARY KEY,
    auth_uuid TEXT COLLATE "C" NOT NULL,
    doc BYTEA NOT NULL
);
CREATE INDEX namespaces_by_auth_uuid ON namespaces (auth_uuid);

-- A namespace's own actions have package '' (names are never empty).
CREATE TABLE actions (
    namespace TEXT COLLATE "C" NOT NULL,
    package TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    doc BYTEA NOT NULL,
    -- Sealed for confidential actions; NULL for sequences.
    code BYTEA,
    PRIMARY KEY (namespace, package, name)
);

CREATE TABLE packages (
    namespace TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    doc BYTEA NOT NULL,
    PRIMARY KEY (namespace, name)
);

CREATE TABLE triggers (
    namespace TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    doc BYTEA NOT NULL,
    PRIMARY KEY (namespace, name)
);

CREATE TABLE rules (
    namespace TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    doc BYTEA NOT NULL,
    PRIMARY KEY (namespace, name)
);

-- Activation records, newest first by (start_ms, id) as the embedded
-- store orders them.
CREATE TABLE activations (
    id BYTEA PRIMARY KEY,
    namespace TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    start_ms BIGINT NOT NULL,
    doc BYTEA NOT NULL
);
-- Listing and counting a namespace's records, by time or by action name,
-- read only the index entries they return (or count).
CREATE INDEX activations_by_time ON activations (namespace, start_ms DESC, id DESC);
CREATE INDEX activations_by_name ON activations (namespace, name, start_ms DESC, id DESC);
-- The retention sweep finds the oldest records without a namespace.
CREATE INDEX activations_by_start ON activations (start_ms);

-- The record to keep for an acknowledged activation should the node stop
-- before its own record is stored (EntityStore::put_stand_in).
CREATE TABLE stand_ins (
    id BYTEA PRIMARY KEY,
    namespace TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    start_ms BIGINT NOT NULL,
    doc BYTEA NOT NULL
);
