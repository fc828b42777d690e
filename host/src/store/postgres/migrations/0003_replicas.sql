-- Replicas sharing this database. Each holds a lease that it renews; when
-- a lease runs out, another replica takes that one's unfinished jobs and
-- graphs over. Times are the database's clock, so replicas' clocks never
-- have to agree.
CREATE TABLE replicas (
    id          text COLLATE "C" PRIMARY KEY,
    host        text NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    lease_until timestamptz NOT NULL
);

-- The replica that runs a job or a graph (NULL: written before replicas,
-- adopted by the first replica to start).
ALTER TABLE jobs ADD COLUMN owner text COLLATE "C";
ALTER TABLE job_graphs ADD COLUMN owner text COLLATE "C";
CREATE INDEX jobs_owned ON jobs (owner) WHERE state IN ('queued', 'running');
CREATE INDEX job_graphs_owned ON job_graphs (owner);
-- Running jobs, counted against the limits that hold across replicas.
CREATE INDEX jobs_running ON jobs (handler) WHERE state = 'running';

-- A job that ended: every replica hears of it (its waiters wake, jobs that
-- depend on it move on).
CREATE FUNCTION baton_job_ended() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('baton_jobs', NEW.id);
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_ended AFTER UPDATE OF state ON jobs FOR EACH ROW
    WHEN (OLD.state IN ('queued', 'running') AND NEW.state NOT IN ('queued', 'running'))
    EXECUTE FUNCTION baton_job_ended();

-- A change to a host concern kept as kv (namespaces `baton:…`: users,
-- revocations, versions, mounts): every replica hears which namespace
-- changed, once per transaction, and reloads what it keeps of it.
CREATE FUNCTION baton_kv_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('baton_changes', OLD.ns);
    ELSE
        PERFORM pg_notify('baton_changes', NEW.ns);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER kv_written AFTER INSERT OR UPDATE ON kv FOR EACH ROW
    WHEN (NEW.ns LIKE 'baton:%' AND NEW.ns <> 'baton:probe')
    EXECUTE FUNCTION baton_kv_changed();
CREATE TRIGGER kv_deleted AFTER DELETE ON kv FOR EACH ROW
    WHEN (OLD.ns LIKE 'baton:%' AND OLD.ns <> 'baton:probe')
    EXECUTE FUNCTION baton_kv_changed();
