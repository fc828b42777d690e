-- The job engine's records. Each record is the engine's JSON, kept as bytes
-- (a job's messages may hold any character, which jsonb would refuse);
-- the columns beside it are copies that queries select and lock on.
CREATE TABLE jobs (
    id      text COLLATE "C" PRIMARY KEY,
    handler text NOT NULL,
    state   text NOT NULL,
    graph   text COLLATE "C",
    record  bytea NOT NULL
);
CREATE INDEX jobs_unfinished ON jobs (id) WHERE state IN ('queued', 'running');

-- A job's events, numbered from 1 without gaps; they go with their job.
CREATE TABLE job_events (
    job    text COLLATE "C" NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq    bigint NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (job, seq)
);

CREATE TABLE job_graphs (
    id     text COLLATE "C" PRIMARY KEY,
    record bytea NOT NULL
);

-- The order in which a graph's jobs succeeded (for rollback, last first).
CREATE TABLE job_graph_done (
    graph text COLLATE "C" NOT NULL,
    n     bigint GENERATED ALWAYS AS IDENTITY,
    job   text COLLATE "C" NOT NULL,
    PRIMARY KEY (graph, n)
);

CREATE TABLE job_schedules (
    handler text COLLATE "C" NOT NULL,
    name    text COLLATE "C" NOT NULL,
    record  bytea NOT NULL,
    PRIMARY KEY (handler, name)
);
