-- The one way dashboards read a pipeline's schema: pagestream_dashboards.run(schema, query).
-- Grafana can only quote a variable safely as a string literal (${schema:sqlstring}), never as
-- an identifier, so the schema travels as a literal and becomes the search path here, after
-- it is checked to be a pipeline's. The query is the panel's own text, from the dashboard;
-- it runs with the caller's rights (SECURITY INVOKER), so a read-only role stays read-only.
-- Shared by every pipeline in the database; the job creates it when it is missing.
CREATE SCHEMA IF NOT EXISTS pagestream_dashboards;

CREATE FUNCTION pagestream_dashboards.run(pipeline_schema text, query text)
RETURNS SETOF record LANGUAGE plpgsql VOLATILE SECURITY INVOKER AS $fn$
DECLARE
    previous text := current_setting('search_path');
BEGIN
    IF NOT EXISTS (
        SELECT FROM pg_catalog.pg_class c
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = pipeline_schema AND c.relname = 'batch_commits'
    ) THEN
        RAISE EXCEPTION 'no pagestream pipeline schema %', pg_catalog.quote_literal(pipeline_schema)
            USING ERRCODE = 'invalid_schema_name',
                  HINT = 'pick the schema from the dashboard''s list of pipelines';
    END IF;
    -- A schema in the search path without USAGE is skipped silently: say why instead.
    IF NOT pg_catalog.has_schema_privilege(pipeline_schema, 'USAGE') THEN
        RAISE EXCEPTION 'permission denied for pipeline schema %', pg_catalog.quote_literal(pipeline_schema)
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- pg_temp last: a session's own temporary tables cannot stand in for the pipeline's.
    PERFORM pg_catalog.set_config(
        'search_path', pg_catalog.quote_ident(pipeline_schema) || ', pg_temp', true);
    RETURN QUERY EXECUTE query;
    PERFORM pg_catalog.set_config('search_path', previous, true);
END
$fn$;
