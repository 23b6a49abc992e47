-- tenantgate's tenant-scoped catalog: schema tg_catalog, installed in every database a tenant
-- connects to (tg_pool, tg_bridge, each tenant database) by the control plane.
--
-- In strict catalog mode the gate substitutes these views and functions for the pg_catalog
-- relations and functions of the same name (qualified or not; see crates/gate/src/scoped.rs),
-- so psql's \d family, JDBC DatabaseMetaData, SQLAlchemy and Django introspection, asyncpg's
-- type introspection and an LLM agent's schema discovery see only what the session may use:
-- - schemas it has USAGE on (its own, the shared app schema of its placement, pg_catalog,
--   information_schema), and the objects in them;
-- - its own roles, the groups it belongs to, built-in roles and the owners of what it sees;
-- - its own database, built-in tablespaces, and its own sessions.
--
-- Rules for this file:
-- - every view is a security_barrier view over the pg_catalog relation of the same name, with
--   the same columns, so a caller's own predicates (even ones that raise errors on values) run
--   only on rows it may see;
-- - every function has the signature of the pg_catalog function it stands for and answers
--   NULL (size functions too) for an object the session may not see;
-- - everything is owned by the installing superuser and granted to PUBLIC for SELECT and
--   EXECUTE only (the views are auto-updatable, so never grant more);
-- - bodies qualify every catalog name with pg_catalog: they run under the tenant's search_path.
-- The installer runs it in one transaction and records the version in the schema's comment.

CREATE SCHEMA tg_catalog;
REVOKE ALL ON SCHEMA tg_catalog FROM PUBLIC;
GRANT USAGE ON SCHEMA tg_catalog TO PUBLIC;

-- ---------------------------------------------------------------- visibility predicates

CREATE FUNCTION tg_catalog.namespace_visible(oid) RETURNS boolean LANGUAGE sql STABLE AS
$$ SELECT coalesce(pg_catalog.has_schema_privilege($1, 'USAGE'), false) $$;

CREATE FUNCTION tg_catalog.class_visible(oid) RETURNS boolean LANGUAGE sql STABLE AS
$$ SELECT coalesce((SELECT pg_catalog.has_schema_privilege(c.relnamespace, 'USAGE')
                    FROM pg_catalog.pg_class c WHERE c.oid = $1), false) $$;

CREATE FUNCTION tg_catalog.type_visible(oid) RETURNS boolean LANGUAGE sql STABLE AS
$$ SELECT coalesce((SELECT pg_catalog.has_schema_privilege(t.typnamespace, 'USAGE')
                    FROM pg_catalog.pg_type t WHERE t.oid = $1), false) $$;

CREATE FUNCTION tg_catalog.proc_visible(oid) RETURNS boolean LANGUAGE sql STABLE AS
$$ SELECT coalesce((SELECT pg_catalog.has_schema_privilege(p.pronamespace, 'USAGE')
                    FROM pg_catalog.pg_proc p WHERE p.oid = $1), false) $$;

CREATE FUNCTION tg_catalog.constraint_visible(oid) RETURNS boolean LANGUAGE sql STABLE AS
$$ SELECT coalesce((SELECT pg_catalog.has_schema_privilege(c.connamespace, 'USAGE')
                    FROM pg_catalog.pg_constraint c WHERE c.oid = $1), false) $$;

CREATE FUNCTION tg_catalog.statistics_visible(oid) RETURNS boolean LANGUAGE sql STABLE AS
$$ SELECT coalesce((SELECT pg_catalog.has_schema_privilege(s.stxnamespace, 'USAGE')
                    FROM pg_catalog.pg_statistic_ext s WHERE s.oid = $1), false) $$;

CREATE FUNCTION tg_catalog.current_database_oid() RETURNS oid LANGUAGE sql STABLE AS
$$ SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database() $$;

-- A role is visible if it is built in, the session is a member of it (its own role and its
-- groups), or it owns the current database or a schema the session can use.
CREATE FUNCTION tg_catalog.role_visible(oid) RETURNS boolean LANGUAGE sql STABLE AS
$$ SELECT $1 IS NOT NULL AND (
          $1 < 16384
       OR pg_catalog.pg_has_role($1, 'MEMBER')
       OR EXISTS (SELECT 1 FROM pg_catalog.pg_database d
                  WHERE d.datname = pg_catalog.current_database() AND d.datdba = $1)
       OR EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n
                  WHERE n.nspowner = $1 AND pg_catalog.has_schema_privilege(n.oid, 'USAGE'))) $$;

-- Any catalog object, by the catalog it lives in and its OID (pg_description, pg_depend).
CREATE FUNCTION tg_catalog.object_visible(classid oid, objid oid) RETURNS boolean LANGUAGE sql STABLE AS
$$ SELECT CASE $1
    WHEN 'pg_catalog.pg_class'::pg_catalog.regclass THEN tg_catalog.class_visible($2)
    WHEN 'pg_catalog.pg_namespace'::pg_catalog.regclass THEN tg_catalog.namespace_visible($2)
    WHEN 'pg_catalog.pg_type'::pg_catalog.regclass THEN tg_catalog.type_visible($2)
    WHEN 'pg_catalog.pg_proc'::pg_catalog.regclass THEN tg_catalog.proc_visible($2)
    WHEN 'pg_catalog.pg_constraint'::pg_catalog.regclass THEN tg_catalog.constraint_visible($2)
    WHEN 'pg_catalog.pg_statistic_ext'::pg_catalog.regclass THEN tg_catalog.statistics_visible($2)
    WHEN 'pg_catalog.pg_trigger'::pg_catalog.regclass THEN
        tg_catalog.class_visible((SELECT t.tgrelid FROM pg_catalog.pg_trigger t WHERE t.oid = $2))
    WHEN 'pg_catalog.pg_rewrite'::pg_catalog.regclass THEN
        tg_catalog.class_visible((SELECT r.ev_class FROM pg_catalog.pg_rewrite r WHERE r.oid = $2))
    WHEN 'pg_catalog.pg_attrdef'::pg_catalog.regclass THEN
        tg_catalog.class_visible((SELECT a.adrelid FROM pg_catalog.pg_attrdef a WHERE a.oid = $2))
    WHEN 'pg_catalog.pg_policy'::pg_catalog.regclass THEN
        tg_catalog.class_visible((SELECT p.polrelid FROM pg_catalog.pg_policy p WHERE p.oid = $2))
    WHEN 'pg_catalog.pg_database'::pg_catalog.regclass THEN $2 = tg_catalog.current_database_oid()
    WHEN 'pg_catalog.pg_authid'::pg_catalog.regclass THEN tg_catalog.role_visible($2)
    ELSE $2 < 16384
  END $$;

-- ---------------------------------------------------------------- per-database catalogs

CREATE VIEW tg_catalog.pg_namespace WITH (security_barrier) AS
  SELECT * FROM pg_catalog.pg_namespace WHERE tg_catalog.namespace_visible(oid);
CREATE VIEW tg_catalog.pg_class WITH (security_barrier) AS
  SELECT * FROM pg_catalog.pg_class WHERE tg_catalog.namespace_visible(relnamespace);
CREATE VIEW tg_catalog.pg_type WITH (security_barrier) AS
  SELECT * FROM pg_catalog.pg_type WHERE tg_catalog.namespace_visible(typnamespace);
CREATE VIEW tg_catalog.pg_proc WITH (security_barrier) AS
  SELECT * FROM pg_catalog.pg_proc WHERE tg_catalog.namespace_visible(pronamespace);
CREATE VIEW tg_catalog.pg_constraint WITH (security_barrier) AS
  SELECT * FROM pg_catalog.pg_constraint WHERE tg_catalog.namespace_visible(connamespace);
CREATE VIEW tg_catalog.pg_statistic_ext WITH (security_barrier) AS
  SELECT * FROM pg_catalog.pg_statistic_ext WHERE tg_catalog.namespace_visible(stxnamespace);
-- Every column but attmissingval, whose pseudo-type (anyarray) a view cannot carry; the
-- list is read from this server's pg_attribute so that it follows its major version.
DO $$ BEGIN
  EXECUTE pg_catalog.format(
    'CREATE VIEW tg_catalog.pg_attribute WITH (security_barrier) AS SELECT %s FROM pg_catalog.pg_attribute a '
    'WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_class c '
    'WHERE c.oid = a.attrelid AND tg_catalog.namespace_visible(c.relnamespace))',
    (SELECT pg_catalog.string_agg(pg_catalog.format('a.%I', attname), ', ' ORDER BY attnum)
     FROM pg_catalog.pg_attribute
     WHERE attrelid = 'pg_catalog.pg_attribute'::pg_catalog.regclass AND attnum > 0
       AND atttypid <> 'pg_catalog.anyarray'::pg_catalog.regtype));
END $$;
CREATE VIEW tg_catalog.pg_attrdef WITH (security_barrier) AS
  SELECT * FROM pg_catalog.pg_attrdef WHERE tg_catalog.class_visible(adrelid);
CREATE VIEW tg_catalog.pg_index WITH (security_barrier) AS
  SELECT * FROM pg_catalog.pg_index WHERE tg_catalog.class_visible(indrelid);
CREATE VIEW tg_catalog.pg_inherits WITH (security_barrier) AS
  SELECT * FROM pg_catalog.pg_inherits
  WHERE tg_catalog.class_visible(inhrelid) AND tg_catalog.class_visible(inhparent);
CREATE VIEW tg_catalog.pg_trigger WITH (security_barrier) AS
  SELECT * FROM pg_catalog.pg_trigger WHERE tg_catalog.class_visible(tgrelid);
CREATE VIEW tg_catalog.pg_rewrite WITH (security_barrier) AS
  SELECT * FROM pg_catalog.pg_rewrite WHERE tg_catalog.class_visible(ev_class);
CREATE VIEW tg_catalog.pg_sequence WITH (security_barrier) AS
  SELECT * FROM pg_catalog.pg_sequence WHERE tg_catalog.class_visible(seqrelid);
CREATE VIEW tg_catalog.pg_partitioned_table WITH (security_barrier) AS
  SELECT * FROM pg_catalog.pg_partitioned_table WHERE tg_catalog.class_visible(partrelid);
CREATE VIEW tg_catalog.pg_policy WITH (security_barrier) AS
  SELECT * FROM pg_catalog.pg_policy WHERE tg_catalog.class_visible(polrelid);
CREATE VIEW tg_catalog.pg_enum WITH (security_barrier) AS
  SELECT * FROM pg_catalog.pg_enum WHERE tg_catalog.type_visible(enumtypid);
CREATE VIEW tg_catalog.pg_range WITH (security_barrier) AS
  SELECT * FROM pg_catalog.pg_range WHERE tg_catalog.type_visible(rngtypid);
CREATE VIEW tg_catalog.pg_description WITH (security_barrier) AS
  SELECT * FROM pg_catalog.pg_description WHERE tg_catalog.object_visible(classoid, objoid);
CREATE VIEW tg_catalog.pg_depend WITH (security_barrier) AS
  SELECT * FROM pg_catalog.pg_depend
  WHERE tg_catalog.object_visible(classid, objid) AND tg_catalog.object_visible(refclassid, refobjid);
-- No tenant publishes: psql's \d asks, and gets nothing.
CREATE VIEW tg_catalog.pg_publication WITH (security_barrier) AS
  SELECT * FROM pg_catalog.pg_publication WHERE false;
CREATE VIEW tg_catalog.pg_publication_rel WITH (security_barrier) AS
  SELECT * FROM pg_catalog.pg_publication_rel WHERE false;
CREATE VIEW tg_catalog.pg_publication_namespace WITH (security_barrier) AS
  SELECT * FROM pg_catalog.pg_publication_namespace WHERE false;

-- The system views that list schemas' objects, by schema name.
CREATE VIEW tg_catalog.pg_tables WITH (security_barrier) AS
  SELECT * FROM pg_catalog.pg_tables WHERE pg_catalog.has_schema_privilege(schemaname, 'USAGE');
CREATE VIEW tg_catalog.pg_views WITH (security_barrier) AS
  SELECT * FROM pg_catalog.pg_views WHERE pg_catalog.has_schema_privilege(schemaname, 'USAGE');
CREATE VIEW tg_catalog.pg_matviews WITH (security_barrier) AS
  SELECT * FROM pg_catalog.pg_matviews WHERE pg_catalog.has_schema_privilege(schemaname, 'USAGE');
CREATE VIEW tg_catalog.pg_indexes WITH (security_barrier) AS
  SELECT * FROM pg_catalog.pg_indexes WHERE pg_catalog.has_schema_privilege(schemaname, 'USAGE');
CREATE VIEW tg_catalog.pg_sequences WITH (security_barrier) AS
  SELECT * FROM pg_catalog.pg_sequences WHERE pg_catalog.has_schema_privilege(schemaname, 'USAGE');
CREATE VIEW tg_catalog.pg_policies WITH (security_barrier) AS
  SELECT * FROM pg_catalog.pg_policies WHERE pg_catalog.has_schema_privilege(schemaname, 'USAGE');

-- ---------------------------------------------------------------- shared catalogs

CREATE VIEW tg_catalog.pg_database WITH (security_barrier) AS
  SELECT * FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database();
CREATE VIEW tg_catalog.pg_roles WITH (security_barrier) AS
  SELECT * FROM pg_catalog.pg_roles WHERE tg_catalog.role_visible(oid);
CREATE VIEW tg_catalog.pg_user WITH (security_barrier) AS
  SELECT * FROM pg_catalog.pg_user WHERE tg_catalog.role_visible(usesysid);
CREATE VIEW tg_catalog.pg_group WITH (security_barrier) AS
  SELECT g.groname, g.grosysid,
         ARRAY(SELECT m FROM pg_catalog.unnest(g.grolist) m WHERE tg_catalog.role_visible(m)) AS grolist
  FROM pg_catalog.pg_group g WHERE tg_catalog.role_visible(g.grosysid);
CREATE VIEW tg_catalog.pg_auth_members WITH (security_barrier) AS
  SELECT * FROM pg_catalog.pg_auth_members
  WHERE tg_catalog.role_visible(roleid) AND tg_catalog.role_visible(member);
CREATE VIEW tg_catalog.pg_tablespace WITH (security_barrier) AS
  SELECT * FROM pg_catalog.pg_tablespace WHERE oid < 16384;
CREATE VIEW tg_catalog.pg_shdescription WITH (security_barrier) AS
  SELECT * FROM pg_catalog.pg_shdescription WHERE tg_catalog.object_visible(classoid, objoid);
-- Sessions: the session's own roles', in this database.
CREATE VIEW tg_catalog.pg_stat_activity WITH (security_barrier) AS
  SELECT * FROM pg_catalog.pg_stat_activity
  WHERE datid = tg_catalog.current_database_oid() AND tg_catalog.role_visible(usesysid)
    AND pg_catalog.pg_has_role(usesysid, 'MEMBER');

-- ---------------------------------------------------------------- functions

CREATE FUNCTION tg_catalog.format_type(oid, integer) RETURNS text LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN tg_catalog.type_visible($1) THEN pg_catalog.format_type($1, $2) END $$;
CREATE FUNCTION tg_catalog.pg_get_expr(pg_node_tree, oid) RETURNS text LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN $2 = 0 OR tg_catalog.class_visible($2) THEN pg_catalog.pg_get_expr($1, $2) END $$;
CREATE FUNCTION tg_catalog.pg_get_expr(pg_node_tree, oid, boolean) RETURNS text LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN $2 = 0 OR tg_catalog.class_visible($2) THEN pg_catalog.pg_get_expr($1, $2, $3) END $$;
CREATE FUNCTION tg_catalog.pg_get_indexdef(oid) RETURNS text LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN tg_catalog.class_visible($1) THEN pg_catalog.pg_get_indexdef($1) END $$;
CREATE FUNCTION tg_catalog.pg_get_indexdef(oid, integer, boolean) RETURNS text LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN tg_catalog.class_visible($1) THEN pg_catalog.pg_get_indexdef($1, $2, $3) END $$;
CREATE FUNCTION tg_catalog.pg_get_constraintdef(oid) RETURNS text LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN tg_catalog.constraint_visible($1) THEN pg_catalog.pg_get_constraintdef($1) END $$;
CREATE FUNCTION tg_catalog.pg_get_constraintdef(oid, boolean) RETURNS text LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN tg_catalog.constraint_visible($1) THEN pg_catalog.pg_get_constraintdef($1, $2) END $$;
CREATE FUNCTION tg_catalog.pg_get_viewdef(oid) RETURNS text LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN tg_catalog.class_visible($1) THEN pg_catalog.pg_get_viewdef($1) END $$;
CREATE FUNCTION tg_catalog.pg_get_viewdef(oid, boolean) RETURNS text LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN tg_catalog.class_visible($1) THEN pg_catalog.pg_get_viewdef($1, $2) END $$;
CREATE FUNCTION tg_catalog.pg_get_viewdef(oid, integer) RETURNS text LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN tg_catalog.class_visible($1) THEN pg_catalog.pg_get_viewdef($1, $2) END $$;
CREATE FUNCTION tg_catalog.pg_get_viewdef(text) RETURNS text LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN tg_catalog.class_visible(pg_catalog.to_regclass($1)) THEN pg_catalog.pg_get_viewdef($1) END $$;
CREATE FUNCTION tg_catalog.pg_get_viewdef(text, boolean) RETURNS text LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN tg_catalog.class_visible(pg_catalog.to_regclass($1)) THEN pg_catalog.pg_get_viewdef($1, $2) END $$;
CREATE FUNCTION tg_catalog.pg_get_triggerdef(oid) RETURNS text LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN tg_catalog.object_visible('pg_catalog.pg_trigger'::pg_catalog.regclass, $1)
               THEN pg_catalog.pg_get_triggerdef($1) END $$;
CREATE FUNCTION tg_catalog.pg_get_triggerdef(oid, boolean) RETURNS text LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN tg_catalog.object_visible('pg_catalog.pg_trigger'::pg_catalog.regclass, $1)
               THEN pg_catalog.pg_get_triggerdef($1, $2) END $$;
CREATE FUNCTION tg_catalog.pg_get_ruledef(oid) RETURNS text LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN tg_catalog.object_visible('pg_catalog.pg_rewrite'::pg_catalog.regclass, $1)
               THEN pg_catalog.pg_get_ruledef($1) END $$;
CREATE FUNCTION tg_catalog.pg_get_ruledef(oid, boolean) RETURNS text LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN tg_catalog.object_visible('pg_catalog.pg_rewrite'::pg_catalog.regclass, $1)
               THEN pg_catalog.pg_get_ruledef($1, $2) END $$;
CREATE FUNCTION tg_catalog.pg_get_functiondef(oid) RETURNS text LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN tg_catalog.proc_visible($1) THEN pg_catalog.pg_get_functiondef($1) END $$;
CREATE FUNCTION tg_catalog.pg_get_function_arguments(oid) RETURNS text LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN tg_catalog.proc_visible($1) THEN pg_catalog.pg_get_function_arguments($1) END $$;
CREATE FUNCTION tg_catalog.pg_get_function_identity_arguments(oid) RETURNS text LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN tg_catalog.proc_visible($1) THEN pg_catalog.pg_get_function_identity_arguments($1) END $$;
CREATE FUNCTION tg_catalog.pg_get_function_result(oid) RETURNS text LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN tg_catalog.proc_visible($1) THEN pg_catalog.pg_get_function_result($1) END $$;
CREATE FUNCTION tg_catalog.pg_get_function_arg_default(oid, integer) RETURNS text LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN tg_catalog.proc_visible($1) THEN pg_catalog.pg_get_function_arg_default($1, $2) END $$;
CREATE FUNCTION tg_catalog.pg_get_partkeydef(oid) RETURNS text LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN tg_catalog.class_visible($1) THEN pg_catalog.pg_get_partkeydef($1) END $$;
CREATE FUNCTION tg_catalog.pg_get_statisticsobjdef(oid) RETURNS text LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN tg_catalog.statistics_visible($1) THEN pg_catalog.pg_get_statisticsobjdef($1) END $$;
CREATE FUNCTION tg_catalog.pg_get_statisticsobjdef_columns(oid) RETURNS text LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN tg_catalog.statistics_visible($1) THEN pg_catalog.pg_get_statisticsobjdef_columns($1) END $$;
CREATE FUNCTION tg_catalog.pg_get_statisticsobjdef_expressions(oid) RETURNS text[] LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN tg_catalog.statistics_visible($1) THEN pg_catalog.pg_get_statisticsobjdef_expressions($1) END $$;
CREATE FUNCTION tg_catalog.pg_get_userbyid(oid) RETURNS name LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN tg_catalog.role_visible($1) THEN pg_catalog.pg_get_userbyid($1) END $$;
CREATE FUNCTION tg_catalog.obj_description(oid, name) RETURNS text LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN tg_catalog.object_visible(
                 (SELECT c.oid FROM pg_catalog.pg_class c WHERE c.relname = $2
                    AND c.relnamespace = 'pg_catalog'::pg_catalog.regnamespace), $1)
               THEN pg_catalog.obj_description($1, $2) END $$;
CREATE FUNCTION tg_catalog.obj_description(oid) RETURNS text LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN $1 < 16384 THEN pg_catalog.obj_description($1) END $$;
CREATE FUNCTION tg_catalog.col_description(oid, integer) RETURNS text LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN tg_catalog.class_visible($1) THEN pg_catalog.col_description($1, $2) END $$;
CREATE FUNCTION tg_catalog.shobj_description(oid, name) RETURNS text LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN tg_catalog.object_visible(
                 (SELECT c.oid FROM pg_catalog.pg_class c WHERE c.relname = $2
                    AND c.relnamespace = 'pg_catalog'::pg_catalog.regnamespace), $1)
               THEN pg_catalog.shobj_description($1, $2) END $$;
CREATE FUNCTION tg_catalog.pg_describe_object(oid, oid, integer) RETURNS text LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN tg_catalog.object_visible($1, $2) THEN pg_catalog.pg_describe_object($1, $2, $3) END $$;
CREATE FUNCTION tg_catalog.pg_relation_size(regclass) RETURNS bigint LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN tg_catalog.class_visible($1) THEN pg_catalog.pg_relation_size($1) END $$;
CREATE FUNCTION tg_catalog.pg_relation_size(regclass, text) RETURNS bigint LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN tg_catalog.class_visible($1) THEN pg_catalog.pg_relation_size($1, $2) END $$;
CREATE FUNCTION tg_catalog.pg_total_relation_size(regclass) RETURNS bigint LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN tg_catalog.class_visible($1) THEN pg_catalog.pg_total_relation_size($1) END $$;
CREATE FUNCTION tg_catalog.pg_table_size(regclass) RETURNS bigint LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN tg_catalog.class_visible($1) THEN pg_catalog.pg_table_size($1) END $$;
CREATE FUNCTION tg_catalog.pg_indexes_size(regclass) RETURNS bigint LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN tg_catalog.class_visible($1) THEN pg_catalog.pg_indexes_size($1) END $$;
CREATE FUNCTION tg_catalog.pg_database_size(name) RETURNS bigint LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN $1 = pg_catalog.current_database() THEN pg_catalog.pg_database_size($1) END $$;
CREATE FUNCTION tg_catalog.pg_database_size(oid) RETURNS bigint LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN $1 = tg_catalog.current_database_oid() THEN pg_catalog.pg_database_size($1) END $$;
CREATE FUNCTION tg_catalog.to_regclass(text) RETURNS regclass LANGUAGE sql STABLE AS
$$ SELECT r FROM pg_catalog.to_regclass($1) r WHERE tg_catalog.class_visible(r) $$;
CREATE FUNCTION tg_catalog.to_regtype(text) RETURNS regtype LANGUAGE sql STABLE AS
$$ SELECT r FROM pg_catalog.to_regtype($1) r WHERE tg_catalog.type_visible(r) $$;
CREATE FUNCTION tg_catalog.to_regproc(text) RETURNS regproc LANGUAGE sql STABLE AS
$$ SELECT r FROM pg_catalog.to_regproc($1) r WHERE tg_catalog.proc_visible(r) $$;
CREATE FUNCTION tg_catalog.to_regprocedure(text) RETURNS regprocedure LANGUAGE sql STABLE AS
$$ SELECT r FROM pg_catalog.to_regprocedure($1) r WHERE tg_catalog.proc_visible(r) $$;
CREATE FUNCTION tg_catalog.to_regnamespace(text) RETURNS regnamespace LANGUAGE sql STABLE AS
$$ SELECT r FROM pg_catalog.to_regnamespace($1) r WHERE tg_catalog.namespace_visible(r) $$;
CREATE FUNCTION tg_catalog.to_regrole(text) RETURNS regrole LANGUAGE sql STABLE AS
$$ SELECT r FROM pg_catalog.to_regrole($1) r WHERE tg_catalog.role_visible(r) $$;

-- Partitions and replica identity: relations come back as regclass, which prints the schema.
CREATE FUNCTION tg_catalog.pg_partition_tree(regclass)
  RETURNS TABLE (relid regclass, parentrelid regclass, isleaf boolean, level integer) LANGUAGE sql STABLE AS
$$ SELECT t.relid, t.parentrelid, t.isleaf, t.level FROM pg_catalog.pg_partition_tree($1) t
   WHERE tg_catalog.class_visible($1) AND tg_catalog.class_visible(t.relid) $$;
CREATE FUNCTION tg_catalog.pg_partition_ancestors(regclass) RETURNS SETOF regclass LANGUAGE sql STABLE AS
$$ SELECT a FROM pg_catalog.pg_partition_ancestors($1) a
   WHERE tg_catalog.class_visible($1) AND tg_catalog.class_visible(a) $$;
CREATE FUNCTION tg_catalog.pg_partition_root(regclass) RETURNS regclass LANGUAGE sql STABLE AS
$$ SELECT r FROM pg_catalog.pg_partition_root($1) r WHERE tg_catalog.class_visible($1) AND tg_catalog.class_visible(r) $$;
CREATE FUNCTION tg_catalog.pg_get_replica_identity_index(regclass) RETURNS regclass LANGUAGE sql STABLE AS
$$ SELECT r FROM pg_catalog.pg_get_replica_identity_index($1) r WHERE tg_catalog.class_visible($1) $$;
CREATE FUNCTION tg_catalog.pg_get_partition_constraintdef(oid) RETURNS text LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN tg_catalog.class_visible($1) THEN pg_catalog.pg_get_partition_constraintdef($1) END $$;
CREATE FUNCTION tg_catalog.pg_get_function_sqlbody(oid) RETURNS text LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN tg_catalog.proc_visible($1) THEN pg_catalog.pg_get_function_sqlbody($1) END $$;

-- Cast guards: the gate turns `col::regclass` into `tg_catalog.visible_class(col)::regclass`,
-- so an OID the session may not see prints as NULL instead of naming the object.
CREATE FUNCTION tg_catalog.visible_class(oid) RETURNS oid LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN tg_catalog.class_visible($1) THEN $1 END $$;
CREATE FUNCTION tg_catalog.visible_type(oid) RETURNS oid LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN tg_catalog.type_visible($1) THEN $1 END $$;
CREATE FUNCTION tg_catalog.visible_proc(oid) RETURNS oid LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN tg_catalog.proc_visible($1) THEN $1 END $$;
CREATE FUNCTION tg_catalog.visible_procedure(oid) RETURNS oid LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN tg_catalog.proc_visible($1) THEN $1 END $$;
CREATE FUNCTION tg_catalog.visible_namespace(oid) RETURNS oid LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN tg_catalog.namespace_visible($1) THEN $1 END $$;
CREATE FUNCTION tg_catalog.visible_role(oid) RETURNS oid LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN tg_catalog.role_visible($1) THEN $1 END $$;
-- The text forms: a name (or, on PostgreSQL 16 and later, digits) resolved the way the cast
-- will resolve it, passed on only if what it names is visible.
CREATE FUNCTION tg_catalog.visible_class(text) RETURNS text LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN tg_catalog.class_visible(pg_catalog.to_regclass($1)) THEN $1 END $$;
CREATE FUNCTION tg_catalog.visible_type(text) RETURNS text LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN tg_catalog.type_visible(pg_catalog.to_regtype($1)) THEN $1 END $$;
CREATE FUNCTION tg_catalog.visible_proc(text) RETURNS text LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN tg_catalog.proc_visible(pg_catalog.to_regproc($1)) THEN $1 END $$;
CREATE FUNCTION tg_catalog.visible_procedure(text) RETURNS text LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN tg_catalog.proc_visible(pg_catalog.to_regprocedure($1)) THEN $1 END $$;
CREATE FUNCTION tg_catalog.visible_namespace(text) RETURNS text LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN tg_catalog.namespace_visible(pg_catalog.to_regnamespace($1)) THEN $1 END $$;
CREATE FUNCTION tg_catalog.visible_role(text) RETURNS text LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN tg_catalog.role_visible(pg_catalog.to_regrole($1)) THEN $1 END $$;

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA tg_catalog FROM PUBLIC;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA tg_catalog TO PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA tg_catalog FROM PUBLIC;
GRANT SELECT ON ALL TABLES IN SCHEMA tg_catalog TO PUBLIC;
