-- Handler key-value data: one row per key, in namespaces (one per handler)
-- and buckets. Keys are bytes, so that a scan orders them as the embedded
-- backend does (bytewise, whatever the database's collation).
CREATE TABLE kv (
    ns     text  NOT NULL,
    bucket text  NOT NULL,
    key    bytea NOT NULL,
    value  bytea NOT NULL,
    PRIMARY KEY (ns, bucket, key)
);

-- The decimal counter a kv value holds, exactly as the embedded backend
-- reads one (an optional sign and digits, nothing else): 22P02 when the
-- value is not one, 22003 when it does not fit in 64 bits.
CREATE FUNCTION baton_counter(v bytea) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    t text;
BEGIN
    BEGIN
        t := convert_from(v, 'UTF8');
    EXCEPTION WHEN others THEN
        RAISE EXCEPTION USING ERRCODE = '22P02', MESSAGE = 'not a decimal counter';
    END;
    IF t !~ '^[+-]?[0-9]+$' THEN
        RAISE EXCEPTION USING ERRCODE = '22P02', MESSAGE = 'not a decimal counter';
    END IF;
    RETURN t::bigint;
END
$$;
